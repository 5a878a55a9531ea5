// SPDX-License-Identifier: GPL-2.0

//! Handing an offline CPU to an instance kernel (x86): the C side is `spawn_x86.c` and
//! `spawn_entry.S`.
//!
//! [`arm`] prepares a CPU that is offline: the next time it goes through the hotplug core's
//! `play_dead` (that is, after it is brought online and taken offline again), it does not
//! halt but enters the kernel loaded in the instance's memory. The caller decides when.

use super::pool_map::pool_region;
use kernel::{
    bindings,
    cpu::CpuId,
    error::to_result,
    prelude::*, //
};

/// What an instance kernel writes at the start of its mailbox page once booted (followed
/// by its instance id).
pub(crate) const MAILBOX_MAGIC: u64 = bindings::MULTIKERNEL_MAILBOX_MAGIC;
/// Where in the mailbox page the record the waiting CPUs are started through lies.
pub(crate) const WAKEUP_OFFSET: u64 = bindings::MULTIKERNEL_WAKEUP_OFFSET as u64;
/// Where in the mailbox page the instance kernel writes why it stops (a `u32`).
pub(crate) const STOP_OFFSET: usize = bindings::MULTIKERNEL_STOP_OFFSET as usize;

/// The reasons an instance kernel gives for stopping (`MULTIKERNEL_STOP_*`).
pub(crate) mod stop {
    use kernel::bindings;

    /// `poweroff`.
    pub(crate) const POWEROFF: u32 = bindings::MULTIKERNEL_STOP_POWEROFF;
    /// `reboot` (also an emergency restart).
    pub(crate) const REBOOT: u32 = bindings::MULTIKERNEL_STOP_REBOOT;
    /// `halt`.
    pub(crate) const HALT: u32 = bindings::MULTIKERNEL_STOP_HALT;
    /// `kexec -e`: it stops instead of entering another kernel.
    pub(crate) const KEXEC: u32 = bindings::MULTIKERNEL_STOP_KEXEC;
    /// A panic (a crash kernel is not entered).
    pub(crate) const PANIC: u32 = bindings::MULTIKERNEL_STOP_PANIC;
}

/// Wraps the architecture's `play_dead`; call once at init.
pub(crate) fn init() -> Result {
    // SAFETY: Called once at init; only replaces a function pointer in `smp_ops`.
    to_result(unsafe { bindings::multikernel_spawn_init() })
}

/// An identity map of an instance's memory, built in pages of that memory, to enter it on.
pub(crate) struct IdentityMap {
    pgd: u64,
    memory: (u64, u64),
    park: u64,
}

/// Bytes of the park area (`MULTIKERNEL_PARK_BYTES`): the park loop, and the GDT, IDT and
/// stacks every CPU of the instance enters on.
pub(crate) const PARK_BYTES: usize = bindings::MULTIKERNEL_PARK_BYTES as usize;

impl IdentityMap {
    /// Builds the map of `memory` (`(start, len)`, inside the pool) in the pages `pagetables`
    /// (`(start, len)`, inside `memory`), with the park area at `park` (inside `memory`,
    /// [`PARK_BYTES`]) also at its direct-map address. `EINVAL` if a range is outside.
    ///
    /// # Safety
    ///
    /// This writes page tables into `pagetables`, which a CPU may be translating through: no
    /// CPU may run on a map of `memory` (no CPU armed with one may have left this kernel) while
    /// this runs, and `memory` must belong to the caller's instance only.
    pub(crate) unsafe fn build(
        memory: (u64, u64),
        pagetables: (u64, u64),
        park: u64,
    ) -> Result<Self> {
        let pool = pool_region().ok_or(ENODEV)?;
        let (start, len) = memory;
        let (pt_start, pt_len) = pagetables;
        let inside = |at: u64, n: u64| {
            at >= start && at.checked_add(n).is_some_and(|end| end <= start + len)
        };
        if !pool.contains(start, len)
            || !inside(pt_start, pt_len)
            || !inside(park, PARK_BYTES as u64)
        {
            return Err(EINVAL);
        }
        // SAFETY: The ranges are pool memory (checked above) of the caller's instance, which no
        // CPU runs on while this writes (# Safety).
        let pgd =
            unsafe { bindings::multikernel_spawn_build_map(start, len, pt_start, pt_len, park) };
        if pgd == 0 {
            return Err(ENOMEM);
        }
        Ok(Self { pgd, memory, park })
    }
}

/// Arms `cpu` (offline) to enter `entry` on `map`, with RSI = `rsi` and RCX = `rcx`, on
/// stack `slot` of the map's park area (one slot per CPU of the instance, below 64). Both
/// addresses must lie inside the mapped memory (else `EINVAL`).
///
/// # Safety
///
/// The CPU will run whatever is at `entry`, in ring 0, with the map's page tables and park
/// area, from its next trip through `play_dead` on. The caller guarantees that what is
/// there is meant to run on that CPU (a kernel or park loop it wrote), that the page
/// tables and park area of `map` stay as built until the CPU leaves them, and that `slot`
/// is used by no other CPU at the same time.
pub(crate) unsafe fn arm(
    cpu: CpuId,
    map: &IdentityMap,
    rsi: u64,
    entry: u64,
    rcx: u64,
    slot: u32,
) -> Result {
    let (start, len) = map.memory;
    let inside = |addr: u64| addr >= start && addr - start < len;
    if !inside(rsi) || !inside(entry) {
        return Err(EINVAL);
    }
    // SAFETY: The map and addresses are inside the instance's memory (checked above and
    // by `IdentityMap::build`); the C side checks the CPU is valid and offline, and the
    // slot; what the CPU will run is the caller's guarantee (# Safety).
    to_result(unsafe {
        bindings::multikernel_spawn_arm(cpu.as_u32(), map.pgd, rsi, entry, rcx, map.park, slot)
    })
}

/// Fills `area` with what goes into the park area at `park` (physical): the loop an
/// instance's waiting CPUs run (position independent, entered with RSI = wakeup mailbox and
/// ECX = the CPU's APIC id), and the GDT and IDT every CPU enters on. `EINVAL` unless
/// `area` is [`PARK_BYTES`] long.
pub(crate) fn park_prepare(area: &mut [u8], park: u64) -> Result {
    // SAFETY: `area` is valid for writing `area.len()` bytes; the C side checks the length.
    to_result(unsafe {
        bindings::multikernel_park_prepare(area.as_mut_ptr().cast(), area.len(), park)
    })
}

/// `(TSC kHz, LAPIC timer period per tick, APIC id of cpu)`.
fn facts(cpu: u32) -> (u32, u32, u32) {
    let (mut tsc_khz, mut lapic_period, mut apic_id) = (0, 0, 0);
    // SAFETY: The pointers are valid for writing; any CPU id is accepted.
    unsafe { bindings::multikernel_host_facts(cpu, &mut tsc_khz, &mut lapic_period, &mut apic_id) };
    (tsc_khz, lapic_period, apic_id)
}

/// Whether this kernel runs with 5-level paging (`CR4.LA57`), the mode an instance kernel
/// is entered in.
pub(crate) fn host_la57() -> bool {
    // SAFETY: Reads a control register of this CPU; no preconditions.
    unsafe { bindings::multikernel_host_la57() }
}

/// Whether an instance kernel may trust the TSC without checking it: this kernel keeps
/// its own time with the TSC and has not found it unstable.
pub(crate) fn host_tsc_reliable() -> bool {
    // SAFETY: Reads this kernel's timekeeping state; no preconditions.
    unsafe { bindings::multikernel_host_tsc_reliable() }
}

/// This machine's timer facts an instance kernel takes over instead of calibrating:
/// `(TSC frequency in kHz, LAPIC timer period per tick)`.
pub(crate) fn host_timing() -> (u32, u32) {
    let (tsc_khz, lapic_period, _) = facts(0);
    (tsc_khz, lapic_period)
}

/// The APIC id of `cpu`, online or not.
pub(crate) fn apic_id(cpu: CpuId) -> u32 {
    facts(cpu.as_u32()).2
}

/// Takes offline `cpu` out of the host's view while an instance owns it: not present, no
/// `cpuN` device (as an ACPI hot-remove, without firmware). Nothing to do if it is not present.
pub(crate) fn hide_cpu(cpu: CpuId) -> Result {
    // SAFETY: Any CPU id is accepted; the C side takes the hotplug locks and refuses an online
    // CPU and the boot CPU.
    to_result(unsafe { bindings::multikernel_cpu_hide(cpu.as_u32()) })
}

/// Brings hidden `cpu` back into the host's view: present, with its device, still offline.
pub(crate) fn show_cpu(cpu: CpuId) -> Result {
    // SAFETY: Any CPU id is accepted; the C side takes the hotplug locks and refuses a CPU
    // that is not possible.
    to_result(unsafe { bindings::multikernel_cpu_show(cpu.as_u32()) })
}

/// Stops whatever runs on `cpu`, which must be offline in this kernel (else nothing
/// happens): an INIT IPI leaves it waiting for a SIPI, which this kernel's next bring-up of
/// the CPU sends.
pub(crate) fn reset_cpu(cpu: CpuId) {
    // SAFETY: The C side checks the CPU is valid and offline in this kernel.
    unsafe { bindings::multikernel_cpu_reset(cpu.as_u32()) }
}

/// Disarms `cpu`: its next `play_dead` halts as usual.
pub(crate) fn disarm(cpu: CpuId) {
    // SAFETY: Any CPU id is accepted; an unarmed CPU is left alone.
    unsafe { bindings::multikernel_spawn_disarm(cpu.as_u32()) }
}

/// Has the host's reboot notifier call `multikernel_host_going_down()` before a reboot,
/// power-off or halt, and its PM notifier `multikernel_sleep_refused()` before a suspend or
/// hibernation (`spawn_x86.c`). Once, after those functions can run.
pub(crate) fn watch_shutdown() -> Result {
    // SAFETY: Registers a static notifier block once; its callback only calls into the driver.
    to_result(unsafe { bindings::multikernel_reboot_notifier_register() })
}
