// SPDX-License-Identifier: GPL-2.0

//! Multikernel: several Linux kernels side by side, each on its own CPUs and memory.
//!
//! This crate is the host-side core: the pool allocator, CPU ownership, instance bookkeeping,
//! the inter-kernel channel (IKC) and the control tree in sysfs, `/sys/kernel/multikernel/`,
//! described in `Documentation/multikernel/` and
//! `Documentation/ABI/testing/sysfs-kernel-multikernel` (the code's layers:
//! `Documentation/multikernel/code-map.rst`).
//! The boot-time pool reservation is C (`pool_reserve.c`): it runs before Rust can.

use kernel::{
    cpu_hotplug::BringupGate,
    prelude::*, //
};

// Layers, from the bottom; a module imports only modules of its layer or below
// (Documentation/multikernel/code-map.rst).
mod base;
mod control;
mod files;
mod handover;
mod ikc;
mod instance;
mod kexec;
mod spawn;
mod sys;

module! {
    type: Multikernel,
    name: "multikernel",
    authors: ["Multikernel developers"],
    description: "Run several Linux kernels side by side",
    license: "GPL",
}

/// The subsystem. Fields drop in order: instances (giving their CPUs back) before the gate that
/// keeps owned CPUs offline.
struct Multikernel {
    /// In an instance kernel: its channel to the host.
    _guest: Option<ikc::guest::Guest>,
    _control: control::Control,
    _gate: BringupGate<base::cpus::OwnershipGate>,
}

impl kernel::Module for Multikernel {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: Module init runs once, before anything reports.
        unsafe { base::report::init() };
        // SAFETY: This driver is built in (`CONFIG_MULTIKERNEL` is a bool): `OwnershipGate`'s
        // code never goes away.
        let gate = unsafe { BringupGate::register(c"multikernel:owned") }?;
        sys::spawn::init()?;
        // SAFETY: Built-in init code (`CONFIG_MULTIKERNEL` is a bool): it runs among the
        // initcalls, before read-only-after-init data is sealed.
        unsafe { ikc::init() }?;
        // SAFETY: Once, from module init, before anything else reaches the registry (the
        // kexec entry is enabled below, sysfs appears with it).
        let control = unsafe { control::Control::new() }?;
        sys::spawn::watch_shutdown()?;
        // After a host update: the instances the previous kernel handed over (last: nothing
        // after this fails, which would drop what owns them).
        handover::adopt();
        kexec::enable();
        pr_info!(
            "multikernel {} ready, pool {} MiB\n",
            control::VERSION,
            control.pool_bytes() >> 20
        );
        Ok(Self {
            _guest: ikc::guest::Guest::open(),
            _control: control,
            _gate: gate,
        })
    }
}
