// SPDX-License-Identifier: GPL-2.0

//! Starting and stopping an instance's kernel on its first CPU (x86, EXPERIMENTAL).
//!
//! Start: the image is written afresh into the instance's memory (a previous run decompressed
//! over it), the CPU (offline, owned) is armed (`kernel::multikernel::spawn`), brought online in
//! the host for a moment and taken offline again: on its way out of this kernel, in
//! `play_dead`, it switches to an identity map of the instance's memory and jumps to the
//! kernel's 64-bit entry. Kill: an INIT IPI puts the CPU back in wait-for-SIPI, where the host's
//! next bring-up (a start, or a destroy giving the CPU back) finds it.
//! See Documentation/multikernel/spawn.rst.

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
    let state = instance.state();
    if !state.startable() {
        warn(format_args!("start {name}: instance is {}, not loaded", state.as_str()));
        return Err(EBUSY);
    }
    let layout = {
        let image = instance.image();
        let image = image.as_ref().ok_or(EINVAL)?;
        image
            .write(instance.memory)
            .inspect_err(|e| warn(format_args!("start {name}: cannot write the image ({e:?})")))?;
        image.layout
    };
    let cpu = *instance.cpus.first().ok_or(EINVAL)?;
    let id = CpuId::from_u32(cpu).ok_or(EINVAL)?;
    spawn::arm(
        id,
        spawn::Region {
            memory: (instance.memory.start, instance.memory.len),
            pagetables: (layout.pagetables.start, layout.pagetables.len),
            boot_params: layout.boot_params.start,
            entry: layout.entry,
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
    pr_info!("start {name}: CPU {cpu} entered the instance kernel at {:#x}\n", layout.entry);
    Ok(())
}

/// Stops `instance`'s kernel by force (with its `ops` lock held): INIT to its CPUs.
pub(crate) fn kill(instance: &Instance) -> Result {
    let name = instance.name.as_str();
    let state = instance.state();
    if !state.killable() {
        warn(format_args!("kill {name}: instance is {}, nothing runs", state.as_str()));
        return Err(EBUSY);
    }
    for &cpu in instance.cpus.iter() {
        if let Some(id) = CpuId::from_u32(cpu) {
            spawn::disarm(id);
            spawn::reset_cpu(id);
        }
    }
    instance.set_state(State::Stopped);
    pr_info!("kill {name}: stopped\n");
    Ok(())
}
