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
/// Takes output of the instance's terminal; returns how many bytes it took.
type ConsoleWrite = fn(&[u8]) -> usize;
/// Gives input to the instance's terminal; returns how many bytes it gave.
type ConsoleRead = fn(&mut [u8]) -> usize;

/// The instance's terminal: what takes its output, what gives its input.
static CONSOLE: SetOnce<(ConsoleWrite, ConsoleRead)> = SetOnce::new();

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

/// Registers the terminal and console `/dev/hvc0` (`ikc_x86.c`): `write` takes what is written
/// to it (user space, and the kernel log: any context, interrupts possibly off, so it must not
/// sleep nor print) and returns how many bytes it took, 0 for none now (the kernel log then
/// drops them, the terminal retries); `read` fills in what was typed and returns how many
/// bytes (process context, a spinlock held). Once; `EBUSY` if hvc0 is another backend's.
pub(crate) fn register_console(write: fn(&[u8]) -> usize, read: fn(&mut [u8]) -> usize) -> Result {
    if !CONSOLE.populate((write, read)) {
        return Err(EBUSY);
    }
    // SAFETY: Registers static hvc operations that call `multikernel_ikc_console_write` and
    // `multikernel_ikc_console_read`, which use `CONSOLE`, set above.
    to_result(unsafe { bindings::multikernel_ikc_console_register() })
}

/// Input for the terminal arrived: its poller looks now. Any context.
pub(crate) fn kick_console() {
    // SAFETY: Wakes the hvc poll thread; safe in any context, also before it exists.
    unsafe { bindings::multikernel_ikc_console_kick() }
}

/// Called by the terminal with what is written to it.
///
/// # Safety
///
/// `text` is readable for `len` bytes for the call.
#[no_mangle]
unsafe extern "C" fn multikernel_ikc_console_write(text: *const u8, len: usize) -> isize {
    let Some((write, _)) = CONSOLE.as_ref() else {
        return 0;
    };
    // SAFETY: The hvc core passes `len` readable bytes.
    let taken = write(unsafe { core::slice::from_raw_parts(text, len) });
    taken as isize
}

/// Called by the terminal's poller for what was typed.
///
/// # Safety
///
/// `buf` is writable for `len` bytes for the call.
#[no_mangle]
unsafe extern "C" fn multikernel_ikc_console_read(buf: *mut u8, len: usize) -> isize {
    let Some((_, read)) = CONSOLE.as_ref() else {
        return 0;
    };
    // SAFETY: The hvc core passes `len` writable bytes, which nothing else uses meanwhile.
    let given = read(unsafe { core::slice::from_raw_parts_mut(buf, len) });
    given as isize
}
