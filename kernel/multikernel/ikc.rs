// SPDX-License-Identifier: GPL-2.0

//! The inter-kernel channel (IKC): messages between the host and an instance kernel.
//!
//! A channel is a piece of the instance's memory, reserved by the loader and named on the
//! instance's command line (`multikernel.ikc=`), holding a header and two rings (`ring.rs`),
//! one per direction:
//!
//! ```text
//! +0        header: magic, version, instance id, heartbeat, host doorbell CPU  (4 KiB)
//! +4 KiB    ring host -> instance                                             (68 KiB)
//! +72 KiB   ring instance -> host                                             (68 KiB)
//! ```
//!
//! The host sets the memory up at each start; each kernel opens its end ([`Channel::host`],
//! [`Channel::instance`]). A send that finds the receiver idle rings its doorbell, an IPI to
//! one of its CPUs (`crate::sys::doorbell::ring`); the doorbell queues the receiver's
//! drain work, which hands each message to the handler of its port (kernel services: ping,
//! console, echo) or to the channel's inbox, which user space reads through the message
//! device. Nothing from the other kernel is trusted: a ring that breaks the protocol marks the
//! channel broken (state, counter, one message), and every wait also wakes when the channel
//! closes, so no caller hangs on a dead peer.
//!
//! The instance increments the header's heartbeat counter every [`HEARTBEAT_MS`]; the host
//! checks it as often and, after [`HEARTBEAT_MISSES`] checks without change (once the first
//! beat was seen), declares the instance crashed.

use crate::sys::{
    device::{
        poll,
        DeviceOps,
        FileOps, //
    },
    doorbell as machine,
    shared::{
        InstanceInfo,
        SharedMem, //
    },
};
use crate::ring::{
    self,
    Consumer,
    Producer,
    RingError,
    RingMemory, //
};
use core::{
    fmt,
    sync::atomic::{
        AtomicBool,
        AtomicU32,
        AtomicU64,
        AtomicU8,
        AtomicUsize,
        Ordering, //
    },
};
use kernel::{
    fs::File,
    new_condvar, new_mutex, new_poll_condvar, new_spinlock,
    prelude::*,
    str::CString,
    sync::{
        lock::Lock,
        poll::{
            PollCondVar,
            PollTable, //
        },
        Arc,
        CondVar,
        CondVarTimeoutResult,
        Mutex,
        RawSpinLockIrq,
        SetOnce,
        SpinLock, //
    },
    time::{
        msecs_to_jiffies,
        Instant,
        Monotonic, //
    },
    uaccess::{
        UserSliceReader,
        UserSliceWriter, //
    },
    workqueue::{
        self,
        impl_has_delayed_work,
        impl_has_work,
        new_delayed_work,
        new_work,
        DelayedWork,
        Work,
        WorkItem, //
    },
};

use crate::wire::{
    CHANNEL_BYTES,
    MAGIC,
    OFF_HEARTBEAT,
    OFF_HOST_DOORBELL,
    OFF_ID,
    OFF_MAGIC,
    OFF_VERSION,
    RING_BYTES,
    TO_HOST,
    TO_INSTANCE,
    VERSION, //
};

/// How often the instance beats and the host looks.
pub(crate) const HEARTBEAT_MS: u32 = 100;
/// Checks without a beat after which the host declares the instance crashed (2 s: an emulated
/// machine under load can stall a kernel's workers for a second).
pub(crate) const HEARTBEAT_MISSES: u32 = 20;

/// Messages waiting for user space before the channel stops draining (backpressure).
const INBOX_MAX: usize = 256;
/// How long a ping waits for its answer.
const PING_TIMEOUT_MS: u32 = 1000;
/// How long a ping spins for its answer before it sleeps.
const PING_SPIN_US: i64 = 2000;

/// Ports below [`port::FIRST_USER`] belong to the kernel; user space may send to
/// [`port::ECHO`] and to its own ports.
pub(crate) mod port {
    /// A ping: the receiver answers on [`PONG`] with the same payload.
    pub(crate) const PING: u16 = 1;
    /// The answer to a ping.
    pub(crate) const PONG: u16 = 2;
    /// Console output of the instance, to the host.
    pub(crate) const CONSOLE: u16 = 3;
    /// The instance's echo service: it sends every message back on this port.
    pub(crate) const ECHO: u16 = 7;
    /// The instance's discard service: it drops every message (stream benchmarks).
    pub(crate) const DISCARD: u16 = 9;
    /// The first port user space may use freely.
    pub(crate) const FIRST_USER: u16 = 64;
}

/// Which end of a channel this kernel holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Host,
    Instance,
}

/// Where a channel is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum LinkState {
    Open = 0,
    /// The peer broke the ring protocol.
    Broken = 1,
    /// This kernel closed it (the instance was stopped).
    Closed = 2,
    /// The peer stopped beating.
    PeerDead = 3,
    /// The peer said it stops (poweroff, reboot, halt, kexec, panic: its mailbox).
    PeerStopped = 4,
}

impl LinkState {
    /// Every state, in the order of their values.
    const ALL: [Self; 5] = [
        Self::Open,
        Self::Broken,
        Self::Closed,
        Self::PeerDead,
        Self::PeerStopped,
    ];

    fn from_u8(v: u8) -> Self {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(Self::Closed)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Broken => "broken",
            Self::Closed => "closed",
            Self::PeerDead => "peer-dead",
            Self::PeerStopped => "peer-stopped",
        }
    }

    fn errno(self) -> Error {
        match self {
            Self::Broken => EPROTO,
            _ => ENOTCONN,
        }
    }
}

/// What `instances/NAME/ikc/` shows.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) tx: AtomicU64,
    pub(crate) rx: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) ring_full: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) doorbells: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// A ring of the channel, as `ring.rs` sees it.
struct RingView<'a> {
    mem: &'a SharedMem,
    off: usize,
}

impl RingMemory for RingView<'_> {
    fn bytes(&self) -> usize {
        RING_BYTES
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        self.mem.read(self.off + off, out)
    }
    fn write(&mut self, off: usize, bytes: &[u8]) {
        self.mem.write(self.off + off, bytes)
    }
    fn load_seqcst(&self, off: usize) -> u64 {
        self.mem.load_seqcst(self.off + off)
    }
    fn store_seqcst(&mut self, off: usize, value: u64) {
        self.mem.store_seqcst(self.off + off, value)
    }
}

/// A kernel service on a port.
#[derive(Clone, Copy)]
pub(crate) enum Handler {
    /// Runs where the message is drained, possibly in the doorbell's hard interrupt, under the
    /// channel's receive lock: must not sleep, allocate, print or take a sleeping lock; sends
    /// with [`Channel::try_send`].
    Atomic(fn(&Channel, &[u8]) -> Reply),
    /// Runs in the channel's work (process context): may sleep.
    Process(fn(&Channel, &[u8])),
}

/// What an atomic handler did with its message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Handled: the message is consumed.
    Done,
    /// Its answer does not fit in the ring now: keep the message (and everything behind it)
    /// until the peer frees room and rings.
    Later,
}

/// The wait queues of an endpoint's devices: owned by the endpoint (which open files keep),
/// shared with each of its channels, so a poller stays registered across restarts and never
/// on a freed channel.
#[pin_data]
pub(crate) struct Waiters {
    /// Senders and pollers waiting for room.
    #[pin]
    space: PollCondVar,
    /// Readers and pollers waiting for a message.
    #[pin]
    readable: PollCondVar,
}

impl Waiters {
    fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                space <- new_poll_condvar!("multikernel::Waiters::space"),
                readable <- new_poll_condvar!("multikernel::Waiters::readable"),
            }),
            GFP_KERNEL,
        )
    }
}

/// One message for user space.
pub(crate) struct Message {
    pub(crate) port: u16,
    pub(crate) data: KVec<u8>,
}

/// The receive side: the consumer and a buffer for atomic handlers, used under the lock.
struct Rx {
    consumer: Consumer,
    buf: KVec<u8>,
}

/// The instance's recent console output, kept on the host across restarts; also a device,
/// `/dev/mk-NAME.console`, whose readers follow it live.
#[pin_data]
pub(crate) struct ConsoleLog {
    #[pin]
    buf: SpinLock<ConsoleBuf>,
    /// Readers waiting for more.
    #[pin]
    grown: PollCondVar,
    /// The instance is gone: readers that caught up get end of file.
    closed: AtomicBool,
}

struct ConsoleBuf {
    data: KVec<u8>,
    /// Bytes ever appended; the buffer holds the last `CONSOLE_BYTES` of them.
    total: u64,
}

/// Bytes of console output the host keeps per instance.
const CONSOLE_BYTES: usize = 16384;

impl ConsoleBuf {
    /// Copies bytes from stream position `from`, or from the oldest byte kept if that is
    /// later, into `out`; returns where the copy started and how many bytes it has.
    fn copy_from(&self, from: u64, out: &mut [u8]) -> (u64, usize) {
        let from = from.max(self.total.saturating_sub(CONSOLE_BYTES as u64));
        let n = ((self.total - from) as usize).min(out.len());
        for (i, slot) in out[..n].iter_mut().enumerate() {
            *slot = self.data[((from + i as u64) % CONSOLE_BYTES as u64) as usize];
        }
        (from, n)
    }
}

impl ConsoleLog {
    pub(crate) fn new() -> Result<Arc<Self>> {
        let data = KVec::from_elem(0u8, CONSOLE_BYTES, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                buf <- new_spinlock!(ConsoleBuf { data, total: 0 }, "multikernel::ConsoleLog"),
                grown <- new_poll_condvar!("multikernel::ConsoleLog::grown"),
                closed: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )
    }

    fn append(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock();
        for &b in bytes {
            let at = (buf.total % CONSOLE_BYTES as u64) as usize;
            buf.data[at] = b;
            buf.total += 1;
        }
        drop(buf);
        self.grown.notify_all();
    }

    /// Copies the last (at most `out.len()`) bytes into `out`; returns how many.
    pub(crate) fn recent(&self, out: &mut [u8]) -> usize {
        let buf = self.buf.lock();
        let from = buf.total.saturating_sub(out.len() as u64);
        buf.copy_from(from, out).1
    }

    /// No more output will come (the instance is destroyed): readers get end of file.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        drop(self.buf.lock());
        self.grown.notify_all();
    }
}

/// An open `/dev/mk-NAME.console`: where this reader is in the stream.
pub(crate) struct ConsoleReader {
    log: Arc<ConsoleLog>,
    pos: AtomicU64,
}

impl DeviceOps for ConsoleLog {
    type File = ConsoleReader;

    /// A new reader starts with what the buffer holds (position 0, or the oldest byte kept),
    /// then follows.
    fn open(this: &Arc<Self>) -> Result<Arc<ConsoleReader>> {
        let reader = ConsoleReader {
            log: this.clone(),
            pos: AtomicU64::new(0),
        };
        Ok(Arc::new(reader, GFP_KERNEL)?)
    }
}

impl FileOps for ConsoleReader {
    /// What came since this reader's last read (if it fell more than the buffer behind, it
    /// skips to the oldest byte kept); blocks for more unless `O_NONBLOCK`; 0 at the end.
    fn read(&self, out: &mut UserSliceWriter, nonblock: bool) -> Result<usize> {
        let mut chunk = KVec::from_elem(0u8, out.len().min(4096), GFP_KERNEL)?;
        let mut buf = self.log.buf.lock();
        loop {
            let pos = self.pos.load(Ordering::Relaxed);
            if buf.total > pos {
                let (from, n) = buf.copy_from(pos, &mut chunk);
                self.pos.store(from + n as u64, Ordering::Relaxed);
                drop(buf);
                out.write_slice(&chunk[..n])?;
                return Ok(n);
            }
            if self.log.closed.load(Ordering::Acquire) || chunk.is_empty() {
                return Ok(0);
            }
            if nonblock {
                return Err(EAGAIN);
            }
            if self.log.grown.wait_interruptible(&mut buf) {
                return Err(ERESTARTSYS);
            }
        }
    }

    fn write(&self, _input: UserSliceReader, _len: usize, _nonblock: bool) -> Result<usize> {
        Err(EINVAL)
    }

    fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        table.register_wait(file, &self.log.grown);
        let buf = self.log.buf.lock();
        if buf.total > self.pos.load(Ordering::Relaxed) {
            poll::IN | poll::RDNORM
        } else if self.log.closed.load(Ordering::Acquire) {
            poll::HUP
        } else {
            0
        }
    }
}

/// The outcome of one non-blocking attempt to send.
enum Attempt {
    Sent,
    /// Room appeared while asking the peer for it: try again.
    Retry,
    Full,
    NotOpen(LinkState),
    Fault(RingError),
}

/// Messages one drain handles before it lets others run (a peer that refills the ring as
/// fast as it is drained must not keep a CPU in the interrupt, or a worker busy).
const DRAIN_BUDGET: usize = 64;

/// What the drain of the receive ring stopped at.
enum Drained {
    /// Empty ring (a doorbell was asked for), a message that must wait, or a closed channel.
    Idle,
    /// The budget is spent and messages remain: the work continues.
    More,
    /// A message that needs process context is next; with a buffer it was taken into it.
    Process(ring::Received),
}

/// Work the doorbell left for process context.
const PENDING_PONG: u32 = 1 << 0;
const PENDING_BROKEN: u32 = 1 << 1;

/// One end of a channel.
#[pin_data]
pub(crate) struct Channel {
    name: CString,
    side: Side,
    mem: SharedMem,
    /// Host: the instance's mailbox page, where its kernel writes why it stops.
    mailbox: Option<SharedMem>,
    peer_apic: u32,
    /// The endpoint's services.
    services: Arc<Services>,
    state: AtomicU8,
    pub(crate) counters: Counters,
    console: Option<Arc<ConsoleLog>>,
    /// The producer of this end. Raw: atomic handlers answer from the doorbell interrupt, and
    /// the console sends from any context.
    #[pin]
    tx: RawSpinLockIrq<Producer>,
    /// The consumer; atomic handlers run under it.
    #[pin]
    rx: RawSpinLockIrq<Rx>,
    /// The work's buffer for messages handled in process context; held while they are.
    #[pin]
    work_buf: Mutex<KVec<u8>>,
    /// A sender or poller found the ring full: the next doorbell must wake it.
    space_wanted: AtomicBool,
    /// Bumped by the work when room may have appeared; senders sleep on `space` unless it moved.
    #[pin]
    space_gen: SpinLock<u64>,
    #[pin]
    inbox: SpinLock<KVec<Message>>,
    /// Where senders, readers and pollers wait (the endpoint's).
    waiters: Arc<Waiters>,
    /// The inbox was full: draining stopped until user space reads.
    paused: AtomicBool,
    /// `PENDING_*` bits for the work.
    pending: AtomicU32,
    /// Why the channel broke (logged by the work).
    fault: SetOnce<&'static str>,
    #[pin]
    ping_lock: Mutex<()>,
    ping_token: AtomicU64,
    /// The token of the last answer to a ping, written by the atomic pong handler.
    pong: AtomicU64,
    #[pin]
    pong_gen: SpinLock<u64>,
    #[pin]
    pong_cv: CondVar,
    /// Host: the last heartbeat value seen, checks since it changed, whether one was seen.
    /// Instance: the beats sent.
    beat: AtomicU64,
    misses: AtomicU32,
    beating: AtomicBool,
    /// Host: a send renewed the doorbell hint since the last tick.
    hint_fresh: AtomicBool,
    #[pin]
    drain_work: Work<Channel, 0>,
    #[pin]
    tick_work: DelayedWork<Channel, 1>,
}

impl_has_work! {
    impl HasWork<Self, 0> for Channel { self.drain_work }
}
impl_has_delayed_work! {
    impl HasDelayedWork<Self, 1> for Channel { self.tick_work }
}

/// The open channels, for the doorbell; a raw lock, taken in its hard interrupt. Room for
/// one channel per CPU (an instance owns at least one) is reserved at init: nothing is
/// allocated under the lock.
#[pin_data]
struct ChannelList {
    #[pin]
    list: RawSpinLockIrq<KVec<Arc<Channel>>>,
}

static CHANNELS: SetOnce<Pin<KBox<ChannelList>>> = SetOnce::new();

fn channels() -> Result<&'static ChannelList> {
    CHANNELS.as_ref().map(|c| &**c).ok_or(ENODEV)
}

/// Takes the doorbell vector; call once at module init.
pub(crate) fn init() -> Result {
    let room = kernel::cpu::nr_cpu_ids() as usize + 1;
    let list = KVec::with_capacity(room, GFP_KERNEL)?;
    let channels = KBox::pin_init(
        pin_init!(ChannelList {
            list <- Lock::new(list, c"multikernel::CHANNELS", kernel::static_lock_class!()),
        }),
        GFP_KERNEL,
    )?;
    if !CHANNELS.populate(channels) {
        return Err(EBUSY);
    }
    // SAFETY: Called from the module's init; the subsystem is built in (`bool` in Kconfig),
    // so that runs among the initcalls, before read-only-after-init data is sealed.
    unsafe { machine::take_doorbell(doorbell_irq) }
}

/// A doorbell rang on this CPU (hard interrupt context). It does not say which channel: look
/// at all of them (there are as many as running instances). Atomic handlers run here; the
/// rest, and every wakeup, is left to each channel's work.
fn doorbell_irq() {
    let Ok(channels) = channels() else {
        return;
    };
    let list = channels.list.lock();
    for ch in list.iter() {
        if ch.on_doorbell() {
            // Already queued: the reference comes back and is dropped here; the list holds
            // another, so the channel is not freed in interrupt context.
            let _ = workqueue::system_highpri().enqueue::<Arc<Channel>, 0>(ch.clone());
        }
    }
}

/// The services every host endpoint has; others are registered ([`Endpoint::register`]).
static HOST_BUILTIN: [(u16, Handler); 2] = [
    (port::PING, Handler::Atomic(answer_ping_or_drop)),
    (port::PONG, Handler::Atomic(on_pong)),
];
/// The services every instance endpoint has.
static INSTANCE_BUILTIN: [(u16, Handler); 2] = [
    (port::PING, Handler::Atomic(answer_ping)),
    (port::PONG, Handler::Atomic(on_pong)),
];

/// The host's console service: what an instance prints goes to its console log.
pub(crate) const CONSOLE_SERVICE: Handler = Handler::Process(on_console);
/// The instance's echo service.
pub(crate) const ECHO_SERVICE: Handler = Handler::Atomic(on_echo);
/// The instance's discard service.
pub(crate) const DISCARD_SERVICE: Handler = Handler::Atomic(on_discard);

/// Services an endpoint can hold: the built-in ones and up to this many registered.
const MAX_SERVICES: usize = 16;

/// The kernel services of an endpoint, by port: shared by its channels (looked up under
/// their receive lock, in the doorbell interrupt too), so they last across restarts.
#[pin_data]
pub(crate) struct Services {
    #[pin]
    table: RawSpinLockIrq<KVec<(u16, Handler)>>,
}

impl Services {
    fn new(builtin: &[(u16, Handler)]) -> Result<Arc<Self>> {
        let mut table = KVec::with_capacity(builtin.len() + MAX_SERVICES, GFP_KERNEL)?;
        table.extend_from_slice(builtin, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                table <- Lock::new(table, c"multikernel::Services::table",
                                   kernel::static_lock_class!()),
            }),
            GFP_KERNEL,
        )
    }

    fn lookup(&self, port: u16) -> Option<Handler> {
        self.table
            .lock()
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, h)| *h)
    }
}

/// A service registered on a port of an endpoint; dropping it unregisters it, and returns
/// only after a call of it that was running finished.
pub(crate) struct PortRegistration {
    endpoint: Arc<Endpoint>,
    port: u16,
}

impl Drop for PortRegistration {
    fn drop(&mut self) {
        {
            let mut table = self.endpoint.services.table.lock();
            if let Some(at) = table.iter().position(|(p, _)| *p == self.port) {
                // Removing does not allocate: fine under the raw lock.
                let _ = table.remove(at);
            }
        }
        if let Some(channel) = self.endpoint.channel() {
            channel.quiesce();
        }
    }
}

/// Answers a ping, waiting for room if needed (the instance: the host always drains).
fn answer_ping(ch: &Channel, payload: &[u8]) -> Reply {
    ch.reply(port::PONG, payload)
}

/// Answers a ping unless the ring is full, then drops the answer (the host: it never waits on
/// an instance, which might never free room; a ping of the instance times out then).
fn answer_ping_or_drop(ch: &Channel, payload: &[u8]) -> Reply {
    if ch.reply(port::PONG, payload) == Reply::Later {
        add(&ch.counters.errors, 1);
    }
    Reply::Done
}

fn on_pong(ch: &Channel, payload: &[u8]) -> Reply {
    let mut token = [0u8; 8];
    if payload.len() < 8 {
        add(&ch.counters.errors, 1);
        return Reply::Done;
    }
    token.copy_from_slice(&payload[..8]);
    ch.pong.store(u64::from_le_bytes(token), Ordering::Release);
    ch.pending.fetch_or(PENDING_PONG, Ordering::AcqRel);
    Reply::Done
}

fn on_console(ch: &Channel, payload: &[u8]) {
    if let Some(console) = &ch.console {
        console.append(payload);
    }
}

fn on_discard(_ch: &Channel, _payload: &[u8]) -> Reply {
    Reply::Done
}

fn on_echo(ch: &Channel, payload: &[u8]) -> Reply {
    ch.reply(port::ECHO, payload)
}

impl Channel {
    /// Host: sets up the channel memory at `start` (inside the instance `id`'s memory, which no
    /// kernel runs on yet) and opens the host's end; doorbells go to APIC id `peer_apic`. The
    /// heartbeat also watches the stop word of the instance's mailbox page at `mailbox`.
    pub(crate) fn host(
        name: &str,
        id: u32,
        start: u64,
        mailbox: u64,
        peer_apic: u32,
        console: Arc<ConsoleLog>,
        endpoint: &Endpoint,
    ) -> Result<Arc<Self>> {
        let mem = SharedMem::map_pool(start, CHANNEL_BYTES as u64)?;
        mem.write(0, &[0u8; 64]);
        for off in [TO_INSTANCE, TO_HOST] {
            ring::init(&mut RingView { mem: &mem, off }).map_err(|e| e.errno())?;
        }
        mem.store_seqcst(OFF_VERSION, VERSION);
        mem.store_seqcst(OFF_ID, u64::from(id));
        mem.store_seqcst(OFF_HEARTBEAT, 0);
        mem.store_seqcst(OFF_MAGIC, MAGIC);
        let name = CString::try_from_fmt(fmt!("{name}"))?;
        let mailbox = SharedMem::map_pool(mailbox, 4096)?;
        Self::open(
            name,
            Side::Host,
            mem,
            Some(mailbox),
            peer_apic,
            Some(console),
            endpoint,
        )
    }

    /// Instance: opens this kernel's end of the channel the host described.
    pub(crate) fn instance(info: &InstanceInfo, endpoint: &Endpoint) -> Result<Arc<Self>> {
        let mem = SharedMem::map_host_channel(CHANNEL_BYTES as u64)?;
        if mem.load_seqcst(OFF_MAGIC) != MAGIC
            || mem.load_seqcst(OFF_VERSION) != VERSION
            || mem.load_seqcst(OFF_ID) != u64::from(info.id)
        {
            return Err(EPROTO);
        }
        let name = CString::try_from_fmt(fmt!("host"))?;
        Self::open(
            name,
            Side::Instance,
            mem,
            None,
            info.host_apic,
            None,
            endpoint,
        )
    }

    fn open(
        name: CString,
        side: Side,
        mem: SharedMem,
        mailbox: Option<SharedMem>,
        peer_apic: u32,
        console: Option<Arc<ConsoleLog>>,
        endpoint: &Endpoint,
    ) -> Result<Arc<Self>> {
        let services = endpoint.services.clone();
        let waiters = endpoint.waiters.clone();
        let buf = KVec::from_elem(0u8, ring::MAX_PAYLOAD, GFP_KERNEL)?;
        let work_buf = KVec::from_elem(0u8, ring::MAX_PAYLOAD, GFP_KERNEL)?;
        let inbox = KVec::with_capacity(INBOX_MAX, GFP_KERNEL)?;
        let ch = Arc::pin_init(
            pin_init!(Self {
                name,
                side,
                mem,
                mailbox,
                peer_apic,
                services,
                state: AtomicU8::new(LinkState::Open as u8),
                counters: Counters::default(),
                console,
                tx <- Lock::new(Producer::new(), c"multikernel::Channel::tx",
                                kernel::static_lock_class!()),
                rx <- Lock::new(Rx { consumer: Consumer::new(), buf }, c"multikernel::Channel::rx",
                                kernel::static_lock_class!()),
                work_buf <- new_mutex!(work_buf, "multikernel::Channel::work_buf"),
                space_wanted: AtomicBool::new(false),
                space_gen <- new_spinlock!(0, "multikernel::Channel::space_gen"),
                inbox <- new_spinlock!(inbox, "multikernel::Channel::inbox"),
                waiters,
                paused: AtomicBool::new(false),
                pending: AtomicU32::new(0),
                fault: SetOnce::new(),
                ping_lock <- new_mutex!((), "multikernel::Channel::ping_lock"),
                ping_token: AtomicU64::new(0),
                pong: AtomicU64::new(0),
                pong_gen <- new_spinlock!(0, "multikernel::Channel::pong_gen"),
                pong_cv <- new_condvar!("multikernel::Channel::pong_cv"),
                beat: AtomicU64::new(0),
                misses: AtomicU32::new(0),
                beating: AtomicBool::new(false),
                hint_fresh: AtomicBool::new(false),
                drain_work <- new_work!("multikernel::Channel::drain_work"),
                tick_work <- new_delayed_work!("multikernel::Channel::tick_work"),
            }),
            GFP_KERNEL,
        )?;
        channels()?
            .list
            .lock()
            .push_within_capacity(ch.clone())
            .map_err(|_| ENOSPC)?;
        // Drain what is there already, which also asks for doorbells from now on.
        let _ = workqueue::system_highpri().enqueue::<Arc<Channel>, 0>(ch.clone());
        let _ = workqueue::system_power_efficient()
            .enqueue_delayed::<Arc<Channel>, 1>(ch.clone(), msecs_to_jiffies(HEARTBEAT_MS));
        Ok(ch)
    }

    /// The instance's name (host side) or "host".
    fn label(&self) -> &str {
        self.name.to_str().unwrap_or("?")
    }

    pub(crate) fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn usable(&self) -> Result {
        match self.state() {
            LinkState::Open => Ok(()),
            other => Err(other.errno()),
        }
    }

    fn tx_off(&self) -> usize {
        match self.side {
            Side::Host => TO_INSTANCE,
            Side::Instance => TO_HOST,
        }
    }

    fn rx_off(&self) -> usize {
        match self.side {
            Side::Host => TO_HOST,
            Side::Instance => TO_INSTANCE,
        }
    }

    fn view(&self, off: usize) -> RingView<'_> {
        RingView {
            mem: &self.mem,
            off,
        }
    }

    fn ring_doorbell(&self) {
        add(&self.counters.doorbells, 1);
        let apic = match self.side {
            // The host's hint, if it gave one; any host CPU drains every channel.
            Side::Instance => match self.mem.load_seqcst(OFF_HOST_DOORBELL) {
                0 => self.peer_apic,
                hint => (hint - 1) as u32,
            },
            Side::Host => self.peer_apic,
        };
        machine::ring(apic);
    }

    /// Host: asks the instance to ring this CPU from now on (a sender here may be waiting for
    /// an answer: it is not woken from idle first). The heartbeat work drops a hint no send
    /// renewed for a tick: the CPU may have left the host since.
    fn doorbell_here(&self) {
        if self.side == Side::Host {
            self.hint_fresh.store(true, Ordering::Relaxed);
            let apic = crate::sys::spawn::apic_id(kernel::cpu::CpuId::current());
            if self.mem.load_seqcst(OFF_HOST_DOORBELL) != u64::from(apic) + 1 {
                self.mem
                    .store_seqcst(OFF_HOST_DOORBELL, u64::from(apic) + 1);
            }
        }
    }

    fn handler(&self, port: u16) -> Option<Handler> {
        self.services.lookup(port)
    }

    /// Returns once no handler of this channel runs (one in an interrupt on another CPU, or in
    /// the work). Not from a handler.
    fn quiesce(&self) {
        drop(self.rx.lock());
        drop(self.work_buf.lock());
    }

    /// One non-blocking attempt to send, from any context. A full ring asks the peer for a
    /// doorbell when it frees room. The state is checked under the producer lock, which
    /// `close` takes after marking the channel: nothing is written into a closed channel's
    /// memory (a new start sets it up afresh; a destroy gives it away). A `sender` (process
    /// context) is also woken by the work when room appears.
    fn try_send(&self, port: u16, payload: &[u8], sender: bool) -> Attempt {
        let mut tx = self.tx.lock();
        let state = self.state();
        if state != LinkState::Open {
            return Attempt::NotOpen(state);
        }
        if sender {
            self.doorbell_here();
        }
        let mut view = self.view(self.tx_off());
        match tx.send(&mut view, port, payload) {
            Ok(ring_it) => {
                drop(tx);
                self.sent(payload.len(), ring_it);
                Attempt::Sent
            }
            Err(RingError::Full) => {
                if sender {
                    // Before the ring's flag: a doorbell right after it must find this set.
                    self.space_wanted.store(true, Ordering::Release);
                }
                match tx.want_space(&mut view, payload.len()) {
                    Ok(true) => Attempt::Retry,
                    Ok(false) => Attempt::Full,
                    Err(e) => Attempt::Fault(e),
                }
            }
            Err(e) => Attempt::Fault(e),
        }
    }

    /// An atomic handler's answer: sent, or [`Reply::Later`] when it does not fit now.
    fn reply(&self, port: u16, payload: &[u8]) -> Reply {
        // Room that appears and vanishes again is a misbehaving peer: stop asking soon.
        for _ in 0..4 {
            match self.try_send(port, payload, false) {
                Attempt::Sent | Attempt::NotOpen(_) => return Reply::Done,
                Attempt::Retry => continue,
                Attempt::Full => return Reply::Later,
                Attempt::Fault(e) => {
                    self.fail(e);
                    return Reply::Done;
                }
            }
        }
        Reply::Later
    }

    /// Sends one message on `port`. A full ring is `EAGAIN` unless `wait`, in which case this
    /// sleeps until there is room (interruptibly). `EMSGSIZE` above 4 KiB, `ENOTCONN` once the
    /// channel is closed or the peer dead, `EPROTO` once it is broken. Process context.
    pub(crate) fn send(&self, port: u16, payload: &[u8], wait: bool) -> Result {
        if payload.len() > ring::MAX_PAYLOAD {
            return Err(EMSGSIZE);
        }
        let mut counted_full = false;
        loop {
            let generation = *self.space_gen.lock();
            match self.try_send(port, payload, true) {
                Attempt::Sent => return Ok(()),
                Attempt::Retry => continue,
                Attempt::Full => (),
                Attempt::NotOpen(state) => return Err(state.errno()),
                Attempt::Fault(e) => {
                    self.fail(e);
                    self.settle();
                    return Err(EPROTO);
                }
            }
            if !counted_full {
                counted_full = true;
                add(&self.counters.ring_full, 1);
            }
            if !wait {
                return Err(EAGAIN);
            }
            let mut gen = self.space_gen.lock();
            if *gen == generation && self.state() == LinkState::Open {
                // Woken by the work after the peer's doorbell, or by a close; the timeout
                // only bounds a lost doorbell.
                let res = self
                    .waiters
                    .space
                    .wait_interruptible_timeout(&mut gen, msecs_to_jiffies(100));
                if let CondVarTimeoutResult::Signal { .. } = res {
                    return Err(ERESTARTSYS);
                }
            }
        }
    }

    /// Counts a message of `len` bytes just published, and rings the peer if it asked.
    fn sent(&self, len: usize, ring_it: bool) {
        add(&self.counters.tx, 1);
        add(&self.counters.bytes, len as u64);
        if ring_it {
            self.ring_doorbell();
        }
    }

    /// The instance's console: sends `text` without waiting, from any context; what does not
    /// fit (or meets the lock taken on this CPU, a print from inside a send) is dropped. Never
    /// prints.
    pub(crate) fn send_console(&self, text: &[u8]) {
        for chunk in text.chunks(ring::MAX_PAYLOAD) {
            let Some(mut tx) = self.tx.try_lock() else {
                continue;
            };
            // Under the producer lock, as in `try_send`.
            if self.state() != LinkState::Open {
                return;
            }
            let sent = tx.send(&mut self.view(self.tx_off()), port::CONSOLE, chunk);
            drop(tx);
            if let Ok(ring_it) = sent {
                self.sent(chunk.len(), ring_it);
            }
        }
    }

    /// Receives the drained messages nobody in the kernel handles, for user space. `EMSGSIZE`
    /// (the message stays) if the next one is longer than `max` bytes.
    pub(crate) fn recv_user(self: &Arc<Self>, max: usize, nonblock: bool) -> Result<Message> {
        let mut inbox = self.inbox.lock();
        loop {
            if let Some(first) = inbox.first() {
                if first.data.len() > max {
                    return Err(EMSGSIZE);
                }
                let msg = inbox.remove(0).map_err(|_| EINVAL)?;
                drop(inbox);
                // Room again: resume a drain that stopped on a full inbox.
                if self.paused.swap(false, Ordering::AcqRel) {
                    self.kick();
                }
                return Ok(msg);
            }
            self.usable()?;
            if nonblock {
                return Err(EAGAIN);
            }
            if self.waiters.readable.wait_interruptible(&mut inbox) {
                return Err(ERESTARTSYS);
            }
        }
    }

    /// Puts a message user space could not take (a faulting buffer) back at the head.
    pub(crate) fn unrecv(&self, msg: Message) {
        if self.inbox.lock().insert_within_capacity(0, msg).is_err() {
            add(&self.counters.errors, 1);
        }
    }

    /// Queues this channel's work.
    fn kick(self: &Arc<Self>) {
        let _ = workqueue::system_highpri().enqueue::<Arc<Channel>, 0>(self.clone());
    }

    /// The ready bits for `poll(2)`, after registering `file` on the channel's wait queues.
    pub(crate) fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        table.register_wait(file, &self.waiters.readable);
        table.register_wait(file, &self.waiters.space);
        let mut mask = 0;
        if !self.inbox.lock().is_empty() {
            mask |= poll::IN | poll::RDNORM;
        }
        match self.state() {
            LinkState::Open => (),
            LinkState::Broken => return mask | poll::ERR | poll::HUP,
            _ => return mask | poll::HUP,
        }
        let mut tx = self.tx.lock();
        // Under the producer lock, as in `try_send`.
        if self.state() != LinkState::Open {
            return mask | poll::HUP;
        }
        // Writable when a message of any size fits; if not, ask for a doorbell when it does.
        let writable = match tx.fits(&self.view(self.tx_off()), ring::MAX_PAYLOAD) {
            Ok(true) => true,
            Ok(false) => {
                self.space_wanted.store(true, Ordering::Release);
                tx.want_space(&mut self.view(self.tx_off()), ring::MAX_PAYLOAD)
                    .unwrap_or(false)
            }
            Err(_) => false,
        };
        if writable {
            mask |= poll::OUT | poll::WRNORM;
        }
        mask
    }

    /// The doorbell's part (hard interrupt): runs the atomic handlers; returns whether the
    /// work has something to do (messages for process context, wakeups).
    fn on_doorbell(&self) -> bool {
        let process = !matches!(self.drain(None), Drained::Idle);
        process
            || self.space_wanted.load(Ordering::Acquire)
            || self.pending.load(Ordering::Acquire) != 0
    }

    /// Drains the receive ring: atomic handlers run on the spot, under the receive lock.
    /// Stops at an empty ring (asking for a doorbell), at a message whose answer must wait,
    /// or at a message for process context, which, given `out`, is taken (copied into it).
    fn drain(&self, out: Option<&mut [u8]>) -> Drained {
        let mut rx = self.rx.lock();
        let Rx { consumer, buf } = &mut *rx;
        // In process context messages go straight into the caller's buffer.
        let taking = out.is_some();
        let buf: &mut [u8] = match out {
            Some(out) => out,
            None => buf,
        };
        let mut view = self.view(self.rx_off());
        for _ in 0..DRAIN_BUDGET {
            if self.state() != LinkState::Open {
                return Drained::Idle;
            }
            let msg = match consumer.peek(&view, buf) {
                Ok(msg) => msg,
                Err(RingError::Empty) => {
                    if consumer.space_wanted(&mut view) {
                        self.ring_doorbell();
                    }
                    if consumer.want_doorbell(&mut view) {
                        continue;
                    }
                    return Drained::Idle;
                }
                Err(e) => {
                    self.fail(e);
                    return Drained::Idle;
                }
            };
            match self.handler(msg.port) {
                Some(Handler::Atomic(handler)) => {
                    if handler(self, &buf[..msg.len]) == Reply::Later {
                        return Drained::Idle;
                    }
                }
                _ => {
                    if taking {
                        self.consumed(consumer, &mut view, &msg);
                    }
                    return Drained::Process(msg);
                }
            }
            self.consumed(consumer, &mut view, &msg);
        }
        Drained::More
    }

    /// Whether the receive ring holds a message (or garbage) this side has not taken.
    fn rx_pending(&self) -> bool {
        let rx = self.rx.lock();
        let view = self.view(self.rx_off());
        !matches!(rx.consumer.peek(&view, &mut []), Err(RingError::Empty))
    }

    fn consumed(&self, consumer: &mut Consumer, view: &mut RingView<'_>, msg: &ring::Received) {
        consumer.advance(view, msg);
        add(&self.counters.rx, 1);
        add(&self.counters.bytes, msg.len as u64);
        if consumer.space_wanted(view) {
            self.ring_doorbell();
        }
    }

    /// The channel's work: the wakeups and log lines the doorbell could not do, and the
    /// messages for process context (handlers, the inbox). Returns whether it must run again
    /// (its budget is spent).
    fn work(&self) -> bool {
        self.settle();
        // Unless a break says otherwise, the budget ran out with messages left.
        let mut again = true;
        let mut buf = self.work_buf.lock();
        for _ in 0..DRAIN_BUDGET {
            if self.inbox.lock().len() >= INBOX_MAX {
                self.paused.store(true, Ordering::Release);
                // A read may have made room between the check and the flag: look again.
                if self.inbox.lock().len() >= INBOX_MAX {
                    again = false;
                    break;
                }
                self.paused.store(false, Ordering::Release);
            }
            match self.drain(Some(&mut buf)) {
                Drained::Idle => {
                    again = false;
                    break;
                }
                Drained::More => break,
                Drained::Process(msg) => self.dispatch(msg.port, &buf[..msg.len]),
            }
        }
        drop(buf);
        self.settle();
        again
    }

    /// Wakes whoever the doorbell's atomic part left waiting, and reports a broken channel.
    fn settle(&self) {
        if self.space_wanted.swap(false, Ordering::AcqRel) {
            *self.space_gen.lock() += 1;
            self.waiters.space.notify_all();
        }
        let pending = self.pending.swap(0, Ordering::AcqRel);
        if pending & PENDING_PONG != 0 {
            *self.pong_gen.lock() += 1;
            self.pong_cv.notify_all();
        }
        if pending & PENDING_BROKEN != 0 {
            let why = self.fault.as_ref().copied().unwrap_or("?");
            crate::report::warn(format_args!("ikc {}: channel broken: {why}", self.label()));
            self.wake_all();
        }
    }

    fn dispatch(&self, port: u16, payload: &[u8]) {
        if let Some(Handler::Process(handler)) = self.handler(port) {
            handler(self, payload);
            return;
        }
        let mut data = KVec::new();
        if data.extend_from_slice(payload, GFP_KERNEL).is_err() {
            add(&self.counters.errors, 1);
            crate::report::warn(format_args!(
                "ikc {}: out of memory, message on port {port} dropped",
                self.label()
            ));
            return;
        }
        let mut inbox = self.inbox.lock();
        // `work` keeps the inbox below its reserved capacity.
        if inbox.push_within_capacity(Message { port, data }).is_err() {
            add(&self.counters.errors, 1);
        }
        drop(inbox);
        self.waiters.readable.notify_all();
    }

    /// The peer broke the ring protocol (any context): the state says so at once; the work
    /// logs it and wakes every waiter.
    fn fail(&self, e: RingError) {
        let why = match e {
            RingError::Corrupt(why) => why,
            _ => "message larger than the maximum",
        };
        add(&self.counters.errors, 1);
        if self.leave_open(LinkState::Broken) {
            self.fault.populate(why);
            self.pending.fetch_or(PENDING_BROKEN, Ordering::AcqRel);
        }
    }

    /// Moves the state from open to `state`; whether this call did (any context).
    fn leave_open(&self, state: LinkState) -> bool {
        self.state
            .compare_exchange(
                LinkState::Open as u8,
                state as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Wakes every waiter (process context): they look at the state.
    fn wake_all(&self) {
        *self.space_gen.lock() += 1;
        self.waiters.space.notify_all();
        drop(self.inbox.lock());
        self.waiters.readable.notify_all();
        *self.pong_gen.lock() += 1;
        self.pong_cv.notify_all();
    }

    /// Sets the state (from open) and wakes every waiter (process context).
    fn shut(&self, state: LinkState) -> bool {
        let changed = self.leave_open(state);
        self.wake_all();
        changed
    }

    /// Drains what the peer left in the ring, in process context, within a bound (a peer
    /// that keeps writing cannot hold the caller): the last words of a kernel that stops.
    fn take_in_last(&self) {
        // Twice, 20 ms apart: it may still be writing its last lines as it stops.
        for round in 0..2 {
            if round > 0 {
                kernel::time::delay::fsleep(kernel::time::Delta::from_millis(20));
            }
            for _ in 0..16 {
                if !self.work() {
                    break;
                }
            }
        }
    }

    /// The peer kernel stopped: takes in what it sent last, then closes this end.
    pub(crate) fn finish(&self) {
        self.take_in_last();
        self.close();
    }

    /// Closes this end: every waiter wakes with an error, the doorbell no longer reaches it,
    /// and no handler runs after this returns. Process context, not from a handler.
    pub(crate) fn close(&self) {
        self.shut(LinkState::Closed);
        // A sender past its state check finishes its write first; later ones see the state.
        drop(self.tx.lock());
        let mine = channels().ok().and_then(|channels| {
            let mut list = channels.list.lock();
            let at = list.iter().position(|c| core::ptr::eq(&**c, self));
            at.and_then(|i| list.remove(i).ok())
        });
        // Dropped outside the raw lock (dropping the last reference sleeps).
        drop(mine);
        // An atomic handler running on another CPU, then a running work, finish first;
        // later ones see the state.
        self.quiesce();
    }

    /// Writes into the ring the instance sends on what a broken instance kernel would, then
    /// drains it as a doorbell would (`CONFIG_MULTIKERNEL_IKC_FAULT_INJECT`, testing only):
    /// `head` publishes a head index far outside the ring, `magic` overwrites the ring's
    /// magic number.
    pub(crate) fn inject(self: &Arc<Self>, fault: &[u8]) -> Result {
        if !cfg!(CONFIG_MULTIKERNEL_IKC_FAULT_INJECT) || self.side != Side::Host {
            return Err(EOPNOTSUPP);
        }
        let off = self.rx_off();
        match fault {
            b"head" => self.mem.store_seqcst(off + ring::OFF_HEAD, u64::MAX / 3),
            b"magic" => self.mem.store_seqcst(off + ring::OFF_MAGIC, 0x0bad),
            _ => return Err(EINVAL),
        }
        self.kick();
        Ok(())
    }

    /// One round trip: a ping of `size` bytes (at least 8) and its answer; nanoseconds.
    /// The answer is awaited spinning for up to [`PING_SPIN_US`] (it comes back from
    /// the other kernel's interrupt handler, like a cross-CPU function call's), then sleeping.
    pub(crate) fn ping(&self, size: usize) -> Result<i64> {
        let _one = self.ping_lock.lock();
        let token = self.ping_token.fetch_add(1, Ordering::Relaxed) + 1;
        let mut payload = KVec::from_elem(0u8, size.clamp(8, ring::MAX_PAYLOAD), GFP_KERNEL)?;
        payload[..8].copy_from_slice(&token.to_le_bytes());
        let start = Instant::<Monotonic>::now();
        self.send(port::PING, &payload, true)?;
        while self.pong.load(Ordering::Acquire) != token {
            if start.elapsed().as_micros_ceil() > PING_SPIN_US {
                return self.ping_sleep(token, start);
            }
            core::hint::spin_loop();
        }
        Ok(start.elapsed().as_nanos())
    }

    fn ping_sleep(&self, token: u64, start: Instant<Monotonic>) -> Result<i64> {
        let mut gen = self.pong_gen.lock();
        while self.pong.load(Ordering::Acquire) != token {
            self.usable()?;
            if start.elapsed().as_millis() > i64::from(PING_TIMEOUT_MS) {
                return Err(ETIMEDOUT);
            }
            let res = self
                .pong_cv
                .wait_interruptible_timeout(&mut gen, msecs_to_jiffies(100));
            if let CondVarTimeoutResult::Signal { .. } = res {
                return Err(ERESTARTSYS);
            }
        }
        Ok(start.elapsed().as_nanos())
    }

    /// Host: whether the instance kernel wrote a stop reason into its mailbox.
    fn peer_stopping(&self) -> bool {
        let at = crate::sys::spawn::STOP_OFFSET;
        // The reason is the low half of the word (little endian); the high half is unused.
        self.mailbox
            .as_ref()
            .is_some_and(|m| m.load_seqcst(at) & 0xffff_ffff != 0)
    }

    /// The heartbeat, every [`HEARTBEAT_MS`] while open: the instance beats, the host looks.
    /// Both also drain what a lost doorbell left behind (one sent to a CPU that went offline).
    fn tick(self: &Arc<Self>) -> bool {
        if self.state() != LinkState::Open {
            return false;
        }
        if self.rx_pending() {
            self.kick();
        }
        match self.side {
            Side::Instance => {
                let beat = self.beat.fetch_add(1, Ordering::Relaxed) + 1;
                self.mem.store_seqcst(OFF_HEARTBEAT, beat);
            }
            Side::Host => {
                // The kernel said it stops: no heartbeat is missed, nothing more will come.
                // The instance reads why (`Instance::state`).
                if self.peer_stopping() {
                    // What it sent last (its panic message, say) is taken in first.
                    self.take_in_last();
                    if self.shut(LinkState::PeerStopped) {
                        pr_info!("{}: its kernel stops\n", self.label());
                    }
                    return false;
                }
                if !self.hint_fresh.swap(false, Ordering::Relaxed) {
                    self.mem.store_seqcst(OFF_HOST_DOORBELL, 0);
                }
                let beat = self.mem.load_seqcst(OFF_HEARTBEAT);
                if beat != self.beat.swap(beat, Ordering::Relaxed) {
                    self.misses.store(0, Ordering::Relaxed);
                    self.beating.store(true, Ordering::Relaxed);
                } else if self.beating.load(Ordering::Relaxed) {
                    let misses = self.misses.fetch_add(1, Ordering::Relaxed) + 1;
                    if misses >= HEARTBEAT_MISSES && self.shut(LinkState::PeerDead) {
                        crate::report::warn(format_args!(
                            "{}: crashed: no heartbeat for {} ms (last beat #{beat})",
                            self.label(),
                            misses * HEARTBEAT_MS
                        ));
                        return false;
                    }
                }
            }
        }
        true
    }
}

impl WorkItem<0> for Channel {
    type Pointer = Arc<Channel>;

    fn run(this: Arc<Channel>) {
        if this.work() {
            let _ = workqueue::system_highpri().enqueue::<Arc<Channel>, 0>(this);
        }
    }
}

impl WorkItem<1> for Channel {
    type Pointer = Arc<Channel>;

    fn run(this: Arc<Channel>) {
        if this.tick() {
            let _ = workqueue::system_power_efficient()
                .enqueue_delayed::<Arc<Channel>, 1>(this, msecs_to_jiffies(HEARTBEAT_MS));
        }
    }
}

/// The header of a message as the device reads and writes it (`struct mk_ikc_msg` in
/// `include/uapi/linux/multikernel.h`): port, flags (0), payload length.
pub(crate) const DEVICE_HEADER: usize = 8;

/// "The channel to X" across restarts: what the message device and sysfs hold.
#[pin_data]
pub(crate) struct Endpoint {
    /// The device's name, for messages.
    name: CString,
    #[pin]
    current: SpinLock<Option<Arc<Channel>>>,
    /// Where the device's users wait, whichever channel is current.
    waiters: Arc<Waiters>,
    /// The kernel services of its channels.
    services: Arc<Services>,
    /// Payload size of the pings `instances/NAME/ping` sends.
    pub(crate) ping_size: AtomicUsize,
}

impl Endpoint {
    /// The host's end of the channels to an instance, behind `/dev/DEVICE`.
    pub(crate) fn host(device: fmt::Arguments<'_>) -> Result<Arc<Self>> {
        Self::new(device, &HOST_BUILTIN)
    }

    /// An instance's end of the channel to the host, behind `/dev/DEVICE`.
    pub(crate) fn instance(device: fmt::Arguments<'_>) -> Result<Arc<Self>> {
        Self::new(device, &INSTANCE_BUILTIN)
    }

    fn new(device: fmt::Arguments<'_>, builtin: &[(u16, Handler)]) -> Result<Arc<Self>> {
        let name = CString::try_from_fmt(device)?;
        let waiters = Waiters::new()?;
        let services = Services::new(builtin)?;
        Arc::pin_init(
            pin_init!(Self {
                name,
                current <- new_spinlock!(None, "multikernel::Endpoint::current"),
                waiters,
                services,
                ping_size: AtomicUsize::new(64),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn channel(&self) -> Option<Arc<Channel>> {
        self.current.lock().clone()
    }

    /// Replaces the channel; returns the old one (to close, outside the lock).
    pub(crate) fn set(&self, channel: Option<Arc<Channel>>) -> Option<Arc<Channel>> {
        core::mem::replace(&mut *self.current.lock(), channel)
    }

    /// Registers `handler` as the service on kernel port `port` (1-63) of this endpoint's
    /// channels, the current one and those of later runs, until the registration is dropped.
    /// `EINVAL` for a port outside 1-63, `EBUSY` if it has a service, `ENOSPC` when
    /// [`MAX_SERVICES`] are registered.
    pub(crate) fn register(
        self: &Arc<Self>,
        port: u16,
        handler: Handler,
    ) -> Result<PortRegistration> {
        if port == 0 || port >= port::FIRST_USER {
            return Err(EINVAL);
        }
        let mut table = self.services.table.lock();
        if table.iter().any(|(p, _)| *p == port) {
            return Err(EBUSY);
        }
        table
            .push_within_capacity((port, handler))
            .map_err(|_| ENOSPC)?;
        Ok(PortRegistration {
            endpoint: self.clone(),
            port,
        })
    }

    /// Refuses a read or write: one rate-limited message, and the errno.
    fn refuse(&self, err: Error, why: fmt::Arguments<'_>) -> Error {
        crate::report::warn(format_args!(
            "/dev/{}: {why}",
            self.name.to_str().unwrap_or("?")
        ));
        err
    }

    /// Closes and forgets the channel, if any.
    pub(crate) fn close(&self) {
        if let Some(old) = self.set(None) {
            old.close();
        }
    }
}

fn user_port_allowed(port: u16) -> bool {
    port == port::ECHO || port == port::DISCARD || port >= port::FIRST_USER
}

impl DeviceOps for Endpoint {
    /// Every open file talks to the same channel.
    type File = Endpoint;

    fn open(this: &Arc<Self>) -> Result<Arc<Endpoint>> {
        Ok(this.clone())
    }
}

impl FileOps for Endpoint {
    fn read(&self, out: &mut UserSliceWriter, nonblock: bool) -> Result<usize> {
        let ch = self.channel().ok_or(ENOTCONN)?;
        let size = out.len();
        let small = |e: Error| match e {
            EMSGSIZE => self.refuse(
                e,
                format_args!("read of {size} bytes: the next message is longer"),
            ),
            e => e,
        };
        let max = size
            .checked_sub(DEVICE_HEADER)
            .ok_or(EMSGSIZE)
            .map_err(small)?;
        let msg = ch.recv_user(max, nonblock).map_err(small)?;
        let mut header = [0u8; DEVICE_HEADER];
        header[0..2].copy_from_slice(&msg.port.to_le_bytes());
        header[4..8].copy_from_slice(&(msg.data.len() as u32).to_le_bytes());
        if let Err(e) = out
            .write_slice(&header)
            .and_then(|()| out.write_slice(&msg.data))
        {
            // Not lost: the next read gets it.
            ch.unrecv(msg);
            return Err(e);
        }
        Ok(DEVICE_HEADER + msg.data.len())
    }

    fn write(&self, mut input: UserSliceReader, len: usize, nonblock: bool) -> Result<usize> {
        let Some(payload_len) = len.checked_sub(DEVICE_HEADER) else {
            return Err(self.refuse(
                EINVAL,
                format_args!("write of {len} bytes: no message header"),
            ));
        };
        if payload_len > ring::MAX_PAYLOAD {
            return Err(self.refuse(
                EMSGSIZE,
                format_args!("write of a {payload_len}-byte payload: at most 4096"),
            ));
        }
        let mut header = [0u8; DEVICE_HEADER];
        input.read_slice(&mut header)?;
        let port = u16::from_le_bytes([header[0], header[1]]);
        let flags = u16::from_le_bytes([header[2], header[3]]);
        let declared = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if flags != 0 || declared as usize != payload_len {
            return Err(self.refuse(
                EINVAL,
                format_args!(
                    "header says flags {flags}, length {declared}; {payload_len} bytes follow"
                ),
            ));
        }
        if !user_port_allowed(port) {
            return Err(self.refuse(EINVAL, format_args!("port {port} belongs to the kernel")));
        }
        let mut payload = KVec::new();
        input.read_all(&mut payload, GFP_KERNEL)?;
        let ch = self.channel().ok_or(ENOTCONN)?;
        ch.send(port, &payload, !nonblock)?;
        Ok(len)
    }

    fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        match self.channel() {
            Some(ch) => ch.poll(file, table),
            None => poll::HUP,
        }
    }
}

#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
#[kunit_tests(multikernel_ikc)]
mod tests {
    use super::*;

    /// Services are registered per port, refused when taken or out of range, and gone when
    /// their registration is dropped.
    #[test]
    fn service_registration() -> Result {
        let endpoint = Endpoint::host(format_args!("mk-kunit"))?;
        assert!(endpoint.services.lookup(port::PING).is_some());
        assert!(endpoint.services.lookup(port::ECHO).is_none());
        let echo = endpoint.register(port::ECHO, ECHO_SERVICE)?;
        assert!(endpoint.services.lookup(port::ECHO).is_some());
        assert_eq!(
            endpoint.register(port::ECHO, DISCARD_SERVICE).err(),
            Some(EBUSY)
        );
        assert_eq!(
            endpoint.register(port::PING, DISCARD_SERVICE).err(),
            Some(EBUSY)
        );
        assert_eq!(endpoint.register(0, DISCARD_SERVICE).err(), Some(EINVAL));
        assert_eq!(
            endpoint.register(port::FIRST_USER, DISCARD_SERVICE).err(),
            Some(EINVAL)
        );
        let mut more = KVec::new();
        for p in 10..10 + MAX_SERVICES as u16 - 1 {
            more.push(endpoint.register(p, DISCARD_SERVICE)?, GFP_KERNEL)?;
        }
        assert_eq!(endpoint.register(40, DISCARD_SERVICE).err(), Some(ENOSPC));
        drop(echo);
        assert!(endpoint.services.lookup(port::ECHO).is_none());
        let again = endpoint.register(port::ECHO, ECHO_SERVICE)?;
        drop(more);
        drop(again);
        assert_eq!(endpoint.services.table.lock().len(), HOST_BUILTIN.len());
        Ok(())
    }

    /// A console log keeps the last bytes, and a reader that fell behind skips to the oldest.
    #[test]
    fn console_log_keeps_the_tail() -> Result {
        let log = ConsoleLog::new()?;
        let mut out = KVec::from_elem(0u8, 8, GFP_KERNEL)?;
        assert_eq!(log.recent(&mut out), 0);
        log.append(b"hello ");
        log.append(b"world");
        assert_eq!(log.recent(&mut out), 8);
        assert_eq!(&out[..], b"lo world");
        let big = KVec::from_elem(b'x', CONSOLE_BYTES + 100, GFP_KERNEL)?;
        log.append(&big);
        log.append(b"end");
        let buf = log.buf.lock();
        assert_eq!(buf.total, 11 + CONSOLE_BYTES as u64 + 103);
        let mut tail = [0u8; 4];
        // From position 0: long gone, so the copy starts at the oldest byte kept.
        assert_eq!(buf.copy_from(0, &mut tail).1, 4);
        assert_eq!(&tail, b"xxxx");
        assert_eq!(buf.copy_from(buf.total - 3, &mut tail).1, 3);
        assert_eq!(&tail[..3], b"end");
        Ok(())
    }
}
