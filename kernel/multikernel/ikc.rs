// SPDX-License-Identifier: GPL-2.0

//! The inter-kernel channel (IKC): messages between the host and an instance kernel.
//!
//! A channel is a piece of the instance's memory, reserved by the loader and named on the
//! instance's command line (`multikernel.ikc=`), holding a header and two rings (`ring.rs`),
//! one per direction:
//!
//! ```text
//! +0             header: magic, version, instance id, heartbeat, host doorbell CPU  (4 KiB)
//! +4 KiB         ring host -> instance                                (4 KiB + 1 MiB)
//! +1 MiB + 8 KiB ring instance -> host                                (4 KiB + 1 MiB)
//! +2 MiB + 12 KiB stream area, mapped by processes (`ikc/area.rs`)    (4 KiB + 2 MiB)
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

use crate::base::{
    handover::Positions,
    ring::{
        self,
        Consumer,
        Producer,
        RingError,
        RingMemory, //
    },
    stream,
};
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
    prelude::*,
    static_lock_class,
    str::CString,
    sync::{
        new_condvar,
        new_mutex,
        new_raw_spinlock_irq,
        new_spinlock,
        poll::{
            PollCondVarBox,
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
        UserPtr,
        UserSlice,
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

use crate::base::wire::{
    IKC_BYTES,
    MAGIC,
    OFF_HEARTBEAT,
    OFF_HOST_DOORBELL,
    OFF_ID,
    OFF_MAGIC,
    OFF_VERSION,
    RING_BYTES,
    STREAM_OFFSET,
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
    /// The host asks the instance kernel to shut down in order (`control stop`).
    pub(crate) const STOP: u16 = 4;
    /// What the host types into the instance's terminal (`/dev/hvc0` there); its output comes
    /// back on [`CONSOLE`].
    pub(crate) const TERMINAL: u16 = 5;
    /// Fault injection (testing only): the host asks the instance kernel to send malformed
    /// frames on its network link.
    pub(crate) const NET_INJECT: u16 = 6;
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

/// A ring in shared memory, as `ring.rs` sees it: `bytes` at `off` (a channel's message ring,
/// [`RING_BYTES`], or a network link's frame ring).
struct RingView<'a> {
    mem: &'a SharedMem,
    off: usize,
    bytes: usize,
}

impl RingMemory for RingView<'_> {
    fn bytes(&self) -> usize {
        self.bytes
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        self.mem.read(self.off + off, out)
    }
    fn read_payload(&self, off: usize, out: &mut [u8]) {
        self.mem.read_bulk(self.off + off, out)
    }
    fn write(&mut self, off: usize, bytes: &[u8]) {
        self.mem.write(self.off + off, bytes)
    }
    fn write_payload(&mut self, off: usize, bytes: &[u8]) {
        self.mem.write_bulk(self.off + off, bytes)
    }
    fn load_seqcst(&self, off: usize) -> u64 {
        self.mem.load_seqcst(self.off + off)
    }
    fn store_seqcst(&mut self, off: usize, value: u64) {
        self.mem.store_seqcst(self.off + off, value)
    }
}

/// The wait queues of an endpoint's devices: owned by the endpoint (which open files keep),
/// shared with each of its channels, so a poller stays registered across restarts and never
/// on a freed channel. The two that `poll(2)` registers on are boxed ([`PollCondVarBox`]): freed
/// after an RCU grace period with `kfree_rcu`, not waited for (an unboxed `PollCondVar` waits
/// for one when dropped: 10 ms each under emulation, on `destroy`'s path).
#[pin_data]
pub(crate) struct Waiters {
    /// Senders and pollers waiting for room.
    space: PollCondVarBox,
    /// Readers and pollers waiting for a message.
    readable: PollCondVarBox,
    /// Processes waiting in `MK_IKC_STREAM_WAIT` (`area.rs`). The channel's work, queued by
    /// the doorbell, wakes them under this lock, which they hold from their last look at the
    /// indices until they sleep, so a wakeup is never lost between the two.
    #[pin]
    stream_lock: SpinLock<()>,
    #[pin]
    stream: CondVar,
    /// How many wait there (the interrupt takes the lock only when some do).
    stream_sleepers: AtomicU32,
}

impl Waiters {
    fn new() -> Result<Arc<Self>> {
        let space = PollCondVarBox::new(c"multikernel::Waiters::space", static_lock_class!())?;
        let readable =
            PollCondVarBox::new(c"multikernel::Waiters::readable", static_lock_class!())?;
        Arc::pin_init(
            pin_init!(Self {
                space,
                readable,
                stream_lock <- new_spinlock!((), "multikernel::Waiters::stream_lock"),
                stream <- new_condvar!("multikernel::Waiters::stream"),
                stream_sleepers: AtomicU32::new(0),
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

/// The messages waiting for user space, oldest first: a ring of slots allocated once, so
/// taking the oldest does not move the others.
pub(crate) struct Inbox {
    slots: KVec<Option<Message>>,
    /// The oldest message's slot.
    head: usize,
    len: usize,
    /// Buffers of [`ring::MAX_PAYLOAD`] bytes that readers gave back, for the drain to take
    /// the next messages into: a stream does not allocate and free one per message.
    spare: KVec<KVec<u8>>,
}

/// Buffers an inbox keeps for reuse (128 KiB).
const SPARE_MAX: usize = 32;

impl Inbox {
    /// Room for [`INBOX_MAX`] messages that the drain queues, and a few that readers put
    /// back (a reader that took one and could not copy it out).
    fn new() -> Result<Self> {
        let mut slots = KVec::with_capacity(INBOX_MAX + 8, GFP_KERNEL)?;
        for _ in 0..INBOX_MAX + 8 {
            slots.push(None, GFP_KERNEL)?;
        }
        Ok(Self {
            slots,
            head: 0,
            len: 0,
            spare: KVec::with_capacity(SPARE_MAX, GFP_KERNEL)?,
        })
    }

    /// A buffer given back by a reader, [`ring::MAX_PAYLOAD`] bytes long, if there is one.
    pub(crate) fn take_spare(&mut self) -> Option<KVec<u8>> {
        self.spare.pop()
    }

    /// Keeps `buf` (a buffer of [`ring::MAX_PAYLOAD`] bytes) for reuse, if there is room.
    fn keep_spare(&mut self, buf: KVec<u8>) {
        let _ = self.spare.push_within_capacity(buf);
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The oldest message.
    pub(crate) fn front(&self) -> Option<&Message> {
        if self.len == 0 {
            return None;
        }
        self.slots[self.head].as_ref()
    }

    /// Takes the oldest message.
    pub(crate) fn pop_front(&mut self) -> Option<Message> {
        if self.len == 0 {
            return None;
        }
        let msg = self.slots[self.head].take();
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        msg
    }

    /// Queues `msg` as the newest; gives it back if every slot is taken.
    pub(crate) fn push_back(&mut self, msg: Message) -> Result<(), Message> {
        if self.len == self.slots.len() {
            return Err(msg);
        }
        let at = (self.head + self.len) % self.slots.len();
        self.slots[at] = Some(msg);
        self.len += 1;
        Ok(())
    }

    /// Puts `msg` back as the oldest; gives it back if every slot is taken.
    pub(crate) fn push_front(&mut self, msg: Message) -> Result<(), Message> {
        if self.len == self.slots.len() {
            return Err(msg);
        }
        self.head = (self.head + self.slots.len() - 1) % self.slots.len();
        self.slots[self.head] = Some(msg);
        self.len += 1;
        Ok(())
    }
}

/// The receive side: the consumer and a buffer for atomic handlers, used under the lock.
struct Rx {
    consumer: Consumer,
    buf: KVec<u8>,
}

mod area;
mod channel;
mod console;
mod doorbell;
mod endpoint;
pub(crate) mod guest;
pub(crate) mod net;
mod services;

use channel::PENDING_PONG;
pub(crate) use channel::{
    Channel,
    HostPlace, //
};
pub(crate) use console::{
    ConsoleDevice,
    ConsoleLog, //
};
pub(crate) use doorbell::init;
use doorbell::{
    channels,
    Slot, //
};
pub(crate) use endpoint::Endpoint;
pub(crate) use services::{
    Handler,
    PortRegistration,
    Reply,
    CONSOLE_SERVICE,
    DISCARD_SERVICE,
    ECHO_SERVICE,
    NET_INJECT_SERVICE,
    STOP_SERVICE,
    TERMINAL_SERVICE, //
};
use services::{
    Services,
    HOST_BUILTIN,
    INSTANCE_BUILTIN, //
};

#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
#[kunit_tests(multikernel_ikc)]
mod tests {
    use super::{
        console::CONSOLE_BYTES,
        services::MAX_SERVICES,
        *, //
    };

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
