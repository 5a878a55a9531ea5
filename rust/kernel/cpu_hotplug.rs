// SPDX-License-Identifier: GPL-2.0

//! CPU hotplug: taking CPUs offline and online, and vetoing a CPU's bring-up.
//!
//! [`offline`] and [`online`] do what writing `0`/`1` to
//! `/sys/devices/system/cpu/cpuN/online` does (`device_offline()`/`device_online()` of the
//! CPU's device, with the device hotplug lock taken inside, as `remove_cpu()`/`add_cpu()`);
//! a CPU without a device (not present) is refused, not passed on. [`BringupGate`] registers
//! a dynamic hotplug state in the prepare stage whose callback can refuse to bring a CPU up:
//! the CPU is then never started, and the `online` request fails with the callback's error.
//!
//! C headers: [`include/linux/cpu.h`](srctree/include/linux/cpu.h),
//! [`include/linux/cpuhotplug.h`](srctree/include/linux/cpuhotplug.h).

use crate::{
    bindings,
    cpu::CpuId,
    cpumask::Cpumask,
    error::to_result,
    prelude::*, //
};
use core::marker::PhantomData;

/// What an [`offline`] or [`online`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The CPU changed state.
    Changed,
    /// The CPU already was in the requested state; nothing was done.
    AlreadyThere,
}

/// Converts what `remove_cpu()`/`add_cpu()` return (0, 1 for "already there", or `-errno`).
fn transition(ret: c_int) -> Result<Transition> {
    match ret {
        0 => Ok(Transition::Changed),
        1 => Ok(Transition::AlreadyThere),
        ret => to_result(ret).map(|()| Transition::Changed),
    }
}

/// Whether `cpu` is present (physically there; possibly offline).
pub fn is_present(cpu: CpuId) -> bool {
    // SAFETY: `__cpu_present_mask` is a static cpumask that lives forever; `test` reads one bit
    // atomically.
    unsafe { Cpumask::from_raw(&raw const bindings::__cpu_present_mask) }.test(cpu)
}

/// Whether `cpu` is online.
pub fn is_online(cpu: CpuId) -> bool {
    // SAFETY: `__cpu_online_mask` is a static cpumask that lives forever; `test` reads one bit
    // atomically.
    unsafe { Cpumask::from_raw(&raw const bindings::__cpu_online_mask) }.test(cpu)
}

/// Runs `op` (`device_offline()` or `device_online()`) on `cpu`'s device under the device
/// hotplug lock, as `remove_cpu()`/`add_cpu()` do; `None` if the CPU has no device (it is not
/// present). CPU devices are registered and removed (ACPI hot-plug) under the same lock, so the
/// device cannot go away in between.
fn on_device(
    cpu: CpuId,
    op: unsafe extern "C" fn(*mut bindings::device) -> c_int,
) -> Option<c_int> {
    // SAFETY: Takes the device hotplug lock; the caller is in process context (documented on
    // `offline`/`online`).
    unsafe { bindings::lock_device_hotplug() };
    // SAFETY: Any CPU id is accepted (NULL for one without a device).
    let dev = unsafe { bindings::get_cpu_device(cpu.as_u32()) };
    // SAFETY: `dev` is a registered CPU device, which stays while the lock is held.
    let ret = (!dev.is_null()).then(|| unsafe { op(dev) });
    // SAFETY: The lock was taken above.
    unsafe { bindings::unlock_device_hotplug() };
    ret
}

/// Takes `cpu` offline, as `echo 0 > /sys/devices/system/cpu/cpuN/online` does.
///
/// Fails with `ENODEV` if the CPU is not present (has no device), `EPERM` if it cannot be taken
/// offline (the boot CPU on x86), `EBUSY` while CPU hotplug is disabled, or another hotplug
/// error.
///
/// Takes the device hotplug lock and sleeps: must not be called from a hotplug callback.
pub fn offline(cpu: CpuId) -> Result<Transition> {
    transition(on_device(cpu, bindings::device_offline).ok_or(ENODEV)?)
}

/// Brings `cpu` online, as `echo 1 > /sys/devices/system/cpu/cpuN/online` does.
///
/// Fails with `ENODEV` if the CPU is not present (has no device), or the error of the hotplug
/// callback that refused it (for example a [`BringupGate`]).
///
/// Takes the device hotplug lock and sleeps: must not be called from a hotplug callback.
pub fn online(cpu: CpuId) -> Result<Transition> {
    transition(on_device(cpu, bindings::device_online).ok_or(ENODEV)?)
}

/// Decides whether a CPU may come online.
pub trait Gate {
    /// Called on the control CPU before `cpu` is started; an error stops the bring-up, and the
    /// online request fails with it.
    ///
    /// Runs with the CPU hotplug lock held: it must not sleep on locks that are held across
    /// [`offline`]/[`online`] calls, and must not call them.
    fn allow_bringup(cpu: CpuId) -> Result;
}

/// A registered [`Gate`]: a dynamic prepare-stage hotplug state. Dropping it unregisters it.
///
/// # Invariants
///
/// `state` is the dynamic hotplug state returned by `__cpuhp_setup_state()` for `G`'s callback.
pub struct BringupGate<G: Gate> {
    state: bindings::cpuhp_state,
    _gate: PhantomData<G>,
}

impl<G: Gate> BringupGate<G> {
    /// Registers the gate under `name` (shown in `/sys/devices/system/cpu/hotplug/states`). It
    /// applies to bring-ups that start after this returns; CPUs already online are not touched.
    ///
    /// # Safety
    ///
    /// The gate must be dropped before the code of `G` and the memory of `name` go away: either
    /// both are built into the kernel, or the returned value is dropped (never leaked with
    /// `mem::forget` or a leaked allocation) before the module that defines them is unloaded.
    /// The hotplug core keeps calling `G::allow_bringup` and showing `name` until the drop.
    pub unsafe fn register(name: &'static CStr) -> Result<Self> {
        // SAFETY: `name` is `'static`; the callback is a valid `extern "C"` function for the whole
        // life of the registration: it is `G`'s code, which stays until the drop unregisters it
        // (# Safety).
        let ret = unsafe {
            bindings::__cpuhp_setup_state(
                bindings::cpuhp_state_CPUHP_BP_PREPARE_DYN,
                name.as_char_ptr(),
                false,
                Some(Self::startup),
                None,
                false,
            )
        };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: For a dynamic state, a non-negative return is the allocated state.
        Ok(Self {
            state: ret as bindings::cpuhp_state,
            _gate: PhantomData,
        })
    }

    extern "C" fn startup(cpu: c_uint) -> c_int {
        // The hotplug core only passes CPU ids below `nr_cpu_ids`.
        let Some(cpu) = CpuId::from_u32(cpu) else {
            return EINVAL.to_errno();
        };
        match G::allow_bringup(cpu) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }
}

impl<G: Gate> Drop for BringupGate<G> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants `state` was set up by us and not removed yet.
        unsafe { bindings::__cpuhp_remove_state(self.state, false) };
    }
}
