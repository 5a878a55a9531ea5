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
        AtomicBool,
        AtomicU8,
        Ordering, //
    },
};
use kernel::{
    alloc::VVec,
    multikernel::PoolMapping,
    new_mutex,
    new_spinlock,
    prelude::*,
    time::{
        Instant,
        Monotonic, //
    },
    sync::{
        Mutex,
        MutexGuard,
        SpinLock, //
    },
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
    /// The loaded kernel was entered on the instance's first CPU and has not reported in yet.
    Starting = 2,
    /// The instance kernel reported in through its mailbox: its init is starting.
    Running = 3,
    /// The instance kernel did not report in within [`START_TIMEOUT_MS`].
    Failed = 4,
    /// The instance kernel was stopped by force (`kill`); the image stays loaded.
    Stopped = 5,
}

/// How long a started kernel has to report in before its instance is `failed`.
pub(crate) const START_TIMEOUT_MS: i64 = 30_000;

/// What an instance kernel writes into the first word of its mailbox once booted
/// (`instance_x86.c`), followed by its instance id.
const MAILBOX_MAGIC: u64 = 0x4e4e_5552_4b4d_554d;

impl State {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Loaded,
            2 => Self::Starting,
            3 => Self::Running,
            4 => Self::Failed,
            5 => Self::Stopped,
            _ => Self::Reserved,
        }
    }

    /// The word `instances/NAME/state` shows.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Loaded => "loaded",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }

    /// Whether `destroy` may remove an instance in this state (a loaded image is unloaded):
    /// not while its kernel may run.
    pub(crate) fn destroyable(self) -> bool {
        matches!(self, Self::Reserved | Self::Loaded | Self::Stopped)
    }

    /// Whether a kexec load or unload may replace what the instance has.
    pub(crate) fn loadable(self) -> bool {
        matches!(self, Self::Reserved | Self::Loaded | Self::Stopped)
    }

    /// Whether `start` may start the loaded kernel.
    pub(crate) fn startable(self) -> bool {
        matches!(self, Self::Loaded | Self::Stopped)
    }

    /// Whether `kill` has a kernel to stop.
    pub(crate) fn killable(self) -> bool {
        matches!(self, Self::Starting | Self::Running | Self::Failed)
    }
}

/// What is loaded, as `instances/NAME/image` shows it, and the bytes to write into the
/// instance's memory at each start (a run overwrites its own image: the kernel decompresses in
/// place).
pub(crate) struct ImageInfo {
    pub(crate) kernel_size: u64,
    pub(crate) initrd_size: u64,
    pub(crate) cmdline: KVec<u8>,
    pub(crate) layout: Layout,
    pub(crate) payload: VVec<u8>,
    pub(crate) initrd: VVec<u8>,
    pub(crate) boot_cmdline: KVec<u8>,
    pub(crate) zero_page: KBox<[u8; 4096]>,
}

impl ImageInfo {
    /// Writes the image into the instance's memory, as loaded: kernel, boot parameters,
    /// command line, initrd; clears the mailbox.
    pub(crate) fn write(&self, memory: Range) -> Result {
        let layout = &self.layout;
        let mut map = PoolMapping::new(memory.start, memory.len)?;
        let offset = |addr: u64| (addr - memory.start) as usize;
        map.write(offset(layout.kernel.start), &self.payload)?;
        map.write(offset(layout.boot_params.start), &self.zero_page[..])?;
        map.write(offset(layout.cmdline.start), &self.boot_cmdline)?;
        map.zero(offset(layout.cmdline.start) + self.boot_cmdline.len(), 1)?;
        map.zero(offset(layout.mailbox.start), layout.mailbox.len as usize)?;
        map.zero(offset(layout.park.start), layout.park.len as usize)?;
        map.write(offset(layout.park.start), kernel::multikernel::spawn::park_code())?;
        if let Some(range) = layout.initrd {
            map.write(offset(range.start), &self.initrd)?;
        }
        Ok(())
    }
}

/// An instance. Its id, name, CPUs and memory never change after creation, so its sysfs files
/// read them without locks; state and image change under `ops` and are read through an atomic
/// and the instance's own locks (never the registry lock: see `control.rs`).
#[pin_data]
pub(crate) struct Instance {
    pub(crate) id: u32,
    pub(crate) name: Name,
    /// Sorted, without duplicates.
    pub(crate) cpus: KVec<u32>,
    pub(crate) memory: Range,
    state: AtomicU8,
    /// Set by `destroy` before it removes the directory: operations started through the
    /// instance's own files then refuse.
    dying: AtomicBool,
    #[pin]
    /// A mutex, not a spinlock: `start` writes the image (megabytes) into the instance's
    /// memory while holding it.
    image: Mutex<Option<KBox<ImageInfo>>>,
    /// When the kernel was started, while `starting`.
    #[pin]
    started: SpinLock<Option<Instant<Monotonic>>>,
    /// Serialises what changes the instance's state: load, unload, start, destroy. Taken after
    /// the registry lock when both are needed; the instance's files take only this one.
    #[pin]
    pub(crate) ops: Mutex<()>,
}

impl Instance {
    pub(crate) fn new(id: u32, name: Name, cpus: KVec<u32>, memory: Range) -> impl PinInit<Self> {
        pin_init!(Self {
            id,
            name,
            cpus,
            memory,
            state: AtomicU8::new(State::Reserved as u8),
            dying: AtomicBool::new(false),
            image <- new_mutex!(None, "multikernel::Instance::image"),
            started <- new_spinlock!(None, "multikernel::Instance::started"),
            ops <- new_mutex!((), "multikernel::Instance::ops"),
        })
    }

    /// The state, after looking whether a starting kernel has reported in or run out of time.
    pub(crate) fn state(&self) -> State {
        let state = State::from_u8(self.state.load(Ordering::Acquire));
        if state != State::Starting {
            return state;
        }
        let Some(started) = *self.started.lock() else {
            return state;
        };
        let reported = self.layout().is_some_and(|layout| {
            let mut word = [0u8; 16];
            PoolMapping::new(layout.mailbox.start, 16)
                .and_then(|map| map.read(0, &mut word))
                .is_ok()
                && word[..8] == MAILBOX_MAGIC.to_le_bytes()
                && word[8..] == u64::from(self.id).to_le_bytes()
        });
        let elapsed = started.elapsed().as_millis();
        let new = if reported {
            State::Running
        } else if elapsed > START_TIMEOUT_MS {
            State::Failed
        } else {
            return state;
        };
        // Only the first reader to see the change makes and reports it.
        if self
            .state
            .compare_exchange(state as u8, new as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            *self.started.lock() = None;
            let name = self.name.as_str();
            if new == State::Running {
                pr_info!("{name}: running, reported in after {elapsed} ms\n");
            } else {
                crate::control::warn(format_args!(
                    "{name}: failed: its kernel did not report in within {} s",
                    START_TIMEOUT_MS / 1000
                ));
            }
        }
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Records that the kernel was entered now.
    pub(crate) fn set_started(&self) {
        *self.started.lock() = Some(Instant::<Monotonic>::now());
        self.set_state(State::Starting);
    }

    pub(crate) fn set_state(&self, state: State) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Marks the instance as being destroyed (with `ops` held).
    pub(crate) fn set_dying(&self) {
        self.dying.store(true, Ordering::Release);
    }

    /// The loaded image's layout, if one is loaded.
    pub(crate) fn layout(&self) -> Option<Layout> {
        self.image.lock().as_ref().map(|i| i.layout)
    }

    fn store_control(this: &Self, input: &[u8]) -> Result {
        crate::control::admin("control")?;
        let command = input.strip_suffix(b"\n").unwrap_or(input);
        let _ops = this.ops.lock();
        if this.dying.load(Ordering::Acquire) {
            return Err(ENOENT);
        }
        match command {
            b"start" => crate::spawn::start(this),
            b"kill" => crate::spawn::kill(this),
            _ => {
                crate::control::warn(format_args!(
                    "control {}: unknown command (known: start, kill)",
                    this.name.as_str()
                ));
                Err(EINVAL)
            }
        }
    }

    /// The image, locked.
    pub(crate) fn image(&self) -> MutexGuard<'_, Option<KBox<ImageInfo>>> {
        self.image.lock()
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
        segment("pagetables", &layout.pagetables)?;
        segment("mailbox", &layout.mailbox)?;
        segment("park", &layout.park)?;
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
            control: write_only(Instance::store_control),
        },
    }
}
