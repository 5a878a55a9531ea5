// SPDX-License-Identifier: GPL-2.0

//! One end of a channel: sending, draining the receive ring (atomic handlers in the doorbell's
//! interrupt, the rest in the channel's work), user-space messages, closing.
//!
//! `heartbeat.rs`: ping, the heartbeat, the peer's stop word and fault injection.

use super::*;
use crate::sys::mapping::PfnMapping;

mod heartbeat;

/// The outcome of one non-blocking attempt to send.
pub(super) enum Attempt {
    Sent,
    /// Room appeared while asking the peer for it: try again.
    Retry,
    Full,
    NotOpen(LinkState),
    Fault(RingError),
}

/// Drains one run of the channel's work makes before it queues itself again (a peer that
/// refills the ring as fast as it is drained must not keep a worker busy).
pub(super) const DRAIN_BUDGET: usize = 64;

/// Messages one drain handles, with the receive lock held and so with interrupts off. From
/// the doorbell interrupt, the doorbell budget (`ikc_x86.c`) allows 32 drains per CPU per
/// millisecond: a peer gets at most 256 atomic messages (each at most a 4 KiB copy in, one
/// out and a doorbell back) handled in interrupts per CPU per millisecond, however it fills
/// its ring; the rest is the work's, between whose drains interrupts and preemption come.
const DRAIN_MESSAGES: usize = 8;

/// What the drain of the receive ring stopped at.
pub(super) enum Drained {
    /// Empty ring (a doorbell was asked for, unless the drain polls), a message that must
    /// wait, or a closed channel.
    Idle,
    /// The budget is spent and messages remain: the work continues.
    More,
    /// A message that needs process context is next (its header; [`Channel::take`] takes it).
    Process(ring::Received),
}

/// Work the doorbell left for process context.
pub(super) const PENDING_PONG: u32 = 1 << 0;
pub(super) const PENDING_BROKEN: u32 = 1 << 1;

/// One end of a channel.
#[pin_data]
pub(crate) struct Channel {
    pub(super) name: CString,
    pub(super) side: Side,
    /// Physical address of the channel (of `mem`).
    pub(super) phys: u64,
    pub(super) mem: SharedMem,
    /// Host: the instance's mailbox page, where its kernel writes why it stops.
    pub(super) mailbox: Option<SharedMem>,
    pub(super) peer_apic: u32,
    /// The endpoint's services.
    pub(super) services: Arc<Services>,
    pub(super) state: AtomicU8,
    pub(crate) counters: Counters,
    pub(super) console: Option<Arc<ConsoleLog>>,
    /// The producer of this end. Raw: atomic handlers answer from the doorbell interrupt, and
    /// the console sends from any context.
    #[pin]
    pub(super) tx: RawSpinLockIrq<Producer>,
    /// The consumer; atomic handlers run under it.
    #[pin]
    pub(super) rx: RawSpinLockIrq<Rx>,
    /// The work's buffer for messages handled in process context; held while they are.
    #[pin]
    pub(super) work_buf: Mutex<KVec<u8>>,
    /// A sender or poller found the ring full: the next doorbell must wake it.
    pub(super) space_wanted: AtomicBool,
    /// Bumped by the work when room may have appeared; senders sleep on `space` unless it moved.
    #[pin]
    pub(super) space_gen: SpinLock<u64>,
    #[pin]
    pub(super) inbox: SpinLock<Inbox>,
    /// Where senders, readers and pollers wait (the endpoint's).
    pub(super) waiters: Arc<Waiters>,
    /// The inbox was full: draining stopped until user space reads.
    pub(super) paused: AtomicBool,
    /// `PENDING_*` bits for the work.
    pub(super) pending: AtomicU32,
    /// Why the channel broke (logged by the work).
    pub(super) fault: SetOnce<&'static str>,
    #[pin]
    pub(super) ping_lock: Mutex<()>,
    pub(super) ping_token: AtomicU64,
    /// The token of the last answer to a ping, written by the atomic pong handler.
    pub(super) pong: AtomicU64,
    /// Pingers asleep for their answer: only then does a pong need the work's wakeup.
    pub(super) pong_sleepers: AtomicU32,
    #[pin]
    pub(super) pong_gen: SpinLock<u64>,
    #[pin]
    pub(super) pong_cv: CondVar,
    /// Host: the last heartbeat value seen, checks since it changed, whether one was seen.
    /// Instance: the beats sent.
    pub(super) beat: AtomicU64,
    pub(super) misses: AtomicU32,
    pub(super) beating: AtomicBool,
    /// Host: a send renewed the doorbell hint since the last tick.
    pub(super) hint_fresh: AtomicBool,
    #[pin]
    pub(super) drain_work: Work<Channel, 0>,
    #[pin]
    pub(super) tick_work: DelayedWork<Channel, 1>,
    /// The network link of this run, if any: kicked by the doorbell, detached by `close`.
    pub(super) net: SetOnce<Arc<net::NetLink>>,
    /// The endpoint's stream mappings: this channel's area leaves them when it leaves the open
    /// state (`area.rs`).
    pub(super) mapping: Arc<PfnMapping>,
}

/// Where the host's end of an instance's channel is ([`Channel::host`]).
pub(crate) struct HostPlace<'a> {
    /// The instance's name.
    pub(crate) name: &'a str,
    pub(crate) id: u32,
    /// The channel's memory (inside the instance's).
    pub(crate) start: u64,
    /// The instance's mailbox page.
    pub(crate) mailbox: u64,
    /// The instance CPU doorbells go to.
    pub(crate) peer_apic: u32,
    pub(crate) console: Arc<ConsoleLog>,
    pub(crate) endpoint: &'a Endpoint,
}

/// How often [`Channel::send_console`] tries the producer lock before it gives up.
const CONSOLE_LOCK_TRIES: u32 = 1000;

impl_has_work! {
    impl HasWork<Self, 0> for Channel { self.drain_work }
}
impl_has_delayed_work! {
    impl HasDelayedWork<Self, 1> for Channel { self.tick_work }
}

impl Channel {
    /// Host: opens the host's end of instance `place.id`'s channel at `place.start` (inside its
    /// memory); doorbells go to APIC id `place.peer_apic`. The heartbeat also watches the
    /// stop word of the instance's mailbox page at `place.mailbox`. Without `at` the channel
    /// is set up afresh (no kernel runs on that memory yet); with `at`, after a host update,
    /// it is the previous kernel's, whose instance kept running: its header must still be
    /// ours and its rings go on from `at`. What the instance sent meanwhile is drained now, as
    /// on every open.
    pub(crate) fn host(place: HostPlace<'_>, at: Option<Positions>) -> Result<Arc<Self>> {
        let mem = SharedMem::map_pool(place.start, IKC_BYTES as u64)?;
        if at.is_some() {
            Self::check_header(&mem, place.id)?;
        } else {
            mem.write(0, &[0u8; 64]);
            for off in [TO_INSTANCE, TO_HOST] {
                ring::init(&mut RingView {
                    mem: &mem,
                    off,
                    bytes: RING_BYTES,
                })
                .map_err(|e| e.errno())?;
            }
            // The stream area: nothing of an earlier run (or instance) shows through.
            mem.zero_bulk(STREAM_OFFSET, stream::BYTES);
            mem.store_seqcst(STREAM_OFFSET + stream::OFF_SIZE, stream::SIZE as u64);
            mem.store_seqcst(STREAM_OFFSET + stream::OFF_MAGIC, stream::MAGIC);
            mem.store_seqcst(OFF_VERSION, VERSION);
            mem.store_seqcst(OFF_ID, u64::from(place.id));
            mem.store_seqcst(OFF_HEARTBEAT, 0);
            mem.store_seqcst(OFF_MAGIC, MAGIC);
        }
        let name = CString::try_from_fmt(fmt!("{}", place.name))?;
        let mailbox = SharedMem::map_pool(place.mailbox, 4096)?;
        Self::open(
            name,
            Side::Host,
            place.start,
            mem,
            Some(mailbox),
            place.peer_apic,
            Some(place.console),
            place.endpoint,
            at,
        )
    }

    /// `EPROTO` unless `mem` starts with a channel header of this layout for instance `id`.
    fn check_header(mem: &SharedMem, id: u32) -> Result {
        if mem.load_seqcst(OFF_MAGIC) != MAGIC
            || mem.load_seqcst(OFF_VERSION) != VERSION
            || mem.load_seqcst(OFF_ID) != u64::from(id)
        {
            return Err(EPROTO);
        }
        Ok(())
    }

    /// Host update, in the kernel going away: closes this end (as [`Channel::close`]) and
    /// returns where its rings and its network link's are, for the next kernel to go on from.
    /// Nothing is written into the channel's memory: the instance's kernel keeps using it.
    /// Messages already taken off the ring but not read by user space are lost.
    pub(crate) fn hand_over(&self) -> (Positions, Option<Positions>) {
        self.close();
        let at = Positions {
            tx: self.tx.lock().position(),
            rx: self.rx.lock().consumer.position(),
        };
        (at, self.net.as_ref().map(|link| link.positions()))
    }

    /// Instance: opens this kernel's end of the channel the host described.
    pub(crate) fn instance(info: &InstanceInfo, endpoint: &Endpoint) -> Result<Arc<Self>> {
        let mem = SharedMem::map_host_channel(0, IKC_BYTES as u64)?;
        Self::check_header(&mem, info.id)?;
        let name = CString::try_from_fmt(fmt!("host"))?;
        Self::open(
            name,
            Side::Instance,
            info.channel,
            mem,
            None,
            info.host_apic,
            None,
            endpoint,
            None,
        )
    }

    /// Opens an end on `mem`, its rings new (`at` is `None`) or going on from `at`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open(
        name: CString,
        side: Side,
        phys: u64,
        mem: SharedMem,
        mailbox: Option<SharedMem>,
        peer_apic: u32,
        console: Option<Arc<ConsoleLog>>,
        endpoint: &Endpoint,
        at: Option<Positions>,
    ) -> Result<Arc<Self>> {
        let (producer, consumer) = match at {
            None => (Producer::new(), Consumer::new()),
            Some(at) => {
                let (tx_off, rx_off) = match side {
                    Side::Host => (TO_INSTANCE, TO_HOST),
                    Side::Instance => (TO_HOST, TO_INSTANCE),
                };
                let ring = |off| RingView {
                    mem: &mem,
                    off,
                    bytes: RING_BYTES,
                };
                (
                    Producer::resume(ring::MAX_PAYLOAD, at.tx, &ring(tx_off)).ok_or(EPROTO)?,
                    Consumer::resume(ring::MAX_PAYLOAD, at.rx, &ring(rx_off)).ok_or(EPROTO)?,
                )
            }
        };
        let services = endpoint.services.clone();
        let waiters = endpoint.waiters.clone();
        let mapping = endpoint.mapping.clone();
        let buf = KVec::from_elem(0u8, ring::MAX_PAYLOAD, GFP_KERNEL)?;
        let work_buf = KVec::from_elem(0u8, ring::MAX_PAYLOAD, GFP_KERNEL)?;
        let inbox = Inbox::new()?;
        let ch = Arc::pin_init(
            pin_init!(Self {
                name,
                side,
                phys,
                mem,
                mailbox,
                peer_apic,
                services,
                state: AtomicU8::new(LinkState::Open as u8),
                counters: Counters::default(),
                console,
                tx <- new_raw_spinlock_irq!(producer, "multikernel::Channel::tx"),
                rx <- new_raw_spinlock_irq!(
                    Rx { consumer, buf },
                    "multikernel::Channel::rx"
                ),
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
                pong_sleepers: AtomicU32::new(0),
                pong_gen <- new_spinlock!(0, "multikernel::Channel::pong_gen"),
                pong_cv <- new_condvar!("multikernel::Channel::pong_cv"),
                beat: AtomicU64::new(0),
                misses: AtomicU32::new(0),
                beating: AtomicBool::new(false),
                hint_fresh: AtomicBool::new(false),
                drain_work <- new_work!("multikernel::Channel::drain_work"),
                tick_work <- new_delayed_work!("multikernel::Channel::tick_work"),
                net: SetOnce::new(),
                mapping,
            }),
            GFP_KERNEL,
        )?;
        {
            let mut slots = channels()?.slots.lock();
            let free = slots
                .iter_mut()
                .find(|s| matches!(s, Slot::Free))
                .ok_or(ENOSPC)?;
            *free = Slot::Open(ch.clone());
        }
        // Drain what is there already, which also asks for doorbells from now on.
        let _ = workqueue::system_highpri().enqueue::<Arc<Channel>, 0>(ch.clone());
        let _ = workqueue::system_power_efficient()
            .enqueue_delayed::<Arc<Channel>, 1>(ch.clone(), msecs_to_jiffies(HEARTBEAT_MS));
        Ok(ch)
    }

    /// The instance's name (host side) or "host".
    pub(super) fn label(&self) -> &str {
        self.name.to_str().unwrap_or("?")
    }

    pub(crate) fn state(&self) -> LinkState {
        // Sequentially consistent, as `leave_open` stores it (a plain load on x86).
        LinkState::from_u8(self.state.load(Ordering::SeqCst))
    }

    pub(super) fn usable(&self) -> Result {
        match self.state() {
            LinkState::Open => Ok(()),
            other => Err(other.errno()),
        }
    }

    pub(super) fn tx_off(&self) -> usize {
        match self.side {
            Side::Host => TO_INSTANCE,
            Side::Instance => TO_HOST,
        }
    }

    pub(super) fn rx_off(&self) -> usize {
        match self.side {
            Side::Host => TO_HOST,
            Side::Instance => TO_INSTANCE,
        }
    }

    pub(super) fn view(&self, off: usize) -> RingView<'_> {
        RingView {
            mem: &self.mem,
            off,
            bytes: RING_BYTES,
        }
    }

    pub(super) fn ring_doorbell(&self) {
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
    pub(super) fn doorbell_here(&self) {
        if self.side == Side::Host {
            self.hint_fresh.store(true, Ordering::Relaxed);
            let apic = crate::sys::spawn::apic_id(kernel::cpu::CpuId::current());
            if self.mem.load_seqcst(OFF_HOST_DOORBELL) != u64::from(apic) + 1 {
                self.mem
                    .store_seqcst(OFF_HOST_DOORBELL, u64::from(apic) + 1);
            }
        }
    }

    pub(super) fn handler(&self, port: u16) -> Option<Handler> {
        self.services.lookup(port)
    }

    /// Returns once no handler of this channel runs (one in an interrupt on another CPU, or in
    /// the work). Not from a handler.
    pub(super) fn quiesce(&self) {
        drop(self.rx.lock());
        drop(self.work_buf.lock());
    }

    /// One non-blocking attempt to send, from any context. A full ring asks the peer for a
    /// doorbell when it frees room. The state is checked under the producer lock, which
    /// `close` takes after marking the channel: nothing is written into a closed channel's
    /// memory (a new start sets it up afresh; a destroy gives it away). A `sender` (process
    /// context) is also woken by the work when room appears. A doorbell the peer asked for is
    /// rung, or with `owed` left to the caller (`*owed` set): a batch rings once.
    pub(super) fn try_send(
        &self,
        port: u16,
        payload: &[u8],
        sender: bool,
        owed: Option<&mut bool>,
    ) -> Attempt {
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
                match owed {
                    Some(owed) => {
                        *owed |= ring_it;
                        self.sent(payload.len(), false);
                    }
                    None => self.sent(payload.len(), ring_it),
                }
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
    pub(super) fn reply(&self, port: u16, payload: &[u8]) -> Reply {
        // Room that appears and vanishes again is a misbehaving peer: stop asking soon.
        for _ in 0..4 {
            match self.try_send(port, payload, false, None) {
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
        let mut owed = false;
        let sent = self.send_owing(port, payload, wait, &mut owed);
        if owed {
            self.ring_doorbell();
        }
        sent
    }

    /// As [`Channel::send`], one message of a batch: a doorbell the peer asked for is owed
    /// (`*owed` set) rather than rung, except before this sleeps for room (the peer must
    /// hear of what is there first). The caller rings once `*owed` at the end of the batch.
    pub(crate) fn send_owing(
        &self,
        port: u16,
        payload: &[u8],
        wait: bool,
        owed: &mut bool,
    ) -> Result {
        if payload.len() > ring::MAX_PAYLOAD {
            return Err(EMSGSIZE);
        }
        let mut counted_full = false;
        // Room that appears and vanishes again (another sender on this channel took it, or a
        // misbehaving peer): after four tries in a row this waits as on a full ring.
        let mut retries = 0;
        loop {
            let generation = *self.space_gen.lock();
            match self.try_send(port, payload, true, Some(&mut *owed)) {
                Attempt::Sent => return Ok(()),
                Attempt::Retry if retries < 4 => {
                    retries += 1;
                    continue;
                }
                Attempt::Retry | Attempt::Full => retries = 0,
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
            if core::mem::take(owed) {
                self.ring_doorbell();
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
    pub(super) fn sent(&self, len: usize, ring_it: bool) {
        add(&self.counters.tx, 1);
        add(&self.counters.bytes, len as u64);
        if ring_it {
            self.ring_doorbell();
        }
    }

    /// The instance's terminal and console: sends as much of `text` as fits now, without
    /// waiting, from any context; returns how many bytes went (the terminal sends the rest
    /// later, the kernel log drops it). The producer lock is tried for a bounded while only: it
    /// may be held on this very CPU (a print from inside a send, or from an NMI). Never prints.
    pub(crate) fn send_console(&self, text: &[u8]) -> usize {
        let mut done = 0;
        for chunk in text.chunks(ring::MAX_PAYLOAD) {
            let mut tx = None;
            for _ in 0..CONSOLE_LOCK_TRIES {
                tx = self.tx.try_lock();
                if tx.is_some() {
                    break;
                }
                core::hint::spin_loop();
            }
            let Some(mut tx) = tx else {
                break;
            };
            // Under the producer lock, as in `try_send`.
            if self.state() != LinkState::Open {
                break;
            }
            let sent = tx.send(&mut self.view(self.tx_off()), port::CONSOLE, chunk);
            drop(tx);
            let Ok(ring_it) = sent else {
                break;
            };
            self.sent(chunk.len(), ring_it);
            done += chunk.len();
        }
        done
    }

    /// Receives the drained messages nobody in the kernel handles, for user space. `EMSGSIZE`
    /// (the message stays) if the next one is longer than `max` bytes.
    pub(crate) fn recv_user(self: &Arc<Self>, max: usize, nonblock: bool) -> Result<Message> {
        let mut inbox = self.inbox.lock();
        loop {
            if let Some(first) = inbox.front() {
                if first.data.len() > max {
                    return Err(EMSGSIZE);
                }
                let msg = inbox.pop_front().ok_or(EINVAL)?;
                let half = inbox.len() <= INBOX_MAX / 2;
                drop(inbox);
                // Room again: resume a drain that stopped on a full inbox, once half of it is
                // free (not for every message taken: each resumption switches to the work and
                // back). A reader that goes on until it would block passes that mark.
                if half && self.paused.swap(false, Ordering::AcqRel) {
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

    /// Gives back the buffer of a message user space has read, for the next messages to be
    /// taken into (kept if it can hold any message and the inbox keeps fewer than its share).
    pub(crate) fn recycle(&self, mut data: KVec<u8>) {
        if data.capacity() < ring::MAX_PAYLOAD
            || data.resize(ring::MAX_PAYLOAD, 0, GFP_KERNEL).is_err()
        {
            return;
        }
        self.inbox.lock().keep_spare(data);
    }

    /// Puts a message user space could not take (a faulting buffer) back at the head.
    pub(crate) fn unrecv(&self, msg: Message) {
        if self.inbox.lock().push_front(msg).is_err() {
            add(&self.counters.errors, 1);
        }
    }

    /// Queues this channel's work.
    pub(super) fn kick(self: &Arc<Self>) {
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
    pub(super) fn on_doorbell(&self) -> bool {
        let process = !matches!(self.drain(), Drained::Idle);
        process
            || self.space_wanted.load(Ordering::Acquire)
            || self.pending.load(Ordering::Acquire) != 0
            || self.waiters.stream_sleeping()
    }

    /// Drains the receive ring: atomic handlers run on the spot, under the receive lock.
    /// Stops at an empty ring (asking for a doorbell), at a message whose answer must wait,
    /// or at a message for process context, whose header it returns: the message stays in
    /// the ring (its payload not even copied) until [`Channel::take`].
    pub(super) fn drain(&self) -> Drained {
        self.drain_asking(true)
    }

    /// As [`Channel::drain`]; at an empty ring it asks for a doorbell only if `ask` (a
    /// polling waiter does not: [`Channel::poll_rx`]).
    fn drain_asking(&self, ask: bool) -> Drained {
        let mut rx = self.rx.lock();
        let Rx { consumer, buf } = &mut *rx;
        let mut view = self.view(self.rx_off());
        for _ in 0..DRAIN_MESSAGES {
            if self.state() != LinkState::Open {
                return Drained::Idle;
            }
            let msg = match consumer.peek_header(&view) {
                Ok(msg) => msg,
                Err(RingError::Empty) => {
                    if consumer.space_wanted(&mut view) {
                        self.ring_doorbell();
                    }
                    if ask && consumer.want_doorbell(&mut view) {
                        continue;
                    }
                    return Drained::Idle;
                }
                Err(e) => {
                    self.fail(e);
                    return Drained::Idle;
                }
            };
            let Some(Handler::Atomic(handler)) = self.handler(msg.port) else {
                return Drained::Process(msg);
            };
            if let Err(e) = consumer.payload(&view, &msg, buf) {
                self.fail(e);
                return Drained::Idle;
            }
            if handler(self, &buf[..msg.len]) == Reply::Later {
                return Drained::Idle;
            }
            self.consumed(consumer, &mut view, &msg);
        }
        Drained::More
    }

    /// Polling instead of doorbells, for a waiter that spins for an answer (a ping): the
    /// peer is asked not to ring (no interrupt here, as a cross-CPU call's caller takes none)
    /// and the receive ring is drained here until [`Channel::end_poll`]. `kicked`: whether the
    /// work was kicked already, for a message for process context or for more than one
    /// drain's budget (once is enough).
    pub(super) fn poll_rx(self: &Arc<Self>, kicked: &mut bool) {
        // A look without the lock first (the drain checks whatever it finds).
        if !ring::unread(&self.view(self.rx_off())) {
            return;
        }
        if !matches!(self.drain_asking(false), Drained::Idle) && !*kicked {
            *kicked = true;
            self.kick();
        }
    }

    /// Starts polling ([`Channel::poll_rx`]): withdraws this side's wish for doorbells, under
    /// the receive lock, as a drain asks for them (never once the channel left `Open`:
    /// `close` takes the lock after marking it).
    pub(super) fn begin_poll(&self) {
        let rx = self.rx.lock();
        if self.state() == LinkState::Open {
            rx.consumer.no_doorbell(&mut self.view(self.rx_off()));
        }
    }

    /// Ends polling: drains as a doorbell does, which asks for doorbells again at the empty
    /// ring (and takes in what came just before).
    pub(super) fn end_poll(self: &Arc<Self>) {
        if self.on_doorbell() {
            self.kick();
        }
    }

    /// Takes the message for process context [`Channel::drain`] stopped at, `msg`, copying
    /// its payload into `out` (at least `msg.len` bytes). Only the work does, holding
    /// `work_buf`: nothing else consumes a message for process context, so `msg` is still
    /// the next one (checked by its sequence number all the same). Whether it was taken (not
    /// on a closed or broken channel).
    pub(super) fn take(&self, msg: &ring::Received, out: &mut [u8]) -> bool {
        let mut rx = self.rx.lock();
        // Not the next one any more (an atomic service registered on its port meanwhile
        // consumed it in the interrupt): leave the ring to the next drain.
        if self.state() != LinkState::Open || rx.consumer.position()[1] != msg.seq {
            return false;
        }
        let mut view = self.view(self.rx_off());
        if let Err(e) = rx.consumer.payload(&view, msg, out) {
            self.fail(e);
            return false;
        }
        self.consumed(&mut rx.consumer, &mut view, msg);
        true
    }

    /// Whether the receive ring holds a message (or garbage) this side has not taken.
    pub(super) fn rx_pending(&self) -> bool {
        let rx = self.rx.lock();
        let view = self.view(self.rx_off());
        !matches!(rx.consumer.peek(&view, &mut []), Err(RingError::Empty))
    }

    pub(super) fn consumed(
        &self,
        consumer: &mut Consumer,
        view: &mut RingView<'_>,
        msg: &ring::Received,
    ) {
        consumer.advance(view, msg);
        add(&self.counters.rx, 1);
        add(&self.counters.bytes, msg.len as u64);
        if consumer.space_wanted_half(view) {
            self.ring_doorbell();
        }
    }

    /// The channel's work: the wakeups and log lines the doorbell could not do, and the
    /// messages for process context (handlers, the inbox). Returns whether it must run again
    /// (its budget is spent).
    pub(super) fn work(&self) -> bool {
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
            match self.drain() {
                Drained::Idle => {
                    again = false;
                    break;
                }
                // Another drain, interrupts on in between (up to this run's budget).
                Drained::More => continue,
                Drained::Process(msg) => {
                    // A kernel service in process context reads it from the work's buffer.
                    if let Some(Handler::Process(handler)) = self.handler(msg.port) {
                        if !self.take(&msg, &mut buf) {
                            again = false;
                            break;
                        }
                        handler(self, &buf[..msg.len]);
                        continue;
                    }
                    // For user space: straight from the ring into the message it will read,
                    // in a buffer a reader gave back or a new one (allocated once the lock is
                    // let go).
                    let spare = self.inbox.lock().take_spare();
                    let data = match spare {
                        Some(spare) => Ok(spare),
                        None => KVec::from_elem(0u8, msg.len, GFP_KERNEL),
                    };
                    match data {
                        Ok(mut data) => {
                            if !self.take(&msg, &mut data) {
                                again = false;
                                break;
                            }
                            data.truncate(msg.len);
                            self.queue_for_user(msg.port, data);
                        }
                        Err(_) => {
                            // Taken all the same, or it would block the ring for good.
                            if !self.take(&msg, &mut buf) {
                                again = false;
                                break;
                            }
                            add(&self.counters.errors, 1);
                            crate::base::report::warn(format_args!(
                                "ikc {}: out of memory, message on port {} dropped",
                                self.label(),
                                msg.port
                            ));
                        }
                    }
                }
            }
        }
        drop(buf);
        self.settle();
        again
    }

    /// Wakes whoever the doorbell's atomic part left waiting, and reports a broken channel.
    pub(super) fn settle(&self) {
        // Stream waiters look at their indices again (the doorbell may have been a kick).
        self.waiters.wake_stream();
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
            crate::base::report::warn(format_args!("ikc {}: channel broken: {why}", self.label()));
            self.wake_all();
        }
    }

    /// Queues a message for user space (its reader is woken).
    pub(super) fn queue_for_user(&self, port: u16, data: KVec<u8>) {
        let mut inbox = self.inbox.lock();
        // `work` keeps the inbox below its reserved capacity.
        if inbox.push_back(Message { port, data }).is_err() {
            add(&self.counters.errors, 1);
        }
        drop(inbox);
        self.waiters.readable.notify_all();
    }

    /// The peer broke the ring protocol (any context): the state says so at once; the work
    /// logs it and wakes every waiter.
    pub(super) fn fail(&self, e: RingError) {
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
    pub(super) fn leave_open(&self, state: LinkState) -> bool {
        self.state
            .compare_exchange(
                LinkState::Open as u8,
                state as u8,
                // Sequentially consistent: a stream waiter counts itself, then reads the
                // state; `close` sets the state, then reads the count (`area.rs`).
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// Wakes every waiter (process context): they look at the state.
    pub(super) fn wake_all(&self) {
        *self.space_gen.lock() += 1;
        self.waiters.space.notify_all();
        drop(self.inbox.lock());
        self.waiters.readable.notify_all();
        *self.pong_gen.lock() += 1;
        self.pong_cv.notify_all();
        self.waiters.wake_stream();
        self.revoke_area();
    }

    /// Sets the state (from open) and wakes every waiter (process context).
    pub(super) fn shut(&self, state: LinkState) -> bool {
        let changed = self.leave_open(state);
        self.wake_all();
        changed
    }

    /// Drains what the peer left in the ring, in process context, within a bound (a peer
    /// that keeps writing cannot hold the caller): the last words of a kernel that stops.
    pub(super) fn take_in_last(&self) {
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

    /// Gives this run's network link to the channel: doorbells kick it, `close` detaches it.
    pub(crate) fn set_net(&self, link: Arc<net::NetLink>) -> Result {
        if self.net.populate(link) {
            Ok(())
        } else {
            Err(EBUSY)
        }
    }

    /// This run's network link, if it has one.
    pub(crate) fn net(&self) -> Option<&Arc<net::NetLink>> {
        self.net.as_ref()
    }

    /// A doorbell came: the network link looks at its rings (any context).
    pub(super) fn kick_net(&self) {
        if let Some(link) = self.net.as_ref() {
            link.kick();
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
        // Carrier down; no frame moves through the link once this returns.
        if let Some(link) = self.net.as_ref() {
            link.detach();
        }
        // A sender past its state check finishes its write first; later ones see the state.
        drop(self.tx.lock());
        if let Ok(channels) = channels() {
            let mine = {
                let mut slots = channels.slots.lock();
                let at = slots
                    .iter()
                    .position(|s| matches!(s, Slot::Open(c) if core::ptr::eq(&**c, self)));
                at.map(|at| (at, core::mem::replace(&mut slots[at], Slot::Closing)))
            };
            if let Some((at, ch)) = mine {
                // A doorbell that took the channel before it left the slot finishes with it
                // first: a bounded drain, and no new one starts on a closing slot.
                while channels.busy[at].load(Ordering::Acquire) != 0 {
                    core::hint::spin_loop();
                }
                channels.slots.lock()[at] = Slot::Free;
                // Dropped outside the raw lock (dropping the last reference sleeps).
                drop(ch);
            }
        }
        // An atomic handler running on another CPU, then a running work, finish first;
        // later ones see the state.
        self.quiesce();
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
