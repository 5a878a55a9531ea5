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
        net::NetDevice,
        ConsoleDevice,
        ConsoleLog,
        Endpoint,
        PortRegistration, //
    },
    sys::{
        device::MessageDevice,
        pool_map::PoolMapping, //
    },
};
use core::sync::atomic::{
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
        Completion,
        Mutex,
        MutexGuard,
        SetOnce,
        SpinLock, //
    },
    sysfs::FileNotifier,
    time::{
        Instant,
        Monotonic, //
    },
    workqueue::{
        self,
        DelayedWork, //
    },
};

/// Instance ids are 1..=MAX_ID: the kexec interface carries them in 12 bits.
pub(crate) const MAX_ID: u32 = crate::sys::kexec::MAX_ID as u32;

/// What `instances/NAME/state` shows: the stage of an instance's life cycle ([`Phase`] without
/// its data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// CPUs and memory are held; nothing is loaded.
    Reserved,
    /// A kernel is loaded into the instance's memory.
    Loaded,
    /// The loaded kernel was entered on the instance's first CPU and has not reported in yet.
    Starting,
    /// The instance kernel reported in through its mailbox: its init is starting.
    Running,
    /// The instance kernel did not report in within its `start_timeout_ms`.
    Failed,
    /// The instance kernel stopped (by itself, asked to, or by force); the image stays loaded.
    Stopped,
    /// The instance kernel panicked or stopped beating.
    Crashed,
    /// `control stop` asked the instance kernel to shut down; it has not stopped yet.
    Stopping,
}

/// Why an instance's kernel last stopped, as `instances/NAME/last_stop` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum StopReason {
    /// It never stopped.
    None,
    /// `poweroff` inside the instance.
    Poweroff,
    /// `reboot` inside the instance.
    Reboot,
    /// `halt` inside the instance.
    Halt,
    /// `kexec -e` inside the instance: stopped instead of jumping to another kernel.
    Kexec,
    /// It panicked (a crash kernel, if one was loaded, is not entered).
    Panic,
    /// `kill` from the host.
    Kill,
    /// It did not report in within its `start_timeout_ms`, or its CPUs did not come back.
    Failed,
    /// It stopped beating.
    NoHeartbeat,
    /// `control stop`: it shut down in order when asked.
    Stop,
    /// `control stop`: it did not stop within its `stop_timeout_ms`, and was killed.
    StopTimeout,
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
        Self::from_raw(value).unwrap_or(Self::None)
    }

    /// The reason whose value is `value`, if there is one (a host update's record).
    pub(crate) fn from_raw(value: u8) -> Option<Self> {
        Self::ALL.get(usize::from(value)).copied()
    }

    /// What an instance kernel wrote into its mailbox (`MULTIKERNEL_STOP_*`), if it is one of
    /// the reasons it may give.
    pub(crate) fn reported(word: u32) -> Option<Self> {
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
        Self::from_raw(value).unwrap_or(Self::Reserved)
    }

    /// The state whose value is `value`, if there is one (a host update's record).
    pub(crate) fn from_raw(value: u8) -> Option<Self> {
        Self::ALL.get(usize::from(value)).copied()
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

/// Where an instance is in its life cycle, with what each stage needs. [`Life`] holds it.
#[derive(Clone, Copy)]
pub(crate) enum Phase {
    Reserved,
    Loaded,
    /// Its kernel was entered at `since` and has not reported in.
    Starting {
        since: Instant<Monotonic>,
    },
    /// Its kernel, entered at `since`, reported in.
    Running {
        since: Instant<Monotonic>,
    },
    /// `control stop` asked its kernel (entered at `since`) to stop: it is killed at `deadline`
    /// unless it stopped by then; once stopped it is started again if `restart`.
    Stopping {
        since: Instant<Monotonic>,
        deadline: Instant<Monotonic>,
        restart: bool,
    },
    Failed,
    Stopped,
    Crashed,
}

impl Phase {
    pub(crate) fn state(self) -> State {
        match self {
            Self::Reserved => State::Reserved,
            Self::Loaded => State::Loaded,
            Self::Starting { .. } => State::Starting,
            Self::Running { .. } => State::Running,
            Self::Stopping { .. } => State::Stopping,
            Self::Failed => State::Failed,
            Self::Stopped => State::Stopped,
            Self::Crashed => State::Crashed,
        }
    }

    /// When the kernel that may be running was entered (starting, running, stopping).
    pub(crate) fn since(self) -> Option<Instant<Monotonic>> {
        match self {
            Self::Starting { since } | Self::Running { since } | Self::Stopping { since, .. } => {
                Some(since)
            }
            _ => None,
        }
    }
}

/// An instance's life cycle, behind one lock ([`Instance::life`]): the phase, why its kernel
/// last stopped, and the facts operations decide on. Every change happens with the lock held:
/// operations (load, unload, start, stop, restart, kill, destroy) hold it from their first
/// check to their last change, and the instance's work (`spawn::watch`), driven by what the
/// kernel does (its mailbox, its heartbeat) and by timeouts, holds it while it looks and moves
/// the phase on. Readers of `state` never move anything.
pub(crate) struct Life {
    phase: Phase,
    last_stop: StopReason,
    /// Its CPUs are known to be out of the instance kernel (never entered, or brought up in
    /// the host since it last ran): its memory may be rewritten or given away.
    pub(crate) cpus_out: bool,
    /// Something was written into its memory (a load; a kernel ran there): `destroy` scrubs it.
    pub(crate) dirty: bool,
    /// Set by `destroy` before it removes the directory: operations started through the
    /// instance's files or a kexec load then refuse, and its work does nothing.
    pub(crate) dying: bool,
    /// Automatic restarts in a row (reset by a run of [`RESTART_RESET_MS`]).
    pub(crate) auto_restarts: u32,
    /// The phase its kernel was in when `spawn::observe` found it stopped (by itself, or out
    /// of time), until the instance's work does what follows (`spawn::follow_up`: a restart
    /// policy, the start of a `restart`): whichever path looked first, the work acts on it.
    pub(crate) stopped_from: Option<Phase>,
}

impl Life {
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn state(&self) -> State {
        self.phase.state()
    }

    /// Why the kernel last stopped.
    pub(crate) fn last_stop(&self) -> StopReason {
        self.last_stop
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
    /// `payload` is the kernel unpacked at load (`base/vmlinux.rs`), entered at its
    /// `startup_64`; else the bzImage's protected-mode part, which decompresses itself.
    pub(crate) unpacked: bool,
    pub(crate) payload: VVec<u8>,
    pub(crate) initrd: VVec<u8>,
    pub(crate) boot_cmdline: KVec<u8>,
    pub(crate) zero_page: KBox<[u8; 4096]>,
    /// The instance's memory holds the image as loaded (no run has decompressed over it or
    /// written its data since it was written): the next start need not write it again.
    pub(crate) fresh: bool,
    /// Handed over by the previous host (`handover.rs`): what it says and where it lies, but
    /// not its bytes: it cannot be started again until a kernel is loaded.
    pub(crate) carried: bool,
}

impl ImageInfo {
    /// What a host update carried of a running instance's image (`carried`).
    pub(crate) fn carried(
        kernel_size: u64,
        initrd_size: u64,
        cmdline: KVec<u8>,
        layout: Layout,
    ) -> Result<KBox<Self>> {
        Ok(KBox::new(
            Self {
                kernel_size,
                initrd_size,
                cmdline,
                // Entered elsewhere than the bzImage's entry: it had been unpacked.
                unpacked: layout.entry != layout.kernel.start + crate::base::loader::BZIMAGE_ENTRY,
                layout,
                payload: VVec::new(),
                initrd: VVec::new(),
                boot_cmdline: KVec::new(),
                zero_page: KBox::new([0u8; 4096], GFP_KERNEL)?,
                fresh: false,
                carried: true,
            },
            GFP_KERNEL,
        )?)
    }

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
    _console: Pin<KBox<MessageDevice<ConsoleDevice>>>,
}

impl Devices {
    fn register(name: Name, endpoint: &Arc<Endpoint>, console: &Arc<ConsoleLog>) -> Result<Self> {
        let ikc = CString::try_from_fmt(fmt!("mk-{}", name.as_str()))?;
        let log = CString::try_from_fmt(fmt!("mk-{}.console", name.as_str()))?;
        let console = Arc::new(
            ConsoleDevice {
                log: console.clone(),
                endpoint: endpoint.clone(),
            },
            GFP_KERNEL,
        )?;
        Ok(Self {
            _ikc: MessageDevice::register(ikc, 0o600, endpoint.clone())?,
            // Read: the console log; write: typing into its terminal.
            _console: MessageDevice::register(log, 0o600, console)?,
        })
    }
}

/// A network device being dropped on a worker (`system_unbound`) while the caller goes on
/// ([`Beside::unregistering`]); waiting for it, or dropping it, waits until the device is
/// unregistered. The worker goes on alone from there: freeing the device waits for RCU.
#[must_use = "dropping it at once waits for the worker: nothing runs beside it"]
pub(crate) struct Beside(Option<Arc<Completion>>);

impl Beside {
    /// Drops `net` on a worker; here, before this returns, if there is no memory for one. A
    /// reference held elsewhere (a fault injection under way) unregisters it when it goes.
    pub(crate) fn unregistering(net: Arc<NetDevice>) -> Self {
        let unregistered = net.unregistered();
        // A work that cannot be allocated drops `net` here.
        let _ = workqueue::system_unbound().try_spawn(GFP_KERNEL, move || drop(net));
        Self(Some(unregistered))
    }

    /// Waits until the device is unregistered.
    pub(crate) fn wait(self) {}
}

impl Drop for Beside {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done.wait_for_completion();
        }
    }
}

/// An instance. Its id, name, CPUs and memory never change after creation, so its sysfs files
/// read them without locks; its life cycle changes under [`Instance::life`] (never the
/// registry lock: see `control.rs`).
#[pin_data]
pub(crate) struct Instance {
    pub(crate) id: u32,
    pub(crate) name: Name,
    /// Sorted, without duplicates.
    pub(crate) cpus: KVec<u32>,
    pub(crate) memory: Range,
    /// The life cycle. Taken after the registry lock when both are needed; the instance's
    /// files take only this one. A mutex: `start` writes the image (megabytes) and brings CPUs
    /// up and down while holding it.
    #[pin]
    life: Mutex<Life>,
    /// What readers see of `life`: the state in the low byte, `last_stop` in the next. Written
    /// only with `life` locked, by [`Instance::set_phase`] and [`Instance::set_stopped`], so
    /// reading `state` never waits behind an operation (a start writes megabytes).
    shown: AtomicU32,
    /// When the kernel that may be running was entered ([`Phase::since`]), for readers:
    /// written with `life` locked by [`Instance::set_phase`], held only to copy it.
    #[pin]
    shown_since: SpinLock<Option<Instant<Monotonic>>>,
    /// How long the kernel that runs had run under the previous host (a host update), added
    /// to what `shown_since` says; 0 once another kernel starts.
    pub(crate) uptime_carried_ns: AtomicU64,
    /// Taken under `life`.
    #[pin]
    image: Mutex<Option<KBox<ImageInfo>>>,
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
    /// Its network device, `mkvID`, taken out by `destroy`.
    #[pin]
    net: Mutex<Option<Arc<NetDevice>>>,
    /// How long `control stop` waits for the kernel to stop before it kills it.
    pub(crate) stop_timeout_ms: AtomicU32,
    /// How long a started kernel has to report in before the instance is `failed`.
    pub(crate) start_timeout_ms: AtomicU32,
    /// What happens when its kernel reboots (`on_reboot=`).
    pub(crate) on_reboot: Policy,
    /// What happens when its kernel crashes (`on_crash=`).
    pub(crate) on_crash: Policy,
    /// Wakes `poll(2)` on its `state` file when the state changes (set once the directory
    /// exists).
    state_file: SetOnce<FileNotifier>,
    /// The work that watches its kernel while it may run (`spawn::watch`).
    #[pin]
    pub(crate) watch_work: DelayedWork<Instance>,
}

/// `stop_timeout_ms` of a new instance.
pub(crate) const STOP_TIMEOUT_DEFAULT_MS: u32 = 10_000;
/// How often the work looks at a kernel that is starting or stopping.
pub(crate) const WATCH_MS: u32 = 100;
/// How often the work looks at a running kernel.
pub(crate) const WATCH_RUNNING_MS: u32 = 250;
/// At most this many automatic restarts in a row: a kernel that keeps rebooting or crashing
/// then stays stopped or crashed.
pub(crate) const MAX_AUTO_RESTARTS: u32 = 3;
/// A run this long resets the count of automatic restarts.
pub(crate) const RESTART_RESET_MS: i64 = 60_000;

kernel::impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Instance { self.watch_work }
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
        net: bool,
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
        // Its network device (unless `net=off`); without one (a device of that name exists, no
        // memory) the instance has no network link (said once).
        let make_net = || -> Result<Arc<NetDevice>> {
            let dev_name = CString::try_from_fmt(fmt!("mkv{id}"))?;
            let mac = crate::ikc::net::mac(id, crate::ikc::Side::Host);
            Ok(Arc::new(NetDevice::new(&dev_name, &mac)?, GFP_KERNEL)?)
        };
        let net = net
            .then(make_net)
            .transpose()
            .inspect_err(|e| {
                crate::base::report::warn(format_args!(
                    "create {}: no network device mkv{id} ({e:?})",
                    name.as_str()
                ))
            })
            .ok()
            .flatten();
        let life = Life {
            phase: Phase::Reserved,
            last_stop: StopReason::None,
            cpus_out: true,
            dirty: false,
            dying: false,
            auto_restarts: 0,
            stopped_from: None,
        };
        try_pin_init!(Self {
            id,
            name,
            cpus,
            memory,
            life <- new_mutex!(life, "multikernel::Instance::life"),
            shown: AtomicU32::new(State::Reserved as u32),
            shown_since <- new_spinlock!(None, "multikernel::Instance::shown_since"),
            uptime_carried_ns: AtomicU64::new(0),
            image <- new_mutex!(None, "multikernel::Instance::image"),
            endpoint: endpoint?,
            console: console?,
            devices <- new_mutex!(Some(devices?), "multikernel::Instance::devices"),
            _console_service: console_service?,
            net <- new_mutex!(net, "multikernel::Instance::net"),
            stop_timeout_ms: AtomicU32::new(STOP_TIMEOUT_DEFAULT_MS),
            start_timeout_ms: AtomicU32::new(START_TIMEOUT_DEFAULT_MS),
            on_reboot,
            on_crash,
            state_file: SetOnce::new(),
            watch_work <- kernel::workqueue::new_delayed_work!("multikernel::Instance::watch_work"),
        }? Error)
    }

    /// Removes the devices (destroy); readers of the console reach its end, its network
    /// device goes.
    pub(crate) fn remove_devices(&self) {
        let devices = self.devices.lock().take();
        drop(devices);
        self.console.close();
        let net = self.net.lock().take();
        drop(net);
    }

    /// Removes the devices as [`Instance::remove_devices`] does, the network device on a
    /// worker: unregistering it waits for grace periods (expedited, under RTNL) which the
    /// caller's next steps (`destroy` brings the CPUs back) need not wait behind. All are
    /// unregistered once the returned value is waited for or dropped; the network device's
    /// memory is freed by the worker afterwards, once RCU callbacks ran (`rcu_barrier` in
    /// `rtnl_unlock`: nothing of the instance is used there).
    pub(crate) fn remove_devices_beside(&self) -> Beside {
        let net = self.net.lock().take();
        // No worker for nothing (`net=off`).
        let going = net.map_or(Beside(None), Beside::unregistering);
        // Its unregistration's first half (under RTNL, and the CPU hotplug read lock in
        // `flush_all_backlogs`) gets going while the other devices go here.
        self.remove_devices();
        going
    }

    /// Its network device (until `destroy`).
    pub(crate) fn net_device(&self) -> Option<Arc<NetDevice>> {
        self.net.lock().clone()
    }

    /// Whether it has a network device (until `destroy`). Without a reference of its own, so
    /// a reader never becomes the one that unregisters it.
    pub(crate) fn has_net_device(&self) -> bool {
        self.net.lock().is_some()
    }

    /// Wakes `poll(2)` on `notifier` (the directory's `state` file) from now on, whenever the
    /// state changes. Once, after the directory was made.
    pub(crate) fn notify_state_to(&self, notifier: FileNotifier) {
        self.state_file.populate(notifier);
    }

    /// The life cycle, locked: sleeps while an operation runs. Not with it held.
    pub(crate) fn life(&self) -> MutexGuard<'_, Life> {
        self.life.lock()
    }

    /// The state as it was last set (without the lock: an operation may be changing it).
    pub(crate) fn state(&self) -> State {
        State::from_u8(self.shown.load(Ordering::Acquire) as u8)
    }

    /// Why the kernel last stopped, as last set (without the lock).
    pub(crate) fn last_stop(&self) -> StopReason {
        StopReason::from_u8((self.shown.load(Ordering::Acquire) >> 8) as u8)
    }

    /// How long the kernel that may be running has been (since it was entered: starting,
    /// running or stopping); never waits behind an operation.
    pub(crate) fn uptime(&self) -> Option<kernel::time::Delta> {
        let since = *self.shown_since.lock();
        let carried = self.uptime_carried_ns.load(Ordering::Relaxed);
        since.map(|s| s.elapsed() + kernel::time::Delta::from_nanos(carried as i64))
    }

    /// Automatic restarts in a row. Not with the life cycle locked (takes the lock).
    pub(crate) fn auto_restarts(&self) -> u32 {
        self.life.lock().auto_restarts
    }

    /// Moves the life cycle `life` (this instance's, locked) to `phase`; `poll(2)` on `state`
    /// wakes if the state changed.
    pub(crate) fn set_phase(&self, life: &mut Life, phase: Phase) {
        let changed = life.phase.state() != phase.state();
        life.phase = phase;
        *self.shown_since.lock() = phase.since();
        self.shown.store(
            phase.state() as u32 | (life.last_stop as u32) << 8,
            Ordering::Release,
        );
        if changed {
            if let Some(file) = self.state_file.as_ref() {
                file.notify();
            }
        }
    }

    /// After a host update: the life cycle the previous host had, with `life` locked (a new
    /// instance's).
    pub(crate) fn adopt_life(&self, life: &mut Life, phase: Phase, last_stop: StopReason) {
        life.last_stop = last_stop;
        self.set_phase(life, phase);
    }

    /// The kernel stopped (or never came up) for `reason`: moves to `phase` (`stopped`,
    /// `failed` or `crashed`) with `reason` as `last_stop` (with `life` locked).
    pub(crate) fn set_stopped(&self, life: &mut Life, phase: Phase, reason: StopReason) {
        life.last_stop = reason;
        self.set_phase(life, phase);
    }

    /// The loaded image's layout, if one is loaded.
    pub(crate) fn layout(&self) -> Option<Layout> {
        self.image.lock().as_ref().map(|i| i.layout)
    }

    /// The image, locked.
    pub(crate) fn image(&self) -> MutexGuard<'_, Option<KBox<ImageInfo>>> {
        self.image.lock()
    }

    /// Records a newly loaded image (state `loaded`), or none (state `reserved`), with `life`
    /// locked.
    pub(crate) fn set_image(&self, life: &mut Life, image: Option<KBox<ImageInfo>>) {
        let phase = if image.is_some() {
            Phase::Loaded
        } else {
            Phase::Reserved
        };
        let old = core::mem::replace(&mut *self.image.lock(), image);
        // A stop the work had not followed up yet concerned the image replaced here.
        life.stopped_from = None;
        self.set_phase(life, phase);
        drop(old);
    }

    /// Whether the kernel entered last reported in: its mailbox holds the magic and its id.
    pub(crate) fn reported_in(&self, layout: &Layout) -> bool {
        let mut word = [0u8; 16];
        PoolMapping::new(layout.mailbox.start, 16)
            .and_then(|map| map.read(0, &mut word))
            .is_ok()
            && word[..8] == crate::sys::spawn::MAILBOX_MAGIC.to_le_bytes()
            && word[8..] == u64::from(self.id).to_le_bytes()
    }

    /// Why the kernel said it stops, if it did (poweroff, reboot, halt, kexec, panic: it wrote
    /// the reason into its mailbox, `instance_x86.c`). A word that is none of those is taken
    /// for a panic, and said.
    pub(crate) fn stop_word(&self, layout: &Layout) -> Option<StopReason> {
        let mut word = [0u8; 4];
        let at = crate::sys::spawn::STOP_OFFSET;
        PoolMapping::new(layout.mailbox.start, layout.mailbox.len)
            .and_then(|map| map.read(at, &mut word))
            .ok()?;
        let word = u32::from_le_bytes(word);
        if word == 0 {
            return None;
        }
        Some(StopReason::reported(word).unwrap_or_else(|| {
            crate::base::report::warn(format_args!(
                "{}: unknown stop reason {word:#x}",
                self.name.as_str()
            ));
            StopReason::Panic
        }))
    }
}
