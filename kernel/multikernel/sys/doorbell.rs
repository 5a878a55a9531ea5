// SPDX-License-Identifier: GPL-2.0

//! The IKC doorbell (an IPI on `X86_PLATFORM_IPI_VECTOR`, which this subsystem owns), NMIs to
//! an instance's CPUs, and the console an instance kernel sends its output through. The C side
//! is `ikc_x86.c`.

use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    sync::SetOnce, //
};

static DOORBELL: SetOnce<fn()> = SetOnce::new();
static CONSOLE: SetOnce<fn(&[u8])> = SetOnce::new();

/// Takes the IKC doorbell vector; `handler` runs in hard interrupt context on every
/// doorbell this CPU receives. Once; `EBUSY` if the vector is taken.
///
/// # Safety
///
/// Call from built-in init code, before the kernel seals its read-only-after-init data
/// (`mark_rodata_ro()`): the vector's hook lives there, and writing it later faults.
pub(crate) unsafe fn take_doorbell(handler: fn()) -> Result {
    if !DOORBELL.populate(handler) {
        return Err(EBUSY);
    }
    // SAFETY: The caller runs before read-only-after-init data is sealed (# Safety).
    to_result(unsafe { bindings::multikernel_ikc_init() })
}

/// Drains the doorbell vector does per CPU per window of 2^20 ns; more are only counted.
pub(crate) const DOORBELL_BUDGET: u32 = bindings::MULTIKERNEL_DOORBELL_BUDGET;

/// Doorbells taken by this kernel since boot, and how many of them were over the budget
/// (acknowledged, not drained): `(received, throttled)`.
pub(crate) fn doorbell_stats() -> (u64, u64) {
    let (mut received, mut throttled) = (0, 0);
    // SAFETY: Both pointers are valid for writing.
    unsafe { bindings::multikernel_ikc_doorbell_stats(&mut received, &mut throttled) };
    (received, throttled)
}

/// Sends an NMI to the CPU with APIC id `apic_id` (fault injection: a CPU of an instance).
pub(crate) fn send_nmi(apic_id: u32) {
    // SAFETY: Sends one NMI IPI; any id is accepted (a wrong one reaches nobody).
    unsafe { bindings::multikernel_send_nmi(apic_id) }
}

/// Rings the doorbell of the CPU with APIC id `apic_id` (a CPU of the other kernel).
pub(crate) fn ring(apic_id: u32) {
    // SAFETY: Sends one fixed IPI; any id is accepted (a wrong one reaches nobody).
    unsafe { bindings::multikernel_ikc_ring(apic_id) }
}

/// Called by the doorbell vector.
#[no_mangle]
extern "C" fn multikernel_ikc_doorbell_irq() {
    if let Some(handler) = DOORBELL.as_ref() {
        handler();
    }
}

/// Registers a console that hands every line this kernel prints to `write` (any context,
/// interrupts possibly off: `write` must not sleep and must not print). Once.
pub(crate) fn register_console(write: fn(&[u8])) -> Result {
    if !CONSOLE.populate(write) {
        return Err(EBUSY);
    }
    // SAFETY: Registers a static console whose write calls `multikernel_ikc_console_write`.
    unsafe { bindings::multikernel_ikc_console_register() };
    Ok(())
}

/// Called by the console.
///
/// # Safety
///
/// `text` is readable for `len` bytes for the call.
#[no_mangle]
unsafe extern "C" fn multikernel_ikc_console_write(text: *const c_char, len: c_uint) {
    if let Some(write) = CONSOLE.as_ref() {
        // SAFETY: The console core passes `len` readable bytes.
        write(unsafe { core::slice::from_raw_parts(text.cast::<u8>(), len as usize) });
    }
}
