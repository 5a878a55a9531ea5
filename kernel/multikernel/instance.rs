// SPDX-License-Identifier: GPL-2.0

//! An instance: a name, an id, the CPUs and memory it owns, and its state; and its sysfs
//! directory, `/sys/kernel/multikernel/instances/NAME/`.

use crate::{
    pool::Range,
    spec::{
        self,
        Name, //
    },
};
use core::{
    fmt::Write,
    sync::atomic::{
        AtomicU8,
        Ordering, //
    },
};
use kernel::{
    prelude::*,
    sysfs::ShowBuffer, //
};

/// Instance ids are 1..=MAX_ID: the kexec interface carries them in 12 bits.
pub(crate) const MAX_ID: u32 = 4095;

/// The life cycle of an instance. Only `Reserved` exists so far; later stages add loading,
/// starting, running and stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// CPUs and memory are held; nothing is loaded.
    Reserved = 0,
}

impl State {
    /// Decodes what [`Instance`] stores; only values of `State as u8` are ever stored.
    fn from_u8(value: u8) -> Self {
        debug_assert_eq!(value, Self::Reserved as u8);
        Self::Reserved
    }

    /// The word `instances/NAME/state` shows.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
        }
    }

    /// Whether `destroy` may remove an instance in this state.
    pub(crate) fn destroyable(self) -> bool {
        match self {
            Self::Reserved => true,
        }
    }
}

/// An instance. Its fields but `state` never change after creation, so its sysfs files read
/// them without locks (and never take the registry lock: see `control.rs`).
pub(crate) struct Instance {
    pub(crate) id: u32,
    pub(crate) name: Name,
    /// Sorted, without duplicates.
    pub(crate) cpus: KVec<u32>,
    pub(crate) memory: Range,
    state: AtomicU8,
}

impl Instance {
    pub(crate) fn new(id: u32, name: Name, cpus: KVec<u32>, memory: Range) -> Self {
        Self {
            id,
            name,
            cpus,
            memory,
            state: AtomicU8::new(State::Reserved as u8),
        }
    }

    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    fn show_id(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{}", this.id)?;
        Ok(())
    }

    fn show_cpus(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        spec::write_cpulist(buf, &this.cpus)?;
        writeln!(buf)?;
        Ok(())
    }

    fn show_memory(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{:#x}-{:#x}", this.memory.start, this.memory.last())?;
        Ok(())
    }

    fn show_state(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{}", this.state().as_str())?;
        Ok(())
    }
}

kernel::sysfs_attributes! {
    impl DirData for Instance {
        group {
            id: read_only(Instance::show_id),
            cpus: read_only(Instance::show_cpus),
            memory: read_only(Instance::show_memory),
            state: read_only(Instance::show_state),
        },
    }
}
