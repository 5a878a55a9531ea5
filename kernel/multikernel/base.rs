// SPDX-License-Identifier: GPL-2.0

//! Logic that imports nothing else of the driver but a constant of `sys` (and `sys::lz4` in a
//! KUnit suite), most of it pure and covered by KUnit. Parsing and formats (`spec`, `wire`,
//! `ring`, `stream`, `loader`, `vmlinux`), the pool allocator (`pool`), CPU ownership
//! (`cpus`), and refusal messages (`report`).

pub(crate) mod cpus;
pub(crate) mod handover;
pub(crate) mod loader;
pub(crate) mod pool;
pub(crate) mod report;
pub(crate) mod ring;
pub(crate) mod spec;
pub(crate) mod stream;
pub(crate) mod vmlinux;
pub(crate) mod wire;
