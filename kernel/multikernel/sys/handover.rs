// SPDX-License-Identifier: GPL-2.0

//! The host update's machine side (`handover.c`): the KHO blob this kernel hands over or was
//! handed, and the CPUs the previous kernel's instances run on.

use core::ptr::NonNull;
use kernel::{
    bindings,
    cpu::CpuId,
    prelude::*, //
};

/// A zeroed blob KHO preserves and names for the next kernel, until unpublished.
///
/// # Invariants
///
/// `ptr` points to `len` bytes returned by `multikernel_handover_publish(len)`, not yet
/// unpublished; only this object writes them (KHO's debugfs, if built, may read them).
pub(crate) struct Published {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: The blob is plain memory owned by this object alone.
unsafe impl Send for Published {}

impl Published {
    /// Preserves and publishes `len` zeroed bytes; `ENOMEM` if KHO cannot (it is off, or out
    /// of memory).
    pub(crate) fn new(len: usize) -> Result<Self> {
        // SAFETY: Any length; NULL or a blob of `len` bytes comes back.
        let ptr = unsafe { bindings::multikernel_handover_publish(len) };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: Just published, `len` bytes.
        Ok(Self { ptr, len })
    }

    /// The blob's bytes, to fill in.
    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `len` bytes at `ptr`, only ours (type invariant); `&mut self` is exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Leaves the blob to the next kernel: it stays published and preserved.
    pub(crate) fn hand_over(self) {
        core::mem::forget(self);
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        // SAFETY: Published by `new` and not yet unpublished (type invariant); once, here.
        unsafe { bindings::multikernel_handover_unpublish(self.ptr.as_ptr().cast()) };
    }
}

/// The blob the previous kernel handed over, until released.
///
/// # Invariants
///
/// `ptr` points to `len` bytes returned by `multikernel_handover_take()`, not yet released.
pub(crate) struct Taken {
    ptr: NonNull<u8>,
    len: usize,
}

impl Taken {
    /// The blob handed to this kernel, if any (once: a second call finds it taken).
    pub(crate) fn take() -> Option<Self> {
        let mut len = 0usize;
        // SAFETY: `len` is valid for writes.
        let ptr = unsafe { bindings::multikernel_handover_take(&mut len) };
        // INVARIANT: NULL, or a blob of `len` bytes now ours.
        NonNull::new(ptr.cast::<u8>()).map(|ptr| Self { ptr, len })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes at `ptr`, ours until released (type invariant).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        // SAFETY: Taken and not released (type invariant); once, here.
        unsafe { bindings::multikernel_handover_release(self.ptr.as_ptr().cast()) };
    }
}

/// The CPU whose APIC id is `apic_id`, if this kernel knows one.
pub(crate) fn cpu_by_apic(apic_id: u32) -> Option<CpuId> {
    // SAFETY: Reads per-CPU data set up at boot.
    let cpu = unsafe { bindings::multikernel_cpu_by_apic(apic_id) };
    u32::try_from(cpu).ok().and_then(CpuId::from_u32)
}

/// An adopted instance owns `cpu` now (the ownership gate keeps it offline): the hold that
/// kept it out of SMP bring-up can go.
pub(crate) fn unhold(cpu: CpuId) {
    // SAFETY: Any CPU number.
    unsafe { bindings::multikernel_cpu_unhold(cpu.as_u32()) };
}

/// Bottom halves off on this CPU while it lives: for taking, in process context, a lock the
/// networking core takes in softirq context.
/// Not `Send`: it must end where it began.
pub(crate) struct BhOff(core::marker::PhantomData<*mut ()>);

impl BhOff {
    pub(crate) fn new() -> Self {
        // SAFETY: Any context; undone once by `drop`. Bottom halves off also keep the task
        // on this CPU until then, so the enable pairs with this disable.
        unsafe { bindings::multikernel_bh_disable() };
        Self(core::marker::PhantomData)
    }
}

impl Drop for BhOff {
    fn drop(&mut self) {
        // SAFETY: Disabled by `new`, once.
        unsafe { bindings::multikernel_bh_enable() };
    }
}

/// The time stamp counter now (it goes on across a kexec).
pub(crate) fn tsc_now() -> u64 {
    // SAFETY: No precondition.
    unsafe { bindings::multikernel_tsc_now() }
}

/// Nanoseconds since the TSC read `tsc` (0 if it went back: another machine state).
pub(crate) fn tsc_since_ns(tsc: u64) -> u64 {
    // SAFETY: No precondition.
    unsafe { bindings::multikernel_tsc_since_ns(tsc) }
}

/// Whether `setup_arch()` found a handover from the previous kernel (its pool reserved, its
/// CPUs held), whether or not the rest of it can be read now.
pub(crate) fn seen() -> bool {
    // SAFETY: Reads a flag set at boot.
    unsafe { bindings::multikernel_handover_seen() }
}

/// INIT to every CPU still held for an instance of the previous kernel (one that could not be
/// adopted): before this kernel goes, without handing them over, so that nothing of theirs
/// runs into the next kernel's memory.
pub(crate) fn stop_held() {
    // SAFETY: No precondition; the CPUs are offline here.
    unsafe { bindings::multikernel_handover_stop_held() };
}

/// Whether `cpu` is held for an instance of the previous kernel.
pub(crate) fn held(cpu: CpuId) -> bool {
    // SAFETY: Any CPU number.
    unsafe { bindings::multikernel_cpu_held(cpu.as_u32()) }
}

/// The kernel image `kexec_file_load()` read, as bytes (empty for NULL).
///
/// # Safety
///
/// `kernel` is NULL or points to `len` readable bytes that stay unchanged for `'a`.
pub(crate) unsafe fn image_bytes<'a>(kernel: *const core::ffi::c_void, len: usize) -> &'a [u8] {
    if kernel.is_null() {
        return &[];
    }
    // SAFETY: `len` readable bytes at `kernel`, unchanged for `'a` (# Safety).
    unsafe { core::slice::from_raw_parts(kernel.cast::<u8>(), len) }
}
