// SPDX-License-Identifier: GPL-2.0

//! An instance: a name, an id, the CPUs and memory it owns, its state and loaded image. Its
//! sysfs files are `files.rs`, a layer above (they start and kill it through `spawn.rs`).

use crate::{
    base::{
        loader::Layout,
        pool::Range,
        spec::{
            Name,
            Policy, //
        },
    },
    ikc::{
        ConsoleLog,
        Endpoint,
        LinkState,
        PortRegistration, //
    },
    sys::{
        device::MessageDevice,
        pool_map::PoolMapping, //
    },
};
use core::sync::atomic::{
    AtomicBool,
    AtomicU32,
    AtomicU64,
    Ordering, //
};
use kernel::{
    alloc::VVec,
    prelude::*,
    str::CString,
    sync::{
        new_mutex,
        new_spinlock,
        Arc,
        Mutex,
        MutexGuard,
        SpinLock, //
    },
    time::{
        Instant,
        Monotonic, //
    },
    workqueue::DelayedWork,
};

/// Instance ids are 1..=MAX_ID: the kexec interface carries them in 12 bits.
pub(crate) const MAX_ID: u32 = crate::sys::kexec::MAX_ID as u32;

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
    /// The instance kernel did not report in within its `start_timeout_ms`.
    Failed = 4,
    /// The instance kernel was stopped by force (`kill`); the image stays loaded.
    Stopped = 5,
    /// The instance kernel stopped beating (`ikc.rs`): it hangs or panicked.
    Crashed = 6,
    /// `control stop` asked the instance kernel to shut down; it has not reported yet.
    Stopping = 7,
}

/// `Instance::state`: the state's byte, the stop reason's, and the run above them.
const STATE_MASK: u64 = 0xff;
const STOP_SHIFT: u32 = 8;
const STOP_MASK: u64 = 0xff << STOP_SHIFT;
const RUN_SHIFT: u32 = 16;

/// The state in a word of `Instance::state`.
fn state_in(word: u64) -> State {
    State::from_u8(word as u8)
}

/// `word` with the state `state` and, given one, the stop reason `reason` (the run kept).
fn compose(word: u64, state: State, reason: Option<StopReason>) -> u64 {
    let word = (word & !STATE_MASK) | state as u64;
    match reason {
        Some(reason) => (word & !STOP_MASK) | (reason as u64) << STOP_SHIFT,
        None => word,
    }
}

/// The run in a word of `Instance::state`.
fn run_in(word: u64) -> u64 {
    word >> RUN_SHIFT
}

/// Why an instance's kernel last stopped, as `instances/NAME/last_stop` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum StopReason {
    /// It never stopped.
    None = 0,
    /// `poweroff` inside the instance.
    Poweroff = 1,
    /// `reboot` inside the instance.
    Reboot = 2,
    /// `halt` inside the instance.
    Halt = 3,
    /// `kexec -e` inside the instance: stopped instead of jumping to another kernel.
    Kexec = 4,
    /// It panicked (a crash kernel, if one was loaded, is not entered).
    Panic = 5,
    /// `kill` from the host.
    Kill = 6,
    /// It did not report in within its `start_timeout_ms`, or its CPUs did not come back.
    Failed = 7,
    /// It stopped beating.
    NoHeartbeat = 8,
    /// `control stop`: it shut down in order when asked.
    Stop = 9,
    /// `control stop`: it did not stop within its `stop_timeout_ms`, and was killed.
    StopTimeout = 10,
}

impl StopReason {
    /// Every reason, in the order of their values.
    const ALL: [Self; 11] = [
        Self::None,
        Self::Poweroff,
        Self::Reboot,
        Self::Halt,
        Self::Kexec,
        Self::Panic,
        Self::Kill,
        Self::Failed,
        Self::NoHeartbeat,
        Self::Stop,
        Self::StopTimeout,
    ];

    fn from_u8(value: u8) -> Self {
        Self::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or(Self::None)
    }

    /// What an instance kernel wrote into its mailbox (`MULTIKERNEL_STOP_*`), if it is one of
    /// the reasons it may give.
    fn reported(word: u32) -> Option<Self> {
        use crate::sys::spawn::stop;
        match word {
            stop::POWEROFF => Some(Self::Poweroff),
            stop::REBOOT => Some(Self::Reboot),
            stop::HALT => Some(Self::Halt),
            stop::KEXEC => Some(Self::Kexec),
            stop::PANIC => Some(Self::Panic),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Poweroff => "poweroff",
            Self::Reboot => "reboot",
            Self::Halt => "halt",
            Self::Kexec => "kexec",
            Self::Panic => "crashed: panic",
            Self::Kill => "kill",
            Self::Failed => "failed",
            Self::NoHeartbeat => "crashed: no heartbeat",
            Self::Stop => "stop",
            Self::StopTimeout => "stop: timed out, killed",
        }
    }
}

/// How long a started kernel has to report in before its instance is `failed`.
pub(crate) const START_TIMEOUT_DEFAULT_MS: u32 = 30_000;
/// The longest `start_timeout_ms` and `stop_timeout_ms` accepted (10 minutes).
pub(crate) const TIMEOUT_MAX_MS: u32 = 600_000;

impl State {
    /// Every state, in the order of their values.
    const ALL: [Self; 8] = [
        Self::Reserved,
        Self::Loaded,
        Self::Starting,
        Self::Running,
        Self::Failed,
        Self::Stopped,
        Self::Crashed,
        Self::Stopping,
    ];

    fn from_u8(value: u8) -> Self {
        Self::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or(Self::Reserved)
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
            Self::Crashed => "crashed",
            Self::Stopping => "stopping",
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

    /// Whether `kill` has a kernel to stop: its kernel may run on its CPUs.
    pub(crate) fn killable(self) -> bool {
        matches!(
            self,
            Self::Starting | Self::Running | Self::Stopping | Self::Failed | Self::Crashed
        )
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
    /// The instance's memory holds the image as loaded (no run has decompressed over it
    /// since it was written): the next start need not write it again.
    pub(crate) fresh: bool,
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
        let mut park = KVec::from_elem(0u8, layout.park.len as usize, GFP_KERNEL)?;
        crate::sys::spawn::park_prepare(&mut park, layout.park.start)?;
        map.write(offset(layout.park.start), &park)?;
        if let Some(range) = layout.initrd {
            map.write(offset(range.start), &self.initrd)?;
        }
        Ok(())
    }
}

/// An instance's character devices.
struct Devices {
    _ikc: Pin<KBox<MessageDevice<Endpoint>>>,
    _console: Pin<KBox<MessageDevice<ConsoleLog>>>,
}

impl Devices {
    fn register(name: Name, endpoint: &Arc<Endpoint>, console: &Arc<ConsoleLog>) -> Result<Self> {
        let ikc = CString::try_from_fmt(fmt!("mk-{}", name.as_str()))?;
        let log = CString::try_from_fmt(fmt!("mk-{}.console", name.as_str()))?;
        Ok(Self {
            _ikc: MessageDevice::register(ikc, 0o600, endpoint.clone())?,
            _console: MessageDevice::register(log, 0o400, console.clone())?,
        })
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
    /// One word: the [`State`] in the low byte, why the kernel last stopped ([`StopReason`])
    /// in the next, above them the run, bumped by every `start`: a reader that saw an earlier
    /// run cannot move a later one on (its compare-exchange fails).
    state: AtomicU64,
    /// Its CPUs are known to be out of the instance kernel (never entered, or brought up in
    /// the host since it last ran): its memory may be rewritten or given away.
    cpus_out: AtomicBool,
    /// Something was written into its memory (a load; a kernel ran there): `destroy` scrubs it.
    dirty: AtomicBool,
    /// Set by `destroy` before it removes the directory: operations started through the
    /// instance's own files then refuse.
    dying: AtomicBool,
    #[pin]
    /// A mutex, not a spinlock: `start` writes the image (megabytes) into the instance's
    /// memory while holding it.
    image: Mutex<Option<KBox<ImageInfo>>>,
    /// Which run was started, and when (read while `starting`).
    #[pin]
    started: SpinLock<Option<(u64, Instant<Monotonic>)>>,
    /// Serialises what changes the instance's state: load, unload, start, destroy. Taken after
    /// the registry lock when both are needed; the instance's files take only this one.
    #[pin]
    pub(crate) ops: Mutex<()>,
    /// The channel to its kernel while it runs; the message device reads and writes it.
    pub(crate) endpoint: Arc<Endpoint>,
    /// Its kernel's recent console output, kept across restarts.
    pub(crate) console: Arc<ConsoleLog>,
    /// `/dev/mk-NAME` and `/dev/mk-NAME.console`, taken out by `destroy` (the directory may
    /// outlive it while its files are open, the device names must not).
    #[pin]
    devices: Mutex<Option<Devices>>,
    /// The console service on its channels, for as long as the instance exists.
    _console_service: PortRegistration,
    /// How long `control stop` waits for the kernel to stop before it kills it.
    pub(crate) stop_timeout_ms: AtomicU32,
    /// How long a started kernel has to report in before the instance is `failed`.
    pub(crate) start_timeout_ms: AtomicU32,
    /// What happens when its kernel reboots (`on_reboot=`).
    pub(crate) on_reboot: Policy,
    /// What happens when its kernel crashes (`on_crash=`).
    pub(crate) on_crash: Policy,
    /// Automatic restarts in a row (reset by a run of [`RESTART_RESET_MS`]).
    pub(crate) auto_restarts: AtomicU32,
    /// A `stop` in progress: the run it stops, when it gives up, and whether a start follows
    /// (`restart`). Driven by `stop_work` (`spawn.rs`).
    #[pin]
    pub(crate) stopping: SpinLock<Option<StopRequest>>,
    /// Watches a `stop` every [`STOP_POLL_MS`] until the kernel reports or the time is up.
    #[pin]
    pub(crate) stop_work: DelayedWork<Instance>,
}

/// A `control stop` or `restart` in progress.
#[derive(Clone, Copy)]
pub(crate) struct StopRequest {
    /// The run being stopped (a later run is not this request's business).
    pub(crate) run: u64,
    /// When the kernel is killed if it has not stopped.
    pub(crate) deadline: Instant<Monotonic>,
    /// Start the image again once stopped (`restart`).
    pub(crate) restart: bool,
}

/// `stop_timeout_ms` of a new instance.
pub(crate) const STOP_TIMEOUT_DEFAULT_MS: u32 = 10_000;
/// How often a `stop` in progress is looked at.
pub(crate) const STOP_POLL_MS: u32 = 100;
/// How often a running instance with a restart policy is looked at.
pub(crate) const POLICY_POLL_MS: u32 = 200;
/// At most this many automatic restarts in a row: a kernel that keeps rebooting or crashing
/// then stays stopped or crashed.
pub(crate) const MAX_AUTO_RESTARTS: u32 = 3;
/// A run this long resets the count of automatic restarts.
pub(crate) const RESTART_RESET_MS: i64 = 60_000;

kernel::impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Instance { self.stop_work }
}

/// What an instance's sysfs directory owns (`files.rs` describes its files): a reference to
/// the instance, which a kexec load shares while it works on it. The registry owns each
/// directory alone, so `destroy` removes it from sysfs at once; the instance itself goes with
/// its last reference.
pub(crate) struct InstanceDir(pub(crate) Arc<Instance>);

impl core::ops::Deref for InstanceDir {
    type Target = Instance;

    fn deref(&self) -> &Instance {
        &self.0
    }
}

impl Instance {
    /// A new instance; its devices `/dev/mk-NAME` and `/dev/mk-NAME.console` are registered
    /// here.
    pub(crate) fn new(
        id: u32,
        name: Name,
        cpus: KVec<u32>,
        memory: Range,
        (on_reboot, on_crash): (Policy, Policy),
    ) -> impl PinInit<Self, Error> {
        let endpoint = Endpoint::host(format_args!("mk-{}", name.as_str()));
        // What its kernel prints goes to its console log.
        let console_service = endpoint
            .as_ref()
            .map_err(|e| *e)
            .and_then(|e| e.register(crate::ikc::port::CONSOLE, crate::ikc::CONSOLE_SERVICE));
        let console = ConsoleLog::new();
        let devices = match (&endpoint, &console) {
            (Ok(endpoint), Ok(console)) => Devices::register(name, endpoint, console),
            (Err(e), _) | (_, Err(e)) => Err(*e),
        };
        try_pin_init!(Self {
            id,
            name,
            cpus,
            memory,
            state: AtomicU64::new(State::Reserved as u64),
            cpus_out: AtomicBool::new(true),
            dirty: AtomicBool::new(false),
            dying: AtomicBool::new(false),
            image <- new_mutex!(None, "multikernel::Instance::image"),
            started <- new_spinlock!(None, "multikernel::Instance::started"),
            ops <- new_mutex!((), "multikernel::Instance::ops"),
            endpoint: endpoint?,
            console: console?,
            devices <- new_mutex!(Some(devices?), "multikernel::Instance::devices"),
            _console_service: console_service?,
            stop_timeout_ms: AtomicU32::new(STOP_TIMEOUT_DEFAULT_MS),
            start_timeout_ms: AtomicU32::new(START_TIMEOUT_DEFAULT_MS),
            on_reboot,
            on_crash,
            auto_restarts: AtomicU32::new(0),
            stopping <- new_spinlock!(None, "multikernel::Instance::stopping"),
            stop_work <- kernel::workqueue::new_delayed_work!("multikernel::Instance::stop_work"),
        }? Error)
    }

    /// Removes the devices (destroy); readers of the console reach its end.
    pub(crate) fn remove_devices(&self) {
        let devices = self.devices.lock().take();
        drop(devices);
        self.console.close();
    }

    /// The state, after looking whether a starting kernel has reported in or run out of time.
    pub(crate) fn state(&self) -> State {
        let seen = self.state.load(Ordering::Acquire);
        let state = state_in(seen);
        if matches!(state, State::Starting | State::Running | State::Stopping) {
            if let Some(new) = self.check_stop_report(seen) {
                return new;
            }
        }
        if matches!(state, State::Running | State::Stopping) {
            return self.check_heartbeat(seen);
        }
        if state != State::Starting {
            return state;
        }
        // When this run's kernel was entered.
        let Some(started) = self.started_in(run_in(seen)) else {
            return state;
        };
        let reported = self.layout().is_some_and(|layout| {
            let mut word = [0u8; 16];
            PoolMapping::new(layout.mailbox.start, 16)
                .and_then(|map| map.read(0, &mut word))
                .is_ok()
                && word[..8] == crate::sys::spawn::MAILBOX_MAGIC.to_le_bytes()
                && word[8..] == u64::from(self.id).to_le_bytes()
        });
        let elapsed = started.elapsed().as_millis();
        let timeout = self.start_timeout_ms.load(Ordering::Relaxed);
        let (new, reason) = if reported {
            (State::Running, None)
        } else if elapsed > i64::from(timeout) {
            (State::Failed, Some(StopReason::Failed))
        } else {
            return state;
        };
        let channel = self.endpoint.channel();
        // Only the first reader to see the change makes and reports it.
        if self.advance(seen, new, reason) {
            let name = self.name.as_str();
            if new == State::Running {
                pr_info!("{name}: running, reported in after {elapsed} ms\n");
            } else {
                // Nobody will answer: senders get an error instead of waiting.
                if let Some(channel) = channel {
                    channel.close();
                }
                crate::base::report::warn(format_args!(
                    "{name}: failed: its kernel did not report in within {timeout} ms"
                ));
            }
        }
        state_in(self.state.load(Ordering::Acquire))
    }

    /// Moves the run seen as `seen` on to `new` (and records why it stopped, if it did); false
    /// if anything changed since: another reader was first, or an operation or a new run came
    /// in between. Whoever wins acts on the channel it saw before, never on a later run's.
    fn advance(&self, seen: u64, new: State, reason: Option<StopReason>) -> bool {
        self.state
            .compare_exchange(
                seen,
                compose(seen, new, reason),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Running until the channel says the kernel stopped beating (it logged why).
    fn check_heartbeat(&self, seen: u64) -> State {
        let channel = self.endpoint.channel();
        let dead = channel
            .as_ref()
            .is_some_and(|c| c.state() == LinkState::PeerDead);
        if dead && self.advance(seen, State::Crashed, Some(StopReason::NoHeartbeat)) {
            if let Some(channel) = channel {
                channel.close();
            }
        }
        state_in(self.state.load(Ordering::Acquire))
    }

    /// Whether the kernel said it stops (poweroff, reboot, halt, kexec, panic: it wrote why
    /// into its mailbox, `instance_x86.c`). Then the channel closes (after what the kernel sent
    /// last, its panic message say, is taken in) and the instance is `stopped` (`crashed`
    /// after a panic), with the reason in `last_stop`.
    fn check_stop_report(&self, seen: u64) -> Option<State> {
        let layout = self.layout()?;
        let mut word = [0u8; 4];
        let at = crate::sys::spawn::STOP_OFFSET;
        PoolMapping::new(layout.mailbox.start, layout.mailbox.len)
            .and_then(|map| map.read(at, &mut word))
            .ok()?;
        let word = u32::from_le_bytes(word);
        if word == 0 {
            return None;
        }
        let name = self.name.as_str();
        let Some(reason) = StopReason::reported(word) else {
            // Not a reason it may give: treated as a crash, said once.
            crate::base::report::warn(format_args!("{name}: unknown stop reason {word:#x}"));
            return self.stopped(seen, StopReason::Panic);
        };
        self.stopped(seen, reason)
    }

    /// The kernel stopped by itself for `reason` (asked to, if it was `stopping` and did not
    /// panic): only the first to see it moves the state on.
    fn stopped(&self, seen: u64, reason: StopReason) -> Option<State> {
        let new = if reason == StopReason::Panic {
            State::Crashed
        } else {
            State::Stopped
        };
        let reason = if new == State::Stopped && state_in(seen) == State::Stopping {
            StopReason::Stop
        } else {
            reason
        };
        let channel = self.endpoint.channel();
        if !self.advance(seen, new, Some(reason)) {
            return None;
        }
        if let Some(channel) = channel {
            channel.finish();
        }
        // Its CPUs halt. No INIT from here (a reader, without the `ops` lock: a `kill` may be
        // bringing them up in the host): they are verified out before the memory is used again
        // (`start`, a load, `destroy`).
        pr_info!(
            "{}: stopped by its kernel: {}\n",
            self.name.as_str(),
            reason.as_str()
        );
        Some(new)
    }

    /// Why the kernel last stopped.
    pub(crate) fn last_stop(&self) -> StopReason {
        StopReason::from_u8((self.state.load(Ordering::Acquire) >> STOP_SHIFT) as u8)
    }

    /// Sets the state, and why the kernel stopped if it did (with `ops` held).
    pub(crate) fn set_stopped(&self, state: State, reason: StopReason) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(compose(w, state, Some(reason)))
            });
    }

    /// Records that the instance's memory holds something of its own (an image, a run).
    pub(crate) fn set_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Whether the instance's memory may hold anything of its own: what `destroy` scrubs.
    pub(crate) fn dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Whether the CPUs are known to be out of the instance kernel.
    pub(crate) fn cpus_out(&self) -> bool {
        self.cpus_out.load(Ordering::Acquire)
    }

    /// Records whether the CPUs are known to be out of the instance kernel.
    pub(crate) fn set_cpus_out(&self, out: bool) {
        self.cpus_out.store(out, Ordering::Release);
    }

    /// Records that the kernel was entered now (with `ops` held, after [`Self::begin_run`]).
    pub(crate) fn set_started(&self) {
        let run = run_in(self.state.load(Ordering::Acquire));
        *self.started.lock() = Some((run, Instant::<Monotonic>::now()));
        self.set_cpus_out(false);
        self.set_dirty();
        self.set_state(State::Starting);
    }

    /// Whether a restart policy applies: then a work watches the instance while it runs.
    pub(crate) fn has_policy(&self) -> bool {
        self.on_reboot == Policy::Restart || self.on_crash == Policy::Restart
    }

    /// When the current run started, if it did.
    pub(crate) fn started_at(&self) -> Option<Instant<Monotonic>> {
        self.started_in(self.run())
    }

    /// When run `run` started, if it did (a later run has its own entry).
    fn started_in(&self, run: u64) -> Option<Instant<Monotonic>> {
        match *self.started.lock() {
            Some((started, at)) if started == run => Some(at),
            _ => None,
        }
    }

    /// The current run (bumped by every `start`).
    pub(crate) fn run(&self) -> u64 {
        run_in(self.state.load(Ordering::Acquire))
    }

    /// A `start` begins a new run (with `ops` held): readers that saw the last one can no
    /// longer move the state on.
    pub(crate) fn begin_run(&self) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(w.wrapping_add(1 << RUN_SHIFT))
            });
    }

    /// Sets the state (with `ops` held).
    pub(crate) fn set_state(&self, state: State) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(compose(w, state, None))
            });
    }

    /// Moves the state from `from` to `to` (run and stop reason kept) unless a reader moved it
    /// on meanwhile (the kernel reported, or stopped beating); false then.
    pub(crate) fn change_state(&self, from: State, to: State) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (state_in(w) == from).then_some(compose(w, to, None))
            })
            .is_ok()
    }

    /// Whether `destroy` has begun (operations through its files then refuse).
    pub(crate) fn is_dying(&self) -> bool {
        self.dying.load(Ordering::Acquire)
    }

    /// Marks the instance as being destroyed (with `ops` held).
    pub(crate) fn set_dying(&self) {
        self.dying.store(true, Ordering::Release);
    }

    /// The loaded image's layout, if one is loaded.
    pub(crate) fn layout(&self) -> Option<Layout> {
        self.image.lock().as_ref().map(|i| i.layout)
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
        self.set_state(state);
        drop(old);
    }
}
