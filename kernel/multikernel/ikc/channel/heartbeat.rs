// SPDX-License-Identifier: GPL-2.0

//! Ping, the heartbeat, the peer's stop word, and fault injection (testing only).

use super::*;

impl Channel {
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
    /// The answer is awaited spinning for up to [`PING_SPIN_US`], polling the receive ring
    /// (the other kernel answers from its interrupt handler and, as this side polls, rings no
    /// doorbell: a cross-CPU function call's caller takes no interrupt either), then sleeping.
    pub(crate) fn ping(self: &Arc<Self>, size: usize) -> Result<i64> {
        let _one = self.ping_lock.lock();
        let token = self.ping_token.fetch_add(1, Ordering::Relaxed) + 1;
        let mut payload = KVec::from_elem(0u8, size.clamp(8, ring::MAX_PAYLOAD), GFP_KERNEL)?;
        payload[..8].copy_from_slice(&token.to_le_bytes());
        let start = Instant::<Monotonic>::now();
        // Polling begins once the ping is in the ring: a send may sleep for room, and nothing
        // polls meanwhile (an answer quicker than `begin_poll` rings the doorbell once).
        self.send(port::PING, &payload, true)?;
        self.begin_poll();
        let mut kicked = false;
        let answered = loop {
            if self.pong.load(Ordering::Acquire) == token {
                break true;
            }
            if start.elapsed().as_micros_ceil() > PING_SPIN_US || self.state() != LinkState::Open {
                break false;
            }
            self.poll_rx(&mut kicked);
            core::hint::spin_loop();
        };
        let ns = start.elapsed().as_nanos();
        // Doorbells again, also before sleeping (the answer may come later).
        self.end_poll();
        if answered {
            Ok(ns)
        } else {
            self.ping_sleep(token, start)
        }
    }

    fn ping_sleep(&self, token: u64, start: Instant<Monotonic>) -> Result<i64> {
        // Counted before the look at the token (`on_pong` stores, then counts).
        self.pong_sleepers.fetch_add(1, Ordering::SeqCst);
        let slept = self.ping_wait(token, start);
        self.pong_sleepers.fetch_sub(1, Ordering::SeqCst);
        slept
    }

    fn ping_wait(&self, token: u64, start: Instant<Monotonic>) -> Result<i64> {
        let mut gen = self.pong_gen.lock();
        while self.pong.load(Ordering::SeqCst) != token {
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
    pub(super) fn peer_stopping(&self) -> bool {
        let at = crate::sys::spawn::STOP_OFFSET;
        // The reason is the low half of the word (little endian); the high half is unused.
        self.mailbox
            .as_ref()
            .is_some_and(|m| m.load_seqcst(at) & 0xffff_ffff != 0)
    }

    /// Stores `value` at `off` of the channel memory unless the channel left `Open`. Under
    /// the producer lock, which `close` takes after marking the channel: nothing is written
    /// once `close` returned (the memory may be given away then).
    fn store_if_open(&self, off: usize, value: u64) -> bool {
        let _tx = self.tx.lock();
        let open = self.state() == LinkState::Open;
        if open {
            self.mem.store_seqcst(off, value);
        }
        open
    }

    /// The heartbeat, every [`HEARTBEAT_MS`] while open: the instance beats, the host looks.
    /// Both also drain what a lost doorbell left behind (one sent to a CPU that went offline).
    pub(super) fn tick(self: &Arc<Self>) -> bool {
        if self.state() != LinkState::Open {
            return false;
        }
        if self.rx_pending() {
            self.kick();
        }
        // The network link too: a doorbell it needed may have been lost (throttled).
        self.kick_net();
        match self.side {
            Side::Instance => {
                let beat = self.beat.fetch_add(1, Ordering::Relaxed) + 1;
                if !self.store_if_open(OFF_HEARTBEAT, beat) {
                    return false;
                }
            }
            Side::Host => {
                // The kernel said it stops: no heartbeat is missed, nothing more will come.
                // The instance's work reads why (`spawn::watch`).
                if self.peer_stopping() {
                    // What it sent last (its panic message, say) is taken in first.
                    self.take_in_last();
                    if self.shut(LinkState::PeerStopped) {
                        pr_info!("{}: its kernel stops\n", self.label());
                    }
                    return false;
                }
                if !self.hint_fresh.swap(false, Ordering::Relaxed)
                    && !self.store_if_open(OFF_HOST_DOORBELL, 0)
                {
                    return false;
                }
                let beat = self.mem.load_seqcst(OFF_HEARTBEAT);
                if beat != self.beat.swap(beat, Ordering::Relaxed) {
                    self.misses.store(0, Ordering::Relaxed);
                    self.beating.store(true, Ordering::Relaxed);
                } else if self.beating.load(Ordering::Relaxed) {
                    let misses = self.misses.fetch_add(1, Ordering::Relaxed) + 1;
                    if misses >= HEARTBEAT_MISSES && self.shut(LinkState::PeerDead) {
                        crate::base::report::warn(format_args!(
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
