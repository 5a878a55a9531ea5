// SPDX-License-Identifier: GPL-2.0

//! The driver's side of the machine: safe wrappers around its C and assembly (`spawn_x86.c`,
//! `spawn_entry.S`, `instance_x86.c`, `ikc_x86.c`, `include/linux/multikernel.h`) and the kernel
//! services it uses in ways `kernel::` has no abstraction for. Nothing here imports another
//! module of the driver; everything above reaches the machine only through here.

pub(crate) mod baseline;
pub(crate) mod device;
pub(crate) mod doorbell;
pub(crate) mod handover;
pub(crate) mod kexec;
pub(crate) mod lz4;
pub(crate) mod mapping;
pub(crate) mod pool_map;
pub(crate) mod shared;
pub(crate) mod spawn;
pub(crate) mod worker;
