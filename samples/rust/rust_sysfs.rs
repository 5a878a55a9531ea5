// SPDX-License-Identifier: GPL-2.0

//! Rust sysfs sample: a loadable module that publishes a counter with `kernel::sysfs`.
//!
//! ```text
//! /sys/kernel/rust_sysfs/
//! ├── value          (0644) decimal u64; write a decimal number to set it
//! ├── reset          (0200) write "1" to set value to 0
//! ├── secret         (0400) root-only read: "42\n"
//! ├── stats/writes   (0444) number of accepted writes to value and reset
//! └── child/         an empty directory, removed before its parent
//! ```
//!
//! The multikernel kselftest `sysfs_sample_test` loads and unloads it to check the abstraction's
//! store path, errors and teardown from userspace.

use core::fmt::Write;
use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};
use kernel::{
    prelude::*,
    sysfs::{
        self,
        Dir,
        KObject,
        ShowBuffer, //
    }, //
};

module! {
    type: RustSysfs,
    name: "rust_sysfs",
    authors: ["Multikernel developers"],
    description: "Rust sysfs sample",
    license: "GPL",
}

struct Counter {
    value: AtomicU64,
    writes: AtomicU64,
}

/// Parses one decimal `u64`, allowing one trailing newline (what `echo` adds).
fn parse_u64(input: &[u8]) -> Result<u64> {
    let digits = input.strip_suffix(b"\n").unwrap_or(input);
    if digits.is_empty() || digits.len() > 20 {
        return Err(EINVAL);
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(EINVAL);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(ERANGE)?;
    }
    Ok(value)
}

impl Counter {
    fn show_value(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{}", this.value.load(Ordering::Relaxed))?;
        Ok(())
    }

    fn store_value(this: &Self, input: &[u8]) -> Result {
        let value = parse_u64(input)?;
        this.value.store(value, Ordering::Relaxed);
        this.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn store_reset(this: &Self, input: &[u8]) -> Result {
        if parse_u64(input)? != 1 {
            return Err(EINVAL);
        }
        this.value.store(0, Ordering::Relaxed);
        this.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn show_secret(_this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        buf.write_bytes(b"42\n")
    }

    fn show_writes(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{}", this.writes.load(Ordering::Relaxed))?;
        Ok(())
    }
}

kernel::sysfs_attributes! {
    impl DirData for Counter {
        group {
            value: read_write(Counter::show_value, Counter::store_value),
            reset: write_only(Counter::store_reset),
            secret: read_only(Counter::show_secret) mode 0o400,
        },
        group stats {
            writes: read_only(Counter::show_writes),
        },
    }
}

struct RustSysfs {
    // Dropped in declaration order: the child before its parent.
    _child: Dir<sysfs::Empty>,
    _dir: Dir<Counter>,
}

impl kernel::Module for RustSysfs {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let dir = Dir::new(
            KObject::kernel().ok_or(ENODEV)?,
            c"rust_sysfs",
            Counter {
                value: AtomicU64::new(0),
                writes: AtomicU64::new(0),
            },
        )?;
        let child = Dir::new(dir.kobject(), c"child", sysfs::Empty)?;
        Ok(Self {
            _child: child,
            _dir: dir,
        })
    }
}
