// SPDX-License-Identifier: GPL-2.0

//! CPU ownership: which CPUs instances hold, taking them from the host and giving them back.
//!
//! An owned CPU is offline in the host and marked here. The mark is what [`OwnershipGate`], a
//! CPU hotplug prepare-stage callback, checks: bringing an owned CPU online fails with `EBUSY`
//! before the CPU is started, whoever asks (`echo 1 > /sys/devices/system/cpu/cpuN/online`
//! included). The marks are atomics, not behind the registry lock, because the gate runs with
//! the CPU hotplug lock held while the registry lock is held across hotplug calls.

use core::sync::atomic::{
    AtomicI32,
    AtomicU64,
    Ordering, //
};
use kernel::{
    cpu::CpuId,
    cpu_hotplug::{
        self,
        Gate,
        Transition, //
    },
    prelude::*,
};

/// CPUs numbered at or above this cannot be owned (the parser refuses them).
pub(crate) const MAX_CPUS: u32 = 8192;

type CpuBits = [AtomicU64; (MAX_CPUS / 64) as usize];

/// CPUs owned by instances.
static OWNED: CpuBits = [const { AtomicU64::new(0) }; (MAX_CPUS / 64) as usize];
/// Owned CPUs the host may briefly bring up (on their way into an instance kernel, which they
/// enter when taken offline again, `spawn.rs`; or to take them back), each with the task that
/// may: its pid, 0 for none. Anyone else asking meanwhile (a udev rule that onlines every CPU
/// that appears, a write to its `online` file) is refused as at any other time.
static TRANSIT: [AtomicI32; MAX_CPUS as usize] = [const { AtomicI32::new(0) }; MAX_CPUS as usize];

fn word_bit(bits: &'static CpuBits, cpu: u32) -> Option<(&'static AtomicU64, u64)> {
    bits.get((cpu / 64) as usize)
        .map(|word| (word, 1u64 << (cpu % 64)))
}

fn test(bits: &'static CpuBits, cpu: u32) -> bool {
    word_bit(bits, cpu).is_some_and(|(word, bit)| word.load(Ordering::Acquire) & bit != 0)
}

fn assign(bits: &'static CpuBits, cpu: u32, value: bool) {
    if let Some((word, bit)) = word_bit(bits, cpu) {
        if value {
            word.fetch_or(bit, Ordering::AcqRel);
        } else {
            word.fetch_and(!bit, Ordering::AcqRel);
        }
    }
}

/// Whether an instance owns `cpu`.
pub(crate) fn is_owned(cpu: u32) -> bool {
    test(&OWNED, cpu)
}

fn set_owned(cpu: u32, owned: bool) {
    assign(&OWNED, cpu, owned)
}

/// Lets the current task bring owned `cpu` up despite the gate (`transit`), or no longer.
pub(crate) fn set_transit(cpu: u32, transit: bool) {
    if let Some(slot) = TRANSIT.get(cpu as usize) {
        let pid = if transit { kernel::current!().pid() } else { 0 };
        slot.store(pid, Ordering::Release);
    }
}

/// Whether the current task may bring owned `cpu` up ([`set_transit`]).
fn in_transit(cpu: u32) -> bool {
    TRANSIT
        .get(cpu as usize)
        .is_some_and(|slot| slot.load(Ordering::Acquire) == kernel::current!().pid())
}

/// Refuses to bring up owned CPUs. The hotplug core runs prepare-stage callbacks in the task
/// that asked for the bring-up, so [`in_transit`] sees who asks.
pub(crate) struct OwnershipGate;

impl Gate for OwnershipGate {
    fn allow_bringup(cpu: CpuId) -> Result {
        if is_owned(cpu.as_u32()) && !in_transit(cpu.as_u32()) {
            Err(EBUSY)
        } else {
            Ok(())
        }
    }
}

/// Why a CPU cannot be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a CPU of this machine.
    NotPresent,
    /// The boot CPU, which the host cannot give up.
    BootCpu,
    /// Already owned by an instance.
    Owned,
    /// Offline in the host (taken down by an administrator): not the host's to give.
    Offline,
    /// The hotplug core refused to take it offline, with this error.
    Hotplug(Error),
}

impl Refusal {
    pub(crate) fn errno(self) -> Error {
        match self {
            Self::NotPresent => EINVAL,
            Self::Hotplug(e) if e == ENOMEM => ENOMEM,
            _ => EBUSY,
        }
    }
}

/// Checks that `cpu` can be taken, without changing anything.
pub(crate) fn check(cpu: u32) -> core::result::Result<(), Refusal> {
    let id = CpuId::from_u32(cpu).ok_or(Refusal::NotPresent)?;
    // Before presence: the host does not show a CPU an instance owns.
    if is_owned(cpu) {
        return Err(Refusal::Owned);
    }
    if !cpu_hotplug::is_present(id) {
        return Err(Refusal::NotPresent);
    }
    // On x86 the boot CPU is always CPU 0, and the host cannot run without it.
    if cpu == 0 {
        return Err(Refusal::BootCpu);
    }
    if !cpu_hotplug::is_online(id) {
        return Err(Refusal::Offline);
    }
    Ok(())
}

/// Takes `cpus` from the host: marks each owned, then takes it offline. All or nothing: if one
/// fails, those already taken are given back, and the failing CPU and the error are returned.
///
/// Sleeps (CPU hotplug); the caller serialises calls for overlapping sets.
pub(crate) fn take(cpus: &[u32]) -> core::result::Result<(), (u32, Refusal)> {
    for cpu in cpus {
        check(*cpu).map_err(|r| (*cpu, r))?;
    }
    for (done, &cpu) in cpus.iter().enumerate() {
        // `check` accepted it, so the id is valid.
        let Some(id) = CpuId::from_u32(cpu) else {
            continue;
        };
        // Mark first: from here the host cannot bring it back while we take it down.
        set_owned(cpu, true);
        let result = match cpu_hotplug::offline(id) {
            Ok(Transition::Changed) => Ok(()),
            // Someone else took it offline since `check`: not ours to take.
            Ok(Transition::AlreadyThere) => Err(Refusal::Offline),
            Err(e) => Err(Refusal::Hotplug(e)),
        };
        if let Err(refusal) = result {
            set_owned(cpu, false);
            // A CPU that refuses to come back stays offline and unowned; the host can retry.
            let _ = give_back(&cpus[..done]);
            return Err((cpu, refusal));
        }
    }
    Ok(())
}

/// Marks `cpus` owned without taking them offline: a host update's instance runs on them, and
/// this kernel never brought them up. `EBUSY` (nothing marked) if one is owned already.
pub(crate) fn adopt(cpus: &[u32]) -> Result {
    if cpus.iter().any(|&cpu| is_owned(cpu) || cpu >= MAX_CPUS) {
        return Err(EBUSY);
    }
    for &cpu in cpus {
        set_owned(cpu, true);
    }
    Ok(())
}

/// Gives `cpus` back to the host: clears the marks and brings each online. A CPU the hotplug
/// core refuses to bring up stays offline (and unowned: the host can retry); it is reported in
/// the result, first failure only.
pub(crate) fn give_back(cpus: &[u32]) -> core::result::Result<(), (u32, Error)> {
    let mut first_error = Ok(());
    for &cpu in cpus {
        set_owned(cpu, false);
        let Some(id) = CpuId::from_u32(cpu) else {
            continue;
        };
        if let Err(e) = cpu_hotplug::online(id) {
            if first_error.is_ok() {
                first_error = Err((cpu, e));
            }
        }
    }
    first_error
}

#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
#[kunit_tests(multikernel_cpus)]
mod tests {
    use super::*;

    /// The marks are per CPU, across word boundaries, and out-of-range CPUs are never owned.
    #[test]
    fn ownership_marks() {
        // High CPU numbers that do not exist on a test machine, so nothing real is touched.
        for cpu in [MAX_CPUS - 1, MAX_CPUS - 64, MAX_CPUS - 65] {
            assert!(!is_owned(cpu));
            set_owned(cpu, true);
            assert!(is_owned(cpu));
            assert!(!is_owned(cpu ^ 1));
            set_owned(cpu, false);
            assert!(!is_owned(cpu));
        }
        set_owned(MAX_CPUS, true);
        assert!(!is_owned(MAX_CPUS));
        assert!(!is_owned(u32::MAX));
    }

    #[test]
    fn refusals() {
        assert_eq!(check(0), Err(Refusal::BootCpu));
        assert_eq!(check(MAX_CPUS - 1), Err(Refusal::NotPresent));
        assert_eq!(Refusal::NotPresent.errno(), EINVAL);
        assert_eq!(Refusal::BootCpu.errno(), EBUSY);
        assert_eq!(Refusal::Hotplug(EPERM).errno(), EBUSY);
        // An empty set is trivially taken and given back.
        assert_eq!(take(&[]), Ok(()));
        assert_eq!(give_back(&[]), Ok(()));
    }

    /// A take that fails part-way gives back what it took: real CPU hotplug on the last CPU.
    #[test]
    fn take_rolls_back_on_partial_failure() {
        let last = kernel::cpu::nr_cpu_ids() - 1;
        let Some(id) = CpuId::from_u32(last) else {
            return;
        };
        if check(last).is_err() {
            // A uniprocessor machine, or the CPU is not the host's to take: nothing to test.
            return;
        }
        // Listed twice: the first pass takes it offline, the second finds it already offline
        // and refuses, part-way through.
        assert_eq!(take(&[last, last]), Err((last, Refusal::Offline)));
        assert!(!is_owned(last));
        assert!(cpu_hotplug::is_online(id));
        // And a take that works is undone by give_back.
        assert_eq!(take(&[last]), Ok(()));
        assert!(is_owned(last));
        assert!(!cpu_hotplug::is_online(id));
        assert_eq!(give_back(&[last]), Ok(()));
        assert!(!is_owned(last));
        assert!(cpu_hotplug::is_online(id));
    }
}
