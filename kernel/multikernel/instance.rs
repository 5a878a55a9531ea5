// SPDX-License-Identifier: GPL-2.0

//! An instance: a name, an id, the CPUs and memory it owns, its state and loaded image; and its
//! sysfs directory, `/sys/kernel/multikernel/instances/NAME/`.

use crate::{
    loader::Layout,
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
    new_spinlock,
    prelude::*,
    sync::SpinLock,
    sysfs::ShowBuffer, //
};

/// Instance ids are 1..=MAX_ID: the kexec interface carries them in 12 bits.
pub(crate) const MAX_ID: u32 = 4095;

/// The life cycle of an instance. Later stages add starting, running and stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// CPUs and memory are held; nothing is loaded.
    Reserved = 0,
    /// A kernel is loaded into the instance's memory.
    Loaded = 1,
}

impl State {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Loaded,
            _ => Self::Reserved,
        }
    }

    /// The word `instances/NAME/state` shows.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Loaded => "loaded",
        }
    }

    /// Whether `destroy` may remove an instance in this state (a loaded image is unloaded).
    pub(crate) fn destroyable(self) -> bool {
        matches!(self, Self::Reserved | Self::Loaded)
    }

    /// Whether a kexec load or unload may replace what the instance has.
    pub(crate) fn loadable(self) -> bool {
        matches!(self, Self::Reserved | Self::Loaded)
    }
}

/// What is loaded, as `instances/NAME/image` shows it.
pub(crate) struct ImageInfo {
    pub(crate) kernel_size: u64,
    pub(crate) initrd_size: u64,
    pub(crate) cmdline: KVec<u8>,
    pub(crate) layout: Layout,
}

/// An instance. Its id, name, CPUs and memory never change after creation, so its sysfs files
/// read them without locks; state and image change under the registry lock and are read with
/// an atomic and the instance's own spinlock (never the registry lock: see `control.rs`).
#[pin_data]
pub(crate) struct Instance {
    pub(crate) id: u32,
    pub(crate) name: Name,
    /// Sorted, without duplicates.
    pub(crate) cpus: KVec<u32>,
    pub(crate) memory: Range,
    state: AtomicU8,
    #[pin]
    image: SpinLock<Option<KBox<ImageInfo>>>,
}

impl Instance {
    pub(crate) fn new(id: u32, name: Name, cpus: KVec<u32>, memory: Range) -> impl PinInit<Self> {
        pin_init!(Self {
            id,
            name,
            cpus,
            memory,
            state: AtomicU8::new(State::Reserved as u8),
            image <- new_spinlock!(None, "multikernel::Instance::image"),
        })
    }

    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Records a newly loaded image (state `loaded`), or none (state `reserved`).
    /// Called with the registry lock held.
    pub(crate) fn set_image(&self, image: Option<KBox<ImageInfo>>) {
        let state = if image.is_some() {
            State::Loaded
        } else {
            State::Reserved
        };
        let old = core::mem::replace(&mut *self.image.lock(), image);
        self.state.store(state as u8, Ordering::Release);
        drop(old);
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

    fn show_image(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        let image = this.image.lock();
        let Some(image) = image.as_ref() else {
            return Ok(());
        };
        writeln!(buf, "kernel_size {}", image.kernel_size)?;
        writeln!(buf, "initrd_size {}", image.initrd_size)?;
        buf.write_str("cmdline ")?;
        for &b in image.cmdline.iter() {
            // The command line is the loader's bytes: keep the file one line per field.
            let c = if b == b' ' || b.is_ascii_graphic() { b } else { b'?' };
            buf.write_bytes(&[c])?;
        }
        writeln!(buf)?;
        let layout = &image.layout;
        writeln!(buf, "entry {:#x}", layout.entry)?;
        let mut segment = |name: &str, r: &Range| -> Result {
            writeln!(buf, "segment {name} {:#x}-{:#x}", r.start, r.last())?;
            Ok(())
        };
        segment("kernel", &layout.kernel)?;
        segment("boot_params", &layout.boot_params)?;
        segment("cmdline", &layout.cmdline)?;
        if let Some(initrd) = &layout.initrd {
            if initrd.len > 0 {
                segment("initrd", initrd)?;
            }
        }
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
            image: read_only(Instance::show_image),
        },
    }
}
