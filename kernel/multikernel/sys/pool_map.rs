// SPDX-License-Identifier: GPL-2.0

//! The pool reserved at boot (`multikernel.pool=`) and kernel mappings of pieces of it.

use core::ptr::NonNull;
use kernel::{
    bindings,
    prelude::*, //
};

/// The physical memory reserved at boot by `multikernel.pool=SIZE[@ADDR]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolRegion {
    /// Physical address of the first byte; a multiple of 2 MiB.
    pub(crate) base: u64,
    /// Size in bytes; a multiple of 2 MiB, not zero.
    pub(crate) size: u64,
}

impl PoolRegion {
    /// Whether `start..start + len` lies inside the pool.
    pub(crate) fn contains(&self, start: u64, len: u64) -> bool {
        start >= self.base
            && start
                .checked_add(len)
                .is_some_and(|end| end <= self.base + self.size)
    }
}

/// The pool reserved at boot, or `None` when the kernel was booted without one (or reserving it
/// failed, which the boot log says).
pub(crate) fn pool_region() -> Option<PoolRegion> {
    let mut base: bindings::phys_addr_t = 0;
    let mut size: bindings::phys_addr_t = 0;
    // SAFETY: Both pointers are valid for writing; the function only reads a static resource that
    // is set once during early boot.
    if unsafe { bindings::multikernel_pool_region(&mut base, &mut size) } {
        Some(PoolRegion { base, size })
    } else {
        None
    }
}

/// A write-back kernel mapping of a piece of the pool, unmapped on drop.
///
/// Only pool memory can be mapped: the pool is reserved at boot and never used by the host
/// kernel, so writing to it cannot corrupt the host (which is why writes are safe; what they do
/// to an instance kernel running there is the caller's business: it holds the instance's `life`
/// lock with its CPUs back). Page tables a CPU of this kernel may be entering through are built
/// by the `unsafe` [`super::spawn::IdentityMap::build`], not through this. Which instance a
/// piece belongs to is the caller's bookkeeping.
///
/// # Invariants
///
/// `virt` maps `len` bytes of pool memory, writable, until `self` is dropped.
pub(crate) struct PoolMapping {
    virt: NonNull<u8>,
    len: usize,
}

// SAFETY: The mapping is plain memory; `&mut self` is needed to write.
unsafe impl Send for PoolMapping {}

impl PoolMapping {
    /// Maps `start..start + len`, which must lie inside the pool (else `EINVAL`).
    pub(crate) fn new(start: u64, len: u64) -> Result<Self> {
        let pool = pool_region().ok_or(ENODEV)?;
        if len == 0 || !pool.contains(start, len) {
            return Err(EINVAL);
        }
        let len = usize::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: The range is RAM reserved for the pool (checked above); `memremap` with
        // `MEMREMAP_WB` returns its direct-map address or a new mapping, or NULL.
        let virt = unsafe { bindings::memremap(start, len, bindings::MEMREMAP_WB as c_ulong) };
        let virt = NonNull::new(virt.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: `memremap` succeeded for `len` bytes.
        Ok(Self { virt, len })
    }

    /// The address `offset` bytes in, if `len` bytes from there lie inside the mapping
    /// (else `EINVAL`).
    fn at(&self, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            // SAFETY: `offset <= self.len`: inside the mapping or one past its end.
            Some(end) if end <= self.len => Ok(unsafe { self.virt.as_ptr().add(offset) }),
            _ => Err(EINVAL),
        }
    }

    /// Copies `bytes` to `offset` bytes into the mapping; `EINVAL` if it does not fit.
    pub(crate) fn write(&mut self, offset: usize, bytes: &[u8]) -> Result {
        let dst = self.at(offset, bytes.len())?;
        // SAFETY: `dst..dst + bytes.len()` is inside the mapping (`at`), which nothing else in
        // this kernel references; `bytes` cannot overlap it (it is not in the pool's mapping
        // handed out as a slice anywhere).
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to zero; `EINVAL` if that does not fit.
    pub(crate) fn zero(&mut self, offset: usize, len: usize) -> Result {
        let dst = self.at(offset, len)?;
        // SAFETY: As in `write`.
        unsafe { core::ptr::write_bytes(dst, 0, len) };
        Ok(())
    }

    /// Copies `len` bytes from `offset` into `out`, volatile (a running instance kernel may be
    /// writing them: its mailbox words); `EINVAL` if that does not fit.
    pub(crate) fn read(&self, offset: usize, out: &mut [u8]) -> Result {
        let src = self.at(offset, out.len())?;
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: Inside the mapping (`at`); a volatile read of plain memory, which the other
            // kernel may write concurrently (as `READ_ONCE` may race in C).
            *byte = unsafe { core::ptr::read_volatile(src.add(i)) };
        }
        Ok(())
    }
}

/// Gives the CPU to other tasks if one should run (`cond_resched()`): for long loops in
/// process context, such as scrubbing an instance's memory.
pub(crate) fn cond_resched() {
    // SAFETY: Called from process context by the subsystem's long loops; may sleep.
    unsafe { bindings::multikernel_cond_resched() }
}

impl Drop for PoolMapping {
    fn drop(&mut self) {
        // SAFETY: `virt` came from `memremap` (type invariants) and is unmapped once.
        unsafe { bindings::memunmap(self.virt.as_ptr().cast()) };
    }
}
