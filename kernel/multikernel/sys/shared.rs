// SPDX-License-Identifier: GPL-2.0

//! Memory shared with another kernel (an IKC channel, an instance's mailbox page), and what an
//! instance kernel was told about itself on its command line.

use super::pool_map::pool_region;
use core::{
    ptr::NonNull,
    sync::atomic::{
        AtomicU64,
        Ordering, //
    },
};
use kernel::{
    bindings,
    prelude::*, //
};

/// Memory shared with another kernel, mapped write-back, unmapped on drop.
///
/// The other kernel reads and writes it at any time, so every access is volatile (bytes, words)
/// or atomic (the words both kernels synchronise on), the kernel's `READ_ONCE`/`WRITE_ONCE`
/// discipline, or a bulk copy by the C `memcpy` for payloads ([`SharedMem::read_bulk`],
/// [`SharedMem::write_bulk`]), as the kernel crate copies I/O memory: reads return whatever is
/// there (the caller validates its copy, or bases nothing on it), and no Rust reference to its
/// bytes is ever handed out. Concurrent accesses from this kernel are no
/// different from the peer's: they cannot tear a word or be merged by the compiler, and what a
/// structure in the memory means is the caller's protocol (the rings write under a lock).
///
/// # Invariants
///
/// `virt` maps `len` bytes, 8-byte aligned, until `self` is dropped; nothing in this kernel
/// but this mapping's owner uses that memory.
pub(crate) struct SharedMem {
    virt: NonNull<u8>,
    len: usize,
}

// SAFETY: The mapping is plain memory, accessed only through volatile and atomic operations and
// the C `memcpy`.
unsafe impl Send for SharedMem {}
// SAFETY: Every method takes `&self` and accesses the memory only with volatile or atomic
// operations, or with the C `memcpy` (outside what the Rust compiler reasons about), which
// concurrent users (the other kernel is one) may race with as they may with `READ_ONCE`,
// `WRITE_ONCE` and `memcpy` in C; no reference into the memory is handed out.
unsafe impl Sync for SharedMem {}

impl SharedMem {
    /// Maps `start..start + len` of the pool (host side: a channel inside an instance's
    /// memory). `EINVAL` unless it lies inside the pool and is page aligned.
    pub(crate) fn map_pool(start: u64, len: u64) -> Result<Self> {
        let pool = pool_region().ok_or(ENODEV)?;
        if len == 0 || start % 4096 != 0 || !pool.contains(start, len) {
            return Err(EINVAL);
        }
        Self::map(start, len)
    }

    /// Maps the channel the host described on this kernel's command line
    /// (`multikernel.ikc=`), `len` bytes (instance side). `EINVAL` if that memory is RAM of
    /// this kernel (the host must have reserved it in our memory map).
    pub(crate) fn map_host_channel(offset: u64, len: u64) -> Result<Self> {
        let info = instance_info().ok_or(ENODEV)?;
        if len == 0 || info.channel == 0 || info.channel % 4096 != 0 || offset % 4096 != 0 {
            return Err(EINVAL);
        }
        let start = info.channel.checked_add(offset).ok_or(EINVAL)?;
        // SAFETY: Only reads the resource tree.
        let overlap = unsafe {
            bindings::region_intersects(
                start,
                len as usize,
                bindings::IORESOURCE_SYSTEM_RAM as c_ulong,
                bindings::IORES_DESC_NONE as c_ulong,
            )
        };
        if overlap != bindings::REGION_DISJOINT as c_int {
            return Err(EINVAL);
        }
        Self::map(start, len)
    }

    fn map(start: u64, len: u64) -> Result<Self> {
        let len = usize::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: The callers checked the range is memory no allocator of this kernel hands
        // out (pool, or reserved by the host); `memremap` returns a mapping or NULL.
        let virt = unsafe { bindings::memremap(start, len, bindings::MEMREMAP_WB as c_ulong) };
        let virt = NonNull::new(virt.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: `memremap` succeeded for `len` bytes, page aligned.
        Ok(Self { virt, len })
    }

    fn inside(&self, off: usize, len: usize) -> bool {
        off.checked_add(len).is_some_and(|end| end <= self.len)
    }

    /// Copies bytes out from `off`; outside the mapping, `out` is zeroed instead.
    ///
    /// Volatile reads, a word at a time where `off` allows: the peer may be writing, and
    /// the compiler must not read the shared bytes again later instead of the copy (the
    /// caller checks the copy).
    pub(crate) fn read(&self, off: usize, out: &mut [u8]) {
        if !self.inside(off, out.len()) {
            out.fill(0);
            return;
        }
        // SAFETY: `off..off + out.len()` is inside the mapping (checked).
        let src = unsafe { self.virt.as_ptr().add(off) };
        // Bytes up to the first 8-byte boundary, then words, then the rest.
        let lead = ((8 - off % 8) % 8).min(out.len());
        let words = (out.len() - lead) / 8;
        for (i, byte) in out[..lead].iter_mut().enumerate() {
            // SAFETY: In bounds (above).
            *byte = unsafe { core::ptr::read_volatile(src.add(i)) };
        }
        for (w, chunk) in out[lead..lead + 8 * words].chunks_exact_mut(8).enumerate() {
            // SAFETY: In bounds (above) and 8-byte aligned (`off + lead` is, and the mapping
            // is page aligned); plain memory.
            let word = unsafe { core::ptr::read_volatile(src.add(lead + 8 * w).cast::<u64>()) };
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        let done = lead + 8 * words;
        for (i, byte) in out[done..].iter_mut().enumerate() {
            // SAFETY: In bounds (above).
            *byte = unsafe { core::ptr::read_volatile(src.add(done + i)) };
        }
    }

    /// Copies `bytes` in at `off`, volatile, a word at a time from the first 8-byte boundary;
    /// outside the mapping nothing is written.
    pub(crate) fn write(&self, off: usize, bytes: &[u8]) {
        if !self.inside(off, bytes.len()) {
            return;
        }
        // SAFETY: `off..off + bytes.len()` is inside the mapping (checked).
        let dst = unsafe { self.virt.as_ptr().add(off) };
        // Bytes up to the first 8-byte boundary, then words, then the rest.
        let lead = ((8 - off % 8) % 8).min(bytes.len());
        let words = (bytes.len() - lead) / 8;
        for (i, byte) in bytes[..lead].iter().enumerate() {
            // SAFETY: In bounds (above).
            unsafe { core::ptr::write_volatile(dst.add(i), *byte) };
        }
        for (w, chunk) in bytes[lead..lead + 8 * words].chunks_exact(8).enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            // SAFETY: In bounds (above) and 8-byte aligned (`off + lead` is, and the mapping
            // is page aligned); plain memory, written volatile.
            unsafe {
                core::ptr::write_volatile(
                    dst.add(lead + 8 * w).cast::<u64>(),
                    u64::from_ne_bytes(word),
                )
            };
        }
        let done = lead + 8 * words;
        for (i, byte) in bytes[done..].iter().enumerate() {
            // SAFETY: In bounds (above).
            unsafe { core::ptr::write_volatile(dst.add(done + i), *byte) };
        }
    }

    /// Copies payload bytes out from `off` with the C `memcpy` (as the kernel crate's
    /// `SysMemBackend` copies I/O memory): a bulk copy several times faster than
    /// [`SharedMem::read`] (under emulation above all), for bytes the caller bases no decision
    /// on. If the peer writes them meanwhile, the copy may mix old and new bytes; the C
    /// routine (assembly on x86) is outside what the Rust compiler reasons about, and the
    /// LKMM allows such a race. Outside the mapping, `out` is zeroed instead.
    pub(crate) fn read_bulk(&self, off: usize, out: &mut [u8]) {
        if !self.inside(off, out.len()) {
            out.fill(0);
            return;
        }
        // SAFETY: `off..off + out.len()` is inside the mapping (checked), `out` is valid for
        // writing that many bytes, and the two do not overlap (`out` is this kernel's own
        // memory, the mapping is the channel's).
        unsafe {
            bindings::memcpy(
                out.as_mut_ptr().cast(),
                self.virt.as_ptr().add(off).cast(),
                out.len(),
            )
        };
    }

    /// Copies payload bytes in at `off` with the C `memcpy`, as [`SharedMem::read_bulk`] copies
    /// out: for bytes the peer does not read until an index published afterwards says so.
    /// Outside the mapping nothing is written.
    pub(crate) fn write_bulk(&self, off: usize, bytes: &[u8]) {
        if !self.inside(off, bytes.len()) {
            return;
        }
        // SAFETY: `off..off + bytes.len()` is inside the mapping (checked), `bytes` is valid
        // for reading, and the two do not overlap.
        unsafe {
            bindings::memcpy(
                self.virt.as_ptr().add(off).cast(),
                bytes.as_ptr().cast(),
                bytes.len(),
            )
        };
    }

    /// Zeroes `len` bytes at `off` with the C `memset` (nothing outside the mapping), as
    /// [`SharedMem::write_bulk`] writes: for memory the peer does not use yet.
    pub(crate) fn zero_bulk(&self, off: usize, len: usize) {
        if !self.inside(off, len) {
            return;
        }
        // SAFETY: `off..off + len` is inside the mapping (checked).
        unsafe { bindings::memset(self.virt.as_ptr().add(off).cast(), 0, len) };
    }

    fn word(&self, off: usize) -> Option<&AtomicU64> {
        if off % 8 != 0 || !self.inside(off, 8) {
            return None;
        }
        // SAFETY: In bounds and 8-byte aligned (the mapping is page aligned); the memory
        // lives as long as `self`. This kernel also writes such words without atomics, but
        // only while setting the memory up (`ring::init`, the channel's header and stream
        // area before the peer is told of them), never beside an atomic access of its own.
        // What the other kernel, or a process that mapped the stream area, writes is outside
        // this kernel's memory model, as a device's writes are: a load only yields a value,
        // which every caller checks.
        Some(unsafe { AtomicU64::from_ptr(self.virt.as_ptr().add(off).cast::<u64>()) })
    }

    /// Loads the 64-bit word at `off` (0 if not a word of the mapping), sequentially
    /// consistent: a [`SharedMem::store_seqcst`] followed by a load of another word is never
    /// reordered, which the doorbell flags need (a store then a load on each side).
    pub(crate) fn load_seqcst(&self, off: usize) -> u64 {
        self.word(off).map_or(0, |w| w.load(Ordering::SeqCst))
    }

    /// Stores the 64-bit word at `off`, sequentially consistent (ordered after earlier accesses
    /// and before later loads); nothing if not a word of the mapping.
    pub(crate) fn store_seqcst(&self, off: usize, value: u64) {
        if let Some(w) = self.word(off) {
            w.store(value, Ordering::SeqCst);
        }
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        // SAFETY: `virt` came from `memremap` (type invariants) and is unmapped once.
        unsafe { bindings::memunmap(self.virt.as_ptr().cast()) };
    }
}

/// What an instance kernel was told about itself on its command line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InstanceInfo {
    /// Its instance id (not 0).
    pub(crate) id: u32,
    /// Physical address of its channel to the host.
    pub(crate) channel: u64,
    /// APIC id of the host CPU that takes its doorbells.
    pub(crate) host_apic: u32,
}

/// `Some` when this kernel runs as an instance (`multikernel.instance=` was given).
pub(crate) fn instance_info() -> Option<InstanceInfo> {
    let (mut id, mut channel, mut host_apic) = (0u32, 0u64, 0u32);
    // SAFETY: The pointers are valid for writing; the C side reads values set at boot.
    let is_instance =
        unsafe { bindings::multikernel_instance_info(&mut id, &mut channel, &mut host_apic) };
    is_instance.then_some(InstanceInfo {
        id,
        channel,
        host_apic,
    })
}

/// Asks this kernel's user space to power off, in order (`orderly_poweroff()`: it runs
/// `/sbin/poweroff`, and powers off by force if that cannot run). Returns at once.
pub(crate) fn orderly_poweroff() {
    // SAFETY: Only queues the kernel's power-off work; any context that may sleep.
    unsafe { bindings::multikernel_orderly_poweroff() }
}
