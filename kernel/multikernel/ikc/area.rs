// SPDX-License-Identifier: GPL-2.0

//! The stream area of a channel (`crate::base::stream`), seen from the message device: `mmap`
//! maps it into a process, `MK_IKC_STREAM_WAIT` sleeps until the other side's process moved
//! its index far enough, `MK_IKC_STREAM_KICK` rings the other kernel so its waiter looks again.
//! The bytes themselves never pass through a kernel.

use super::*;
use crate::sys::mapping::Area;
use kernel::mm::virt::VmaNew;

/// `struct mk_ikc_stream_wait`: what, bytes.
const WAIT_BYTES: usize = 8;
/// `MK_IKC_STREAM_WAIT`, `MK_IKC_STREAM_KICK`.
pub(super) const IOCTL_WAIT: u32 = kernel::ioctl::_IOW::<[u8; WAIT_BYTES]>(0xB9, 0x03);
pub(super) const IOCTL_KICK: u32 = kernel::ioctl::_IO(0xB9, 0x04);

impl Waiters {
    /// Whether a process waits in `MK_IKC_STREAM_WAIT`: the doorbell then leaves the channel's
    /// work to wake it (no wakeup in the hard interrupt).
    pub(super) fn stream_sleeping(&self) -> bool {
        self.stream_sleepers.load(Ordering::SeqCst) != 0
    }

    /// The other kernel rang (or the channel changed state): stream waiters look again.
    /// Process context (the channel's work, `close`); cheap when nobody waits.
    pub(super) fn wake_stream(&self) {
        if self.stream_sleeping() {
            // A waiter between its look and its sleep holds the lock: it sleeps first.
            drop(self.stream_lock.lock());
            self.stream.notify_all();
        }
    }
}

impl Channel {
    /// Where this kernel's direction of the stream for `want` has its indices (in `mem`):
    /// data comes toward it, room is wanted away from it.
    fn stream_dir(&self, want: stream::Want) -> usize {
        self.dir_toward(self.side == Side::Host, want)
    }

    /// The same for the other kernel: where a waiter there for `want` says so.
    fn stream_peer_dir(&self, want: stream::Want) -> usize {
        self.dir_toward(self.side == Side::Instance, want)
    }

    fn dir_toward(&self, host: bool, want: stream::Want) -> usize {
        // Data comes toward the waiter; room is wanted away from it.
        let toward_host = host == (want == stream::Want::Data);
        STREAM_OFFSET
            + if toward_host {
                stream::DIR_TO_HOST
            } else {
                stream::DIR_TO_INSTANCE
            }
    }

    /// The stream area, for mappings, on behalf of this channel.
    pub(super) fn stream_area(&self) -> Area {
        Area {
            start: self.phys + STREAM_OFFSET as u64,
            len: stream::BYTES,
            owner: self.area_owner(),
        }
    }

    /// The identity this channel's area has in the endpoint's mappings: its address (unique
    /// while it lives, and only a live channel revokes).
    fn area_owner(&self) -> usize {
        core::ptr::from_ref(self) as usize
    }

    /// The channel left the open state: processes lose its stream area (process context). The
    /// run it belonged to is over; its memory may be written by the next load or start.
    pub(super) fn revoke_area(&self) {
        if self.state() != LinkState::Open {
            self.mapping.revoke(self.area_owner());
        }
    }
}

/// Sets a flag for as long as it lives (`EBUSY` if it was set).
struct Claim<'a>(&'a AtomicBool);

impl<'a> Claim<'a> {
    fn new(flag: &'a AtomicBool) -> Result<Self> {
        if flag.swap(true, Ordering::Acquire) {
            return Err(EBUSY);
        }
        Ok(Self(flag))
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Endpoint {
    /// `mmap` of the message device: the current channel's stream area (see
    /// `PfnMapping::mmap` for what is refused). `ENOTCONN` without a channel.
    pub(super) fn stream_mmap(&self, vma: &VmaNew) -> Result {
        self.channel().ok_or(ENOTCONN)?.usable()?;
        self.mapping.mmap(vma, stream::BYTES).inspect_err(|e| {
            if *e != EINVAL {
                return;
            }
            let _ = self.refuse(
                EINVAL,
                format_args!(
                    "mmap of {} bytes: the stream area is mapped whole, shared, at offset 0, \
                     not executable",
                    vma.end() - vma.start()
                ),
            );
        })
    }

    /// `MK_IKC_STREAM_WAIT` (see the uapi header).
    pub(super) fn stream_wait(&self, at: usize, nonblock: bool) -> Result<isize> {
        let mut raw = [0u8; WAIT_BYTES];
        UserSlice::new(UserPtr::from_addr(at), WAIT_BYTES)
            .reader()
            .read_slice(&mut raw)?;
        let what = u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let bytes = u32::from_ne_bytes([raw[4], raw[5], raw[6], raw[7]]);
        let Some(want) = stream::Want::from_u32(what) else {
            return Err(self.refuse(EINVAL, format_args!("stream wait for {what}")));
        };
        if bytes == 0 || bytes as usize > stream::SIZE {
            return Err(self.refuse(
                EINVAL,
                format_args!("stream wait for {bytes} bytes: 1 to {}", stream::SIZE),
            ));
        }
        let ch = self.channel().ok_or(ENOTCONN)?;
        let _claim = Claim::new(&self.stream_waiting[want as usize - 1])?;
        let dir = ch.stream_dir(want);
        let waiters = &self.waiters;
        waiters.stream_sleepers.fetch_add(1, Ordering::SeqCst);
        let mut guard = waiters.stream_lock.lock();
        let waited = (|| {
            loop {
                ch.usable()?;
                // Say what we wait for, then look: the other side publishes its index, then
                // reads this word (both sequentially consistent), so either it sees the word
                // and kicks, or we see its index. Each look gets a new word, so a side that
                // kicked for the last one knows to kick again.
                let arm = self.stream_arms.fetch_add(1, Ordering::Relaxed);
                ch.mem
                    .store_seqcst(dir + want.word(), stream::want_word(bytes, arm));
                let tail = ch.mem.load_seqcst(dir + stream::TAIL);
                let head = ch.mem.load_seqcst(dir + stream::HEAD);
                match stream::ready(want, tail, head, u64::from(bytes)) {
                    Ok(true) => return Ok(()),
                    Ok(false) if nonblock => return Err(EAGAIN),
                    Ok(false) => {}
                    Err(stream::Impossible) => {
                        return Err(self.refuse(
                            EIO,
                            format_args!("stream indices tail {tail} head {head}: impossible"),
                        ))
                    }
                }
                if waiters.stream.wait_interruptible(&mut guard) {
                    return Err(EINTR);
                }
            }
        })();
        // Still under the lock and only while the channel is open: `close` takes the lock (we
        // count as a sleeper) before the memory can go to another run.
        if ch.usable().is_ok() {
            ch.mem.store_seqcst(dir + want.word(), 0);
        }
        drop(guard);
        waiters.stream_sleepers.fetch_sub(1, Ordering::SeqCst);
        waited.map(|()| 0)
    }

    /// `MK_IKC_STREAM_KICK`: rings the other kernel if a process of it waits on the stream
    /// (its word in a direction says so); nothing otherwise.
    pub(super) fn stream_kick(&self) -> Result<isize> {
        let ch = self.channel().ok_or(ENOTCONN)?;
        // A close may come right after the check: the doorbell then finds nothing, as one
        // from a sender that passed its own check does.
        ch.usable()?;
        let waits =
            |want: stream::Want| ch.mem.load_seqcst(ch.stream_peer_dir(want) + want.word()) != 0;
        if waits(stream::Want::Data) || waits(stream::Want::Room) {
            ch.ring_doorbell();
        }
        Ok(0)
    }
}
