// SPDX-License-Identifier: GPL-2.0

//! The network link of an instance: Ethernet frames over two frame rings of their own in the
//! instance's memory, after the message channel (`wire.rs`: 1 MiB each way, frames up to
//! 64 KiB), and a net_device on each side (`net.c`): `mkvID` on the host (ID: the instance id),
//! `mkv0` in the instance. The host's device lives as long as the instance; a link is attached
//! to it while the instance's kernel runs (carrier up), and detached when its channel closes.
//! Doorbells are the channel's: a sender rings only when the receiver asked (it went idle), a
//! receiver only when the sender found the ring full and asked for room.
//!
//! The peer is not trusted: the rings check every index and length (`ring.rs`); a frame the
//! ring calls corrupt breaks the link (counted, said once), never the kernel.

use super::*;
use crate::base::wire::{
    NET_BYTES,
    NET_FRAME_MAX,
    NET_RING_BYTES,
    NET_TO_HOST,
    NET_TO_INSTANCE, //
};
use core::{
    ffi::{
        c_int,
        c_void, //
    },
    ptr::NonNull,
    sync::atomic::AtomicPtr,
};
use kernel::{
    bindings,
    sync::Completion, //
};

/// "MKNETLNK": the host set the area up.
const NET_MAGIC: u64 = u64::from_le_bytes(*b"MKNETLNK");
/// The port frames carry in the ring's message header.
const FRAME_PORT: u16 = 1;

/// The locally administered MAC of a side of instance `id`'s link: `02:6d:6b:SS:II:II`
/// ("mk"; SS: 00 the host's side, 01 the instance's).
pub(crate) fn mac(id: u32, side: Side) -> [u8; 6] {
    let s = match side {
        Side::Host => 0,
        Side::Instance => 1,
    };
    [0x02, 0x6d, 0x6b, s, (id >> 8) as u8, id as u8]
}

/// A net_device of the link (`net.c`), registered until dropped.
pub(crate) struct NetDevice {
    ptr: NonNull<c_void>,
    /// Completed once the device is unregistered (by the drop): its name is free and none of
    /// its operations runs any more; the drop then waits for RCU to free its memory.
    unregistered: Arc<Completion>,
}

// SAFETY: The C device is used through functions that take their own locks (the networking
// core's), from any thread.
unsafe impl Send for NetDevice {}
// SAFETY: See above.
unsafe impl Sync for NetDevice {}

/// Called by `multikernel_net_destroy` once the device is unregistered.
///
/// # Safety
///
/// `data` points to a live [`Completion`].
unsafe extern "C" fn say_unregistered(data: *mut c_void) {
    // SAFETY: `data` is the `NetDevice::unregistered` of the device being dropped, which
    // lives until the drop returns, after this call.
    unsafe { &*data.cast::<Completion>() }.complete_all();
}

impl NetDevice {
    /// Registers an Ethernet device `name` with `mac`, carrier down.
    pub(crate) fn new(name: &CStr, mac: &[u8; 6]) -> Result<Self> {
        let unregistered = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        // SAFETY: Both pointers are valid for the call; the C side copies what it keeps.
        let ptr = unsafe { bindings::multikernel_net_create(name.as_char_ptr(), mac.as_ptr()) };
        let ptr = kernel::error::from_err_ptr(ptr)?;
        let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
        Ok(Self { ptr, unregistered })
    }

    /// What the last reference's drop completes once the device is unregistered (before it
    /// waits for RCU to free the device: `rcu_barrier`, tens of milliseconds under TCG).
    pub(crate) fn unregistered(&self) -> Arc<Completion> {
        self.unregistered.clone()
    }

    /// Attaches `link`: carrier up, frames flow. The link must stay until [`Self::detach`].
    fn attach(&self, link: &NetLink) {
        // SAFETY: The device is registered (type invariant); `link` outlives the attachment
        // (the caller detaches before the link goes).
        unsafe {
            bindings::multikernel_net_attach(
                self.ptr.as_ptr(),
                core::ptr::from_ref(link).cast_mut().cast(),
            )
        };
    }

    /// Detaches the link: carrier down; neither xmit nor the poll uses it after this returns.
    fn detach(&self) {
        // SAFETY: The device is registered; sleeps until readers of the link finished.
        unsafe { bindings::multikernel_net_detach(self.ptr.as_ptr()) };
    }
}

impl Drop for NetDevice {
    fn drop(&mut self) {
        let said: *const Completion = &*self.unregistered;
        // SAFETY: Registered by `new`, unregistered and freed once, here. `say_unregistered`
        // gets a completion that outlives the call (`self.unregistered`).
        unsafe {
            bindings::multikernel_net_destroy(
                self.ptr.as_ptr(),
                Some(say_unregistered),
                said.cast_mut().cast(),
            )
        };
    }
}

/// One run's network link: its frame rings, and the device it is attached to.
#[pin_data(PinnedDrop)]
pub(crate) struct NetLink {
    mem: SharedMem,
    side: Side,
    peer_apic: u32,
    /// The producer: taken by the device's xmit only (bottom halves off).
    #[pin]
    tx: SpinLock<Producer>,
    /// The consumer, and the frame being handed up: taken by the device's poll only (NAPI,
    /// softirq). Not a raw lock: the networking core takes local locks under it.
    #[pin]
    rx: SpinLock<(Consumer, KVVec<u8>)>,
    /// The device while attached (for the doorbell's kick).
    dev: AtomicPtr<c_void>,
    /// The device the link is attached to, until detached: then the link lets go of it, so
    /// `destroy` unregisters it at once (the closed channel that holds the link may live a
    /// little longer).
    #[pin]
    device: SpinLock<Option<Arc<NetDevice>>>,
    /// A ring broke: no frame moves any more.
    broken: AtomicBool,
    pub(crate) errors: AtomicU64,
}

impl NetLink {
    /// Host: the network area at `start` (inside the instance's memory), attached to
    /// `device`; doorbells go to `peer_apic`. Without `at` it is set up afresh (no kernel runs
    /// on that memory yet); with `at`, after a host update, it is the previous kernel's link,
    /// whose rings go on from `at`.
    pub(crate) fn host(
        start: u64,
        peer_apic: u32,
        device: Arc<NetDevice>,
        at: Option<Positions>,
    ) -> Result<Arc<Self>> {
        let mem = SharedMem::map_pool(start, NET_BYTES as u64)?;
        if at.is_some() {
            if mem.load_seqcst(0) != NET_MAGIC {
                return Err(EPROTO);
            }
        } else {
            mem.write(0, &[0u8; 64]);
            for off in [NET_TO_INSTANCE, NET_TO_HOST] {
                ring::init(&mut RingView {
                    mem: &mem,
                    off,
                    bytes: NET_RING_BYTES,
                })
                .map_err(|e| e.errno())?;
            }
            mem.store_seqcst(0, NET_MAGIC);
        }
        Self::new(mem, Side::Host, peer_apic, device, at)
    }

    /// Where the rings are, for a host update (once detached: no frame moves any more).
    pub(crate) fn positions(&self) -> Positions {
        // The locks are taken in softirq context too (xmit, the poll).
        let bh = crate::sys::handover::BhOff::new();
        // Bound first: the lock guards go before bottom halves come back on.
        let at = Positions {
            tx: self.tx.lock().position(),
            rx: self.rx.lock().0.position(),
        };
        drop(bh);
        at
    }

    /// Host: marks the network area at `start` as holding no link (the instance then has no
    /// `mkv0`).
    pub(crate) fn none(start: u64) -> Result {
        let mem = SharedMem::map_pool(start, 4096)?;
        mem.store_seqcst(0, 0);
        Ok(())
    }

    /// Instance: the area the host set up after its channel, attached to the device `device`
    /// makes; `None` if the host gave this instance no link (`net=off`).
    pub(crate) fn instance(
        info: &InstanceInfo,
        device: impl FnOnce() -> Result<Arc<NetDevice>>,
    ) -> Result<Option<Arc<Self>>> {
        let mem =
            SharedMem::map_host_channel(crate::base::wire::NET_OFFSET as u64, NET_BYTES as u64)?;
        match mem.load_seqcst(0) {
            0 => Ok(None),
            NET_MAGIC => Self::new(mem, Side::Instance, info.host_apic, device()?, None).map(Some),
            _ => Err(EPROTO),
        }
    }

    fn new(
        mem: SharedMem,
        side: Side,
        peer_apic: u32,
        device: Arc<NetDevice>,
        at: Option<Positions>,
    ) -> Result<Arc<Self>> {
        let (producer, consumer) = match at {
            None => (
                Producer::with_limit(NET_FRAME_MAX),
                Consumer::with_limit(NET_FRAME_MAX),
            ),
            Some(at) => {
                let (tx_off, rx_off) = match side {
                    Side::Host => (NET_TO_INSTANCE, NET_TO_HOST),
                    Side::Instance => (NET_TO_HOST, NET_TO_INSTANCE),
                };
                let ring = |off| RingView {
                    mem: &mem,
                    off,
                    bytes: NET_RING_BYTES,
                };
                (
                    Producer::resume(NET_FRAME_MAX, at.tx, &ring(tx_off)).ok_or(EPROTO)?,
                    Consumer::resume(NET_FRAME_MAX, at.rx, &ring(rx_off)).ok_or(EPROTO)?,
                )
            }
        };
        let buf = KVVec::from_elem(0u8, NET_FRAME_MAX, GFP_KERNEL)?;
        let raw = device.ptr.as_ptr();
        let attached = device.clone();
        let link = Arc::pin_init(
            pin_init!(Self {
                mem,
                side,
                peer_apic,
                tx <- new_spinlock!(producer, "multikernel::NetLink::tx"),
                rx <- new_spinlock!(
                    (consumer, buf),
                    "multikernel::NetLink::rx"
                ),
                dev: AtomicPtr::new(core::ptr::null_mut()),
                device <- new_spinlock!(Some(device), "multikernel::NetLink::device"),
                broken: AtomicBool::new(false),
                errors: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )?;
        // Known before the attachment's first poll, which may break the link already.
        link.dev.store(raw, Ordering::Release);
        attached.attach(&link);
        Ok(link)
    }

    /// The ring this side sends on, and the one it receives on.
    fn offsets(&self) -> (usize, usize) {
        match self.side {
            Side::Host => (NET_TO_INSTANCE, NET_TO_HOST),
            Side::Instance => (NET_TO_HOST, NET_TO_INSTANCE),
        }
    }

    fn ring(&self, off: usize) -> RingView<'_> {
        RingView {
            mem: &self.mem,
            off,
            bytes: NET_RING_BYTES,
        }
    }

    /// The peer stopped (its channel closed): carrier down, nothing more moves, and the link
    /// lets go of the device. Process context.
    pub(crate) fn detach(&self) {
        if !self
            .dev
            .swap(core::ptr::null_mut(), Ordering::AcqRel)
            .is_null()
        {
            let device = self.device.lock().take();
            if let Some(device) = device {
                device.detach();
            }
        }
    }

    /// A doorbell came (any context): frames may wait, or room may have appeared. Every
    /// doorbell of the channel comes here (messages too), and the heartbeat every 100 ms: the
    /// poll is scheduled only if the receive ring holds something (its head is not our tail;
    /// a head the peer broke counts, so the poll finds it).
    pub(crate) fn kick(&self) {
        // The heartbeat's work calls this preemptibly: the device read here must stay until
        // the call returns, which `detach` waits for (`synchronize_net`) once it cleared it.
        let _rcu = kernel::sync::rcu::read_lock();
        let dev = self.dev.load(Ordering::Acquire);
        if !dev.is_null() && !self.broken.load(Ordering::Relaxed) {
            let (_, rx_off) = self.offsets();
            let rx = self.ring(rx_off);
            let frames = ring::unread(&rx);
            // SAFETY: `dev` was attached when read, inside this RCU read section: `detach`
            // clears it and waits for such sections before the device can go. Scheduling
            // NAPI and waking the queue are allowed in any context.
            unsafe { bindings::multikernel_net_kick(dev, frames) };
        }
    }

    /// Fault injection (`CONFIG_MULTIKERNEL_IKC_FAULT_INJECT`, testing only): sends the other
    /// kernel frames it must drop and count (`net.c`).
    pub(crate) fn inject(&self) -> Result {
        let device = self.device.lock().clone().ok_or(ENOTCONN)?;
        // SAFETY: The device is registered while `device` holds it (type invariant).
        kernel::error::to_result(unsafe { bindings::multikernel_net_inject(device.ptr.as_ptr()) })
    }

    /// Fault injection (testing only): publishes, in the ring this side receives on, a head
    /// index far outside it, as a broken peer would; the next poll must break the link.
    pub(crate) fn inject_ring(&self) -> Result {
        let (_, rx_off) = self.offsets();
        self.mem.store_seqcst(rx_off + ring::OFF_HEAD, u64::MAX / 3);
        self.kick();
        Ok(())
    }

    /// The peer broke the ring protocol: nothing moves any more, and the device's carrier
    /// goes down. Called from the device's xmit and poll only (bottom halves off or softirq,
    /// inside the C side's RCU read section), so said with a plain `pr_warn!` (the driver's
    /// rate-limited log takes a lock that process context holds with bottom halves on), once
    /// per link.
    fn break_link(&self, why: &'static str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if !self.broken.swap(true, Ordering::AcqRel) {
            pr_warn!("network link broken: {why}\n");
            let dev = self.dev.load(Ordering::Acquire);
            if !dev.is_null() {
                // SAFETY: The callers run inside the C side's RCU read section on an attached
                // link, and `detach` waits for those (`synchronize_net`) before the device can
                // go; taking the carrier down is allowed in any context.
                unsafe { bindings::multikernel_net_broken(dev) };
            }
        }
    }

    /// Sends one frame of `len` bytes made of `parts`.
    fn xmit<'a>(&self, len: usize, parts: impl Iterator<Item = &'a [u8]>) -> Result<(), Error> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(ENOTCONN);
        }
        let (tx_off, _) = self.offsets();
        let sent = self
            .tx
            .lock()
            .send_gather(&mut self.ring(tx_off), FRAME_PORT, len, parts);
        match sent {
            Ok(ring_it) => {
                if ring_it {
                    crate::sys::doorbell::ring(self.peer_apic);
                }
                Ok(())
            }
            Err(RingError::Full) => Err(EAGAIN),
            Err(RingError::Corrupt(why)) => {
                self.break_link(why);
                Err(EPROTO)
            }
            Err(e) => Err(e.errno()),
        }
    }

    fn want_room(&self) -> bool {
        let (tx_off, _) = self.offsets();
        self.tx
            .lock()
            .want_space(&mut self.ring(tx_off), NET_FRAME_MAX)
            .unwrap_or(false)
    }

    /// Hands up to `budget` frames to the device `ctx` (NAPI, softirq).
    fn poll(&self, ctx: *mut c_void, budget: i32) -> i32 {
        // Nothing once broken: the bad message stays where it is.
        if self.broken.load(Ordering::Relaxed) {
            return 0;
        }
        let (_, rx_off) = self.offsets();
        let mut done = 0;
        let mut freed = false;
        let mut rx = self.rx.lock();
        let (consumer, buf) = &mut *rx;
        while done < budget && !self.broken.load(Ordering::Relaxed) {
            let mut ring = self.ring(rx_off);
            match consumer.peek(&ring, buf) {
                Ok(msg) => {
                    if msg.port == FRAME_PORT {
                        // SAFETY: `ctx` is the attached device (the C poll passes it);
                        // `buf` holds `msg.len` bytes for the call.
                        unsafe { bindings::multikernel_net_rx(ctx, buf.as_ptr(), msg.len as u32) };
                    } else {
                        self.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    consumer.advance(&mut ring, &msg);
                    freed = true;
                    done += 1;
                }
                Err(RingError::Empty) => break,
                Err(RingError::Corrupt(why)) => self.break_link(why),
                Err(_) => self.break_link("frame longer than the link allows"),
            }
        }
        if freed && consumer.space_wanted(&mut self.ring(rx_off)) {
            crate::sys::doorbell::ring(self.peer_apic);
        }
        done
    }

    /// Asks for a doorbell on the next frame; whether one came meanwhile. Never once broken:
    /// the bad message stays in the ring, and the poll must not come back for it.
    fn rearm(&self) -> bool {
        if self.broken.load(Ordering::Relaxed) {
            return false;
        }
        let (_, rx_off) = self.offsets();
        let rx = self.rx.lock();
        rx.0.want_doorbell(&mut self.ring(rx_off))
    }
}

#[pinned_drop]
impl PinnedDrop for NetLink {
    fn drop(self: Pin<&mut Self>) {
        self.detach();
    }
}

/// Called by the device's xmit (`net.c`, under RCU while attached): one frame of `len` bytes
/// in `count` parts.
///
/// # Safety
///
/// `link` is an attached link; `parts` points to `count` parts, each readable for its
/// length, for the call.
#[no_mangle]
unsafe extern "C" fn multikernel_net_xmit(
    link: *mut c_void,
    parts: *const bindings::multikernel_net_part,
    count: u32,
    len: u32,
) -> c_int {
    // SAFETY: The caller passes an attached link, which lives until detached (# Safety).
    let link = unsafe { &*link.cast::<NetLink>() };
    // SAFETY: `parts` points to `count` parts (# Safety).
    let parts = unsafe { core::slice::from_raw_parts(parts, count as usize) };
    let frame = parts.iter().map(|p| {
        // SAFETY: Each part is readable for its length during the call (# Safety), and not
        // null (the skb's head and readable frags, `net.c`). The bytes are only copied into
        // the ring, never decided on (pages sent with zerocopy may change meanwhile, as under
        // any driver's copy).
        unsafe { core::slice::from_raw_parts(p.data.cast::<u8>(), p.len as usize) }
    });
    match link.xmit(len as usize, frame) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// `link` is an attached link.
#[no_mangle]
unsafe extern "C" fn multikernel_net_want_room(link: *mut c_void) -> bool {
    // SAFETY: An attached link (# Safety).
    unsafe { &*link.cast::<NetLink>() }.want_room()
}

/// # Safety
///
/// `link` is an attached link; `dev` its device.
#[no_mangle]
unsafe extern "C" fn multikernel_net_poll(
    link: *mut c_void,
    dev: *mut c_void,
    budget: c_int,
) -> c_int {
    // SAFETY: An attached link (# Safety).
    unsafe { &*link.cast::<NetLink>() }.poll(dev, budget)
}

/// # Safety
///
/// `link` is an attached link.
#[no_mangle]
unsafe extern "C" fn multikernel_net_rearm(link: *mut c_void) -> bool {
    // SAFETY: An attached link (# Safety).
    unsafe { &*link.cast::<NetLink>() }.rearm()
}
