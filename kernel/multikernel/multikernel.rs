// SPDX-License-Identifier: GPL-2.0

//! Multikernel: several Linux kernels side by side, each on its own CPUs and memory.
//!
//! This crate is the host-side core. It owns the control tree in sysfs,
//! `/sys/kernel/multikernel/`, described in `Documentation/multikernel/` and
//! `Documentation/ABI/testing/sysfs-kernel-multikernel`.

use kernel::prelude::*;

mod control;

module! {
    type: Multikernel,
    name: "multikernel",
    authors: ["Multikernel developers"],
    description: "Run several Linux kernels side by side",
    license: "GPL",
}

/// The subsystem: for now, its control tree.
struct Multikernel {
    _control: control::Control,
}

impl kernel::Module for Multikernel {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let control = control::Control::new()?;
        pr_info!("multikernel {} ready\n", control::VERSION);
        Ok(Self { _control: control })
    }
}
