// SPDX-License-Identifier: GPL-2.0

//! Starting an instance's kernel on its first CPU (x86, EXPERIMENTAL).
//!
//! The CPU is offline and owned. It is armed (`kernel::multikernel::spawn`), brought online in
//! the host for a moment, and taken offline again: on its way out of this kernel, in
//! `play_dead`, it switches to an identity map of the instance's memory and jumps to the loaded
//! kernel's 64-bit entry. What works and what does not yet: Documentation/multikernel/spawn.rst.

use crate::{
    control::warn,
    cpus,
    instance::{
        Instance,
        State, //
    },
};
use kernel::{
    cpu::CpuId,
    cpu_hotplug,
    multikernel::spawn,
    prelude::*,
};

/// Starts `instance` (with its `ops` lock held).
pub(crate) fn start(instance: &Instance) -> Result {
    let name = instance.name.as_str();
    if instance.state() != State::Loaded {
        warn(format_args!("start {name}: instance is {}, not loaded", instance.state().as_str()));
        return Err(EBUSY);
    }
    let layout = instance.layout().ok_or(EINVAL)?;
    let entry = layout.entry;
    let cpu = *instance.cpus.first().ok_or(EINVAL)?;
    let id = CpuId::from_u32(cpu).ok_or(EINVAL)?;
    spawn::arm(
        id,
        spawn::Region {
            memory: (instance.memory.start, instance.memory.len),
            pagetables: (layout.pagetables.start, layout.pagetables.len),
            boot_params: layout.boot_params.start,
            entry,
        },
    )
        .inspect_err(|e| warn(format_args!("start {name}: cannot arm CPU {cpu} ({e:?})")))?;
    cpus::set_transit(cpu, true);
    let through = cpu_hotplug::online(id).and_then(|_| cpu_hotplug::offline(id));
    cpus::set_transit(cpu, false);
    if let Err(e) = through {
        spawn::disarm(id);
        // Leave the CPU as it was: offline and owned.
        let _ = cpu_hotplug::offline(id);
        warn(format_args!("start {name}: CPU {cpu} did not cycle through hotplug ({e:?})"));
        return Err(e);
    }
    instance.set_started();
    pr_info!("start {name}: CPU {cpu} entered the instance kernel at {entry:#x}\n");
    Ok(())
}
