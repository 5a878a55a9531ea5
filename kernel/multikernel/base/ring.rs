// SPDX-License-Identifier: GPL-2.0

//! The message ring of the inter-kernel channel (IKC): one direction, one producer kernel, one
//! consumer kernel, in shared memory. This is the index and framing logic only; the shared
//! memory, doorbell and device come with the rest of IKC.
//!
//! ```text
//! header (64 bytes)              data (size bytes, a power of two)
//! +--------+--------+-----+----+----------------------------------------+
//! | magic  | size   | head| tail| ... [msg hdr 16 B][payload, 8-aligned] ... |
//! +--------+--------+-----+----+----------------------------------------+
//! ```
//!
//! `head` (written only by the producer) and `tail` (written only by the consumer) count bytes
//! since the ring was set up; positions are taken modulo `size`, and a message may wrap. Each
//! message has a header: port (u16), reserved (u16), length (u32), sequence number (u64).
//!
//! Two flags make doorbells rare: `waiting` (set by an idle consumer: ring me on the next
//! message) and `space` (set by a producer that found the ring full: ring me when you free
//! room). Each side clears the other's flag when it rings, so a burst costs one doorbell.
//!
//! The peer is not trusted: every index, length and sequence number read from shared memory is
//! checked before use, and a header is copied out before it is checked, so a torn or malicious
//! update makes [`RingError::Corrupt`], never an out-of-bounds access or a hang. A full ring is
//! [`RingError::Full`]: nothing is ever overwritten.

use kernel::prelude::*;

/// Largest payload of one message on the IKC channel's rings (a ring may be given another
/// limit: [`Producer::with_limit`], [`Consumer::with_limit`]).
pub(crate) const MAX_PAYLOAD: usize = 4096;
/// Size of a message header in the ring.
pub(crate) const MSG_HEADER: usize = 16;
/// Offsets in the ring header.
pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_SIZE: usize = 8;
pub(crate) const OFF_HEAD: usize = 16;
pub(crate) const OFF_TAIL: usize = 24;
pub(crate) const OFF_WAITING: usize = 32;
pub(crate) const OFF_SPACE: usize = 40;
/// Where the data area starts.
pub(crate) const HEADER_LEN: usize = 64;
/// "MKIKCRNG".
pub(crate) const MAGIC: u64 = 0x474e_5243_4b49_4b4d;

/// The shared memory a ring lives in, as this kernel can access it.
///
/// Implementations decide how (plain memory in tests, a mapping of the instance's memory with
/// the right barriers for real); the ring only asks for these operations.
pub(crate) trait RingMemory {
    /// Size in bytes.
    fn bytes(&self) -> usize;
    /// Copies bytes out; `off + out.len() <= bytes()` is the caller's promise. What the ring
    /// checks (message headers) is read with this: the copy must be what is checked.
    fn read(&self, off: usize, out: &mut [u8]);
    /// Copies payload bytes out, which the ring never bases a decision on: may be a faster,
    /// plain copy.
    fn read_payload(&self, off: usize, out: &mut [u8]) {
        self.read(off, out)
    }
    /// Copies bytes in; `off + bytes.len() <= bytes()` is the caller's promise.
    fn write(&mut self, off: usize, bytes: &[u8]);
    /// Copies payload bytes in, which the peer reads only once a later index store publishes
    /// them: may be a faster, plain copy.
    fn write_payload(&mut self, off: usize, bytes: &[u8]) {
        self.write(off, bytes)
    }
    /// Reads an index the peer publishes (sequentially consistent).
    fn load_seqcst(&self, off: usize) -> u64;
    /// Publishes an index to the peer: ordered after every earlier access and before every
    /// later load (a full barrier: the doorbell flags are a store followed by a load on each
    /// side, which release/acquire alone does not order).
    fn store_seqcst(&mut self, off: usize, value: u64);
}

/// Why a ring operation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RingError {
    /// No room for the message now: try later (backpressure).
    Full,
    /// No message to read.
    Empty,
    /// The payload is larger than the ring's limit ([`MAX_PAYLOAD`] unless given another), or
    /// the output buffer is too small.
    TooBig,
    /// Shared state that no correct peer writes: the channel must be marked broken.
    Corrupt(&'static str),
}

impl RingError {
    pub(crate) fn errno(self) -> Error {
        match self {
            Self::Full => EAGAIN,
            Self::Empty => EAGAIN,
            Self::TooBig => EMSGSIZE,
            Self::Corrupt(_) => EPROTO,
        }
    }
}

/// One received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Received {
    pub(crate) port: u16,
    pub(crate) len: usize,
    pub(crate) seq: u64,
}

fn padded(len: usize) -> usize {
    (MSG_HEADER + len + 7) & !7
}

/// The size of the data area of a ring in `bytes` of memory: the largest power of two that
/// fits after the header. `None` if not even one message header and a word fit.
fn size_for(bytes: usize) -> Option<usize> {
    let room = bytes.checked_sub(HEADER_LEN)?;
    (room >= MSG_HEADER + 8).then(|| 1usize << (usize::BITS - 1 - room.leading_zeros()))
}

/// Initialises a ring in `mem`: the data area is the largest power of two that fits.
pub(crate) fn init(mem: &mut impl RingMemory) -> Result<usize, RingError> {
    let size = size_for(mem.bytes()).ok_or(RingError::TooBig)?;
    mem.write(OFF_MAGIC, &MAGIC.to_le_bytes());
    mem.write(OFF_SIZE, &(size as u64).to_le_bytes());
    mem.store_seqcst(OFF_HEAD, 0);
    mem.store_seqcst(OFF_TAIL, 0);
    mem.store_seqcst(OFF_WAITING, 0);
    mem.store_seqcst(OFF_SPACE, 0);
    Ok(size)
}

/// Whether the ring holds something its consumer has not taken (or a head its producer
/// broke, which the next read then finds): its published head is not its tail. Two loads,
/// for a doorbell to decide whether a drain is worth scheduling.
pub(crate) fn unread(mem: &impl RingMemory) -> bool {
    mem.load_seqcst(OFF_HEAD) != mem.load_seqcst(OFF_TAIL)
}

/// Reads and checks the ring's fixed header: its magic, and the size [`init`] wrote for this
/// memory. Any other size is corruption, even one that would fit: the peer may rewrite the
/// word between two reads, and every caller must work with the one size the ring has (a
/// producer that found a small ring full and then room in a large one would retry forever).
fn geometry(mem: &impl RingMemory) -> Result<usize, RingError> {
    let mut word = [0u8; 8];
    mem.read(OFF_MAGIC, &mut word);
    if u64::from_le_bytes(word) != MAGIC {
        return Err(RingError::Corrupt("bad magic"));
    }
    mem.read(OFF_SIZE, &mut word);
    size_for(mem.bytes())
        .filter(|&size| u64::from_le_bytes(word) == size as u64)
        .ok_or(RingError::Corrupt("bad size"))
}

/// Copies `bytes` into the data area at ring position `pos`, wrapping; `payload` says which
/// write.
fn put(mem: &mut impl RingMemory, size: usize, pos: u64, bytes: &[u8], payload: bool) {
    let at = (pos % size as u64) as usize;
    let first = bytes.len().min(size - at);
    if payload {
        mem.write_payload(HEADER_LEN + at, &bytes[..first]);
        mem.write_payload(HEADER_LEN, &bytes[first..]);
    } else {
        mem.write(HEADER_LEN + at, &bytes[..first]);
        mem.write(HEADER_LEN, &bytes[first..]);
    }
}

/// Copies out of the data area at ring position `pos`, wrapping; `payload` says which read.
fn get(mem: &impl RingMemory, size: usize, pos: u64, out: &mut [u8], payload: bool) {
    let at = (pos % size as u64) as usize;
    let first = out.len().min(size - at);
    let (head, tail) = out.split_at_mut(first);
    if payload {
        mem.read_payload(HEADER_LEN + at, head);
        mem.read_payload(HEADER_LEN, tail);
    } else {
        mem.read(HEADER_LEN + at, head);
        mem.read(HEADER_LEN, tail);
    }
}

/// The sending side of a ring. Keeps its own copy of `head` (the peer never writes it).
pub(crate) struct Producer {
    head: u64,
    seq: u64,
    /// The consumer's `tail` as last seen: it never moves backwards.
    tail_seen: u64,
    /// The largest payload it sends.
    limit: usize,
}

impl Producer {
    /// A producer of messages of up to [`MAX_PAYLOAD`] bytes.
    pub(crate) fn new() -> Self {
        Self::with_limit(MAX_PAYLOAD)
    }

    /// A producer of messages of up to `limit` bytes (both ends must agree on it).
    pub(crate) fn with_limit(limit: usize) -> Self {
        Self {
            head: 0,
            seq: 0,
            tail_seen: 0,
            limit,
        }
    }

    /// Where this producer is: `(head, seq, tail_seen)`, for a host update to carry
    /// (`handover.rs`). [`Producer::resume`] continues from it.
    pub(crate) fn position(&self) -> [u64; 3] {
        [self.head, self.seq, self.tail_seen]
    }

    /// A producer of messages of up to `limit` bytes that continues a stream at `position`
    /// (what [`Producer::position`] returned in the kernel before) on the ring in `mem`. The
    /// ring itself is left as it is: the peer kept using it meanwhile. `None` if the position
    /// is not this ring's: the head it published is not `head` (only the producer writes it),
    /// or the tail it saw is ahead of its head or a ring's size behind it.
    pub(crate) fn resume(
        limit: usize,
        [head, seq, tail_seen]: [u64; 3],
        mem: &impl RingMemory,
    ) -> Option<Self> {
        let size = geometry(mem).ok()? as u64;
        let mine = mem.load_seqcst(OFF_HEAD) == head
            && head.checked_sub(tail_seen).is_some_and(|used| used <= size);
        mine.then_some(Self {
            head,
            seq,
            tail_seen,
            limit,
        })
    }

    /// Sends one message. Returns whether the consumer asked for a doorbell (it is waiting);
    /// the flag is cleared, so one doorbell covers a burst.
    pub(crate) fn send(
        &mut self,
        mem: &mut impl RingMemory,
        port: u16,
        payload: &[u8],
    ) -> Result<bool, RingError> {
        self.send_gather(mem, port, payload.len(), core::iter::once(payload))
    }

    /// Sends one message of `len` bytes made of `parts`, one after the other (a frame in
    /// pieces, as a socket buffer holds it). Parts that do not add up to `len` are
    /// [`RingError::TooBig`], and nothing is sent.
    pub(crate) fn send_gather<'a>(
        &mut self,
        mem: &mut impl RingMemory,
        port: u16,
        len: usize,
        parts: impl Iterator<Item = &'a [u8]>,
    ) -> Result<bool, RingError> {
        if len > self.limit {
            return Err(RingError::TooBig);
        }
        let size = geometry(mem)?;
        let need = padded(len);
        if need > self.room(mem)? {
            return Err(RingError::Full);
        }
        // The payload first: until `head` moves, the consumer sees none of it.
        let mut at = 0usize;
        for part in parts {
            if part.len() > len - at {
                return Err(RingError::TooBig);
            }
            put(mem, size, self.head + (MSG_HEADER + at) as u64, part, true);
            at += part.len();
        }
        if at != len {
            return Err(RingError::TooBig);
        }
        let mut header = [0u8; MSG_HEADER];
        header[0..2].copy_from_slice(&port.to_le_bytes());
        header[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        header[8..16].copy_from_slice(&self.seq.to_le_bytes());
        put(mem, size, self.head, &header, false);
        self.head += need as u64;
        self.seq += 1;
        mem.store_seqcst(OFF_HEAD, self.head);
        let waiting = mem.load_seqcst(OFF_WAITING) != 0;
        if waiting {
            mem.store_seqcst(OFF_WAITING, 0);
        }
        Ok(waiting)
    }

    /// Free bytes in the ring as the producer sees it now.
    pub(crate) fn room(&mut self, mem: &impl RingMemory) -> Result<usize, RingError> {
        let size = geometry(mem)?;
        let tail = mem.load_seqcst(OFF_TAIL);
        if tail < self.tail_seen {
            return Err(RingError::Corrupt("tail moved backwards"));
        }
        self.tail_seen = tail;
        let used = self
            .head
            .checked_sub(tail)
            .filter(|&u| u <= size as u64)
            .ok_or(RingError::Corrupt("tail outside the ring"))?;
        Ok(size - used as usize)
    }

    /// Whether a message of `len` payload bytes fits now.
    pub(crate) fn fits(&mut self, mem: &impl RingMemory, len: usize) -> Result<bool, RingError> {
        Ok(self.room(mem)? >= padded(len.min(self.limit)))
    }

    /// Asks the consumer for a doorbell when it frees room (before sleeping on a full ring).
    /// Returns whether `len` bytes fit meanwhile, in which case the caller should not sleep.
    pub(crate) fn want_space(
        &mut self,
        mem: &mut impl RingMemory,
        len: usize,
    ) -> Result<bool, RingError> {
        mem.store_seqcst(OFF_SPACE, 1);
        self.fits(mem, len)
    }
}

/// The receiving side of a ring. Keeps its own copy of `tail` (the peer never writes it).
pub(crate) struct Consumer {
    tail: u64,
    seq: u64,
    /// The largest payload it accepts: a longer one is corruption.
    limit: usize,
}

impl Consumer {
    /// A consumer of messages of up to [`MAX_PAYLOAD`] bytes.
    pub(crate) fn new() -> Self {
        Self::with_limit(MAX_PAYLOAD)
    }

    /// A consumer of messages of up to `limit` bytes (both ends must agree on it).
    pub(crate) fn with_limit(limit: usize) -> Self {
        Self {
            tail: 0,
            seq: 0,
            limit,
        }
    }

    /// Where this consumer is: `(tail, seq)`, for a host update to carry (`handover.rs`).
    pub(crate) fn position(&self) -> [u64; 2] {
        [self.tail, self.seq]
    }

    /// A consumer of messages of up to `limit` bytes that continues a stream at `position`
    /// (what [`Consumer::position`] returned in the kernel before) on the ring in `mem`:
    /// messages the peer sent meanwhile come out next, in order. `None` if the tail the ring
    /// holds is not `tail` (only the consumer writes it): the position is not this ring's.
    pub(crate) fn resume(
        limit: usize,
        [tail, seq]: [u64; 2],
        mem: &impl RingMemory,
    ) -> Option<Self> {
        (mem.load_seqcst(OFF_TAIL) == tail).then_some(Self { tail, seq, limit })
    }

    /// Receives one message into `out`; for the tests (the channel peeks, handles, then
    /// advances).
    #[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
    pub(crate) fn recv(
        &mut self,
        mem: &mut impl RingMemory,
        out: &mut [u8],
    ) -> Result<Received, RingError> {
        let msg = self.peek(mem, out)?;
        self.advance(mem, &msg);
        Ok(msg)
    }

    /// Copies the next message into `out` and checks it, without consuming it: until
    /// [`Consumer::advance`], the same message comes out again.
    pub(crate) fn peek(
        &self,
        mem: &impl RingMemory,
        out: &mut [u8],
    ) -> Result<Received, RingError> {
        let msg = self.peek_header(mem)?;
        self.payload(mem, &msg, out)?;
        Ok(msg)
    }

    /// Reads and checks the next message's header, without its payload and without consuming
    /// it: [`Consumer::payload`] copies the payload out, [`Consumer::advance`] consumes it.
    pub(crate) fn peek_header(&self, mem: &impl RingMemory) -> Result<Received, RingError> {
        let size = geometry(mem)?;
        let head = mem.load_seqcst(OFF_HEAD);
        let avail = head
            .checked_sub(self.tail)
            .filter(|&a| a <= size as u64)
            .ok_or(RingError::Corrupt("head outside the ring"))?;
        if avail == 0 {
            return Err(RingError::Empty);
        }
        if avail < MSG_HEADER as u64 {
            return Err(RingError::Corrupt("partial message header"));
        }
        // Copy the header out before checking it: the peer may be changing it.
        let mut header = [0u8; MSG_HEADER];
        get(mem, size, self.tail, &mut header, false);
        let port = u16::from_le_bytes([header[0], header[1]]);
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&header[8..16]);
        let seq = u64::from_le_bytes(seq);
        if len > self.limit {
            return Err(RingError::Corrupt("message length above the maximum"));
        }
        if padded(len) as u64 > avail {
            return Err(RingError::Corrupt("message longer than what was published"));
        }
        if seq != self.seq {
            return Err(RingError::Corrupt("sequence number out of order"));
        }
        Ok(Received { port, len, seq })
    }

    /// Copies the payload of `msg`, the header [`Consumer::peek_header`] just returned (the
    /// message is not consumed meanwhile), into `out`: [`RingError::TooBig`] if it is shorter.
    /// Only checked lengths are used, whatever the peer wrote since.
    pub(crate) fn payload(
        &self,
        mem: &impl RingMemory,
        msg: &Received,
        out: &mut [u8],
    ) -> Result<(), RingError> {
        let size = geometry(mem)?;
        if out.len() < msg.len {
            return Err(RingError::TooBig);
        }
        get(
            mem,
            size,
            self.tail + MSG_HEADER as u64,
            &mut out[..msg.len],
            true,
        );
        Ok(())
    }

    /// Consumes `msg`, which [`Consumer::peek`] just returned: its room goes back to the
    /// producer.
    pub(crate) fn advance(&mut self, mem: &mut impl RingMemory, msg: &Received) {
        self.tail += padded(msg.len) as u64;
        self.seq += 1;
        mem.store_seqcst(OFF_TAIL, self.tail);
    }

    /// Asks the producer for a doorbell on its next send (before sleeping). Returns whether a
    /// message arrived meanwhile, in which case the caller should not sleep.
    pub(crate) fn want_doorbell(&self, mem: &mut impl RingMemory) -> bool {
        mem.store_seqcst(OFF_WAITING, 1);
        mem.load_seqcst(OFF_HEAD) != self.tail
    }

    /// Withdraws a [`Consumer::want_doorbell`]: the producer sends without ringing until it is
    /// asked again (a consumer that polls the ring for a while).
    pub(crate) fn no_doorbell(&self, mem: &mut impl RingMemory) {
        mem.store_seqcst(OFF_WAITING, 0);
    }

    /// As [`Consumer::space_wanted`], but only once at least half the ring is free: a producer
    /// that waits for room is woken for a good part of the ring, not for every message taken
    /// (when the ring runs empty the caller asks [`Consumer::space_wanted`] itself).
    pub(crate) fn space_wanted_half(&self, mem: &mut impl RingMemory) -> bool {
        let Ok(size) = geometry(mem) else {
            return self.space_wanted(mem);
        };
        let used = mem.load_seqcst(OFF_HEAD).wrapping_sub(self.tail);
        used <= (size / 2) as u64 && self.space_wanted(mem)
    }

    /// Whether the producer asked for a doorbell when room is freed (it found the ring full);
    /// the request is cleared, so the caller rings once.
    pub(crate) fn space_wanted(&self, mem: &mut impl RingMemory) -> bool {
        let wanted = mem.load_seqcst(OFF_SPACE) != 0;
        if wanted {
            mem.store_seqcst(OFF_SPACE, 0);
        }
        wanted
    }
}

#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
#[kunit_tests(multikernel_ring)]
mod tests {
    use super::*;

    /// Plain memory, as the rings' logic sees shared memory.
    struct Mem(KVec<u8>);

    impl RingMemory for Mem {
        fn bytes(&self) -> usize {
            self.0.len()
        }
        fn read(&self, off: usize, out: &mut [u8]) {
            out.copy_from_slice(&self.0[off..off + out.len()]);
        }
        fn write(&mut self, off: usize, bytes: &[u8]) {
            self.0[off..off + bytes.len()].copy_from_slice(bytes);
        }
        fn load_seqcst(&self, off: usize) -> u64 {
            let mut w = [0u8; 8];
            w.copy_from_slice(&self.0[off..off + 8]);
            u64::from_le_bytes(w)
        }
        fn store_seqcst(&mut self, off: usize, value: u64) {
            self.0[off..off + 8].copy_from_slice(&value.to_le_bytes());
        }
    }

    fn ring(data: usize) -> Result<Mem> {
        let mut mem = Mem(KVec::from_elem(0u8, HEADER_LEN + data, GFP_KERNEL)?);
        init(&mut mem).map_err(|_| EINVAL)?;
        Ok(mem)
    }

    fn pattern(seed: u32, len: usize, out: &mut [u8]) {
        for (i, b) in out[..len].iter_mut().enumerate() {
            *b = (seed as usize).wrapping_mul(31).wrapping_add(i) as u8;
        }
    }

    #[test]
    fn send_recv_in_order() -> Result {
        let mut mem = ring(256)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        let mut out = [0u8; 64];
        assert_eq!(rx.recv(&mut mem, &mut out), Err(RingError::Empty));
        assert_eq!(tx.send(&mut mem, 7, b"hello"), Ok(false));
        assert_eq!(tx.send(&mut mem, 8, b""), Ok(false));
        assert_eq!(
            rx.recv(&mut mem, &mut out),
            Ok(Received {
                port: 7,
                len: 5,
                seq: 0
            })
        );
        assert_eq!(&out[..5], b"hello");
        assert_eq!(
            rx.recv(&mut mem, &mut out),
            Ok(Received {
                port: 8,
                len: 0,
                seq: 1
            })
        );
        assert_eq!(rx.recv(&mut mem, &mut out), Err(RingError::Empty));
        Ok(())
    }

    /// A host update: both ends' positions are carried to new producer and consumer objects
    /// (the new host's); messages sent before, during (by the peer, which keeps running) and
    /// after come out once each, in order, across a wrap.
    #[test]
    fn resume_after_handover() -> Result {
        let mut mem = ring(256)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        let mut out = [0u8; 64];
        for i in 0..5u16 {
            tx.send(&mut mem, i, &[i as u8; 40])
                .map_err(|e| e.errno())?;
            rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
        }
        tx.send(&mut mem, 5, b"before").map_err(|e| e.errno())?;
        // The old kernel goes; only its positions travel (the new objects shadow the old).
        let (tx_at, rx_at) = (tx.position(), rx.position());
        let mut tx = Producer::resume(MAX_PAYLOAD, tx_at, &mem).ok_or(EINVAL)?;
        let mut rx = Consumer::resume(MAX_PAYLOAD, rx_at, &mem).ok_or(EINVAL)?;
        tx.send(&mut mem, 6, b"after").map_err(|e| e.errno())?;
        let got = rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
        assert_eq!((got.port, got.seq, &out[..6]), (5, 5, &b"before"[..]));
        let got = rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
        assert_eq!((got.port, got.seq, &out[..5]), (6, 6, &b"after"[..]));
        assert_eq!(rx.recv(&mut mem, &mut out), Err(RingError::Empty));
        // A position no producer had is refused.
        assert!(Producer::resume(MAX_PAYLOAD, [8, 0, 16], &mem).is_none());
        Ok(())
    }

    /// Messages of every size wrap around the end many times and come out intact.
    #[test]
    fn wraparound() -> Result {
        let mut mem = ring(1024)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        let mut msg = KVec::from_elem(0u8, 300, GFP_KERNEL)?;
        let mut out = KVec::from_elem(0u8, 300, GFP_KERNEL)?;
        for i in 0..500u32 {
            let len = (i as usize * 37) % 300;
            pattern(i, len, &mut msg);
            tx.send(&mut mem, i as u16, &msg[..len])
                .map_err(|e| e.errno())?;
            let got = rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
            assert_eq!(
                got,
                Received {
                    port: i as u16,
                    len,
                    seq: u64::from(i)
                }
            );
            assert_eq!(&out[..len], &msg[..len]);
        }
        Ok(())
    }

    /// A message sent in pieces comes out whole, also across the end of the ring; pieces that
    /// do not add up to the length send nothing.
    #[test]
    fn gather() -> Result {
        let mut mem = ring(256)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        let mut msg = [0u8; 90];
        let mut out = [0u8; 90];
        for i in 0..20u32 {
            pattern(i, msg.len(), &mut msg);
            let (a, rest) = msg.split_at(12);
            let (b, c) = rest.split_at(i as usize);
            let parts = [a, b, &[][..], c];
            assert_eq!(
                tx.send_gather(&mut mem, 3, msg.len(), parts.iter().copied()),
                Ok(false)
            );
            let got = rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
            assert_eq!((got.port, got.len), (3, msg.len()));
            assert_eq!(out, msg);
        }
        let short = [&msg[..10], &msg[10..20]];
        assert_eq!(
            tx.send_gather(&mut mem, 3, 21, short.iter().copied()),
            Err(RingError::TooBig)
        );
        assert_eq!(
            tx.send_gather(&mut mem, 3, 19, short.iter().copied()),
            Err(RingError::TooBig)
        );
        assert_eq!(rx.recv(&mut mem, &mut out), Err(RingError::Empty));
        Ok(())
    }

    /// A full ring refuses (backpressure) and loses nothing; draining makes room again.
    #[test]
    fn full_is_backpressure() -> Result {
        let mut mem = ring(256)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        let mut sent = 0u32;
        while tx.send(&mut mem, 1, &sent.to_le_bytes()).is_ok() {
            sent += 1;
        }
        // 256 bytes, 24 bytes a message (16 + 4, padded): 10 fit.
        assert_eq!(sent, 10);
        assert_eq!(tx.send(&mut mem, 1, b"x"), Err(RingError::Full));
        assert_eq!(RingError::Full.errno(), EAGAIN);
        let mut out = [0u8; 8];
        rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
        assert_eq!(&out[..4], &0u32.to_le_bytes());
        tx.send(&mut mem, 1, &sent.to_le_bytes())
            .map_err(|e| e.errno())?;
        for expect in 1..=sent {
            let got = rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
            assert_eq!(got.len, 4);
            assert_eq!(&out[..4], &expect.to_le_bytes());
        }
        assert_eq!(rx.recv(&mut mem, &mut out), Err(RingError::Empty));
        Ok(())
    }

    #[test]
    fn sizes() -> Result {
        let mut mem = ring(16384)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        let big = KVec::from_elem(1u8, MAX_PAYLOAD + 1, GFP_KERNEL)?;
        assert_eq!(tx.send(&mut mem, 1, &big), Err(RingError::TooBig));
        assert_eq!(RingError::TooBig.errno(), EMSGSIZE);
        tx.send(&mut mem, 1, &big[..MAX_PAYLOAD])
            .map_err(|e| e.errno())?;
        let mut small = [0u8; 16];
        assert_eq!(rx.recv(&mut mem, &mut small), Err(RingError::TooBig));
        let mut out = KVec::from_elem(0u8, MAX_PAYLOAD, GFP_KERNEL)?;
        assert_eq!(rx.recv(&mut mem, &mut out).map(|r| r.len), Ok(MAX_PAYLOAD));
        Ok(())
    }

    /// A ring with a larger limit (64 KiB frames, as a network link's would be) carries
    /// messages up to it, wrapping, and each end holds the other to it.
    #[test]
    fn larger_limit() -> Result {
        const LIMIT: usize = 65536 + 64;
        let mut mem = ring(262144)?;
        let (mut tx, mut rx) = (Producer::with_limit(LIMIT), Consumer::with_limit(LIMIT));
        let mut big = KVec::from_elem(0u8, LIMIT + 1, GFP_KERNEL)?;
        for (i, b) in big.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut out = KVec::from_elem(0u8, LIMIT, GFP_KERNEL)?;
        assert_eq!(tx.send(&mut mem, 1, &big), Err(RingError::TooBig));
        // Five rounds of three frames: the ring (256 KiB) wraps inside a frame.
        for _ in 0..5 {
            for len in [LIMIT, 1500, 9000] {
                tx.send(&mut mem, 1, &big[..len]).map_err(|e| e.errno())?;
            }
            for len in [LIMIT, 1500, 9000] {
                assert_eq!(rx.recv(&mut mem, &mut out).map(|r| r.len), Ok(len));
                assert!(out[..len] == big[..len]);
            }
        }
        // A 4 KiB consumer sees a frame above its limit as corruption, not as a message.
        tx.send(&mut mem, 1, &big[..8192]).map_err(|e| e.errno())?;
        let mut rx4 = Consumer::new();
        rx4.tail = rx.tail;
        rx4.seq = rx.seq;
        assert!(matches!(
            rx4.recv(&mut mem, &mut out),
            Err(RingError::Corrupt(_))
        ));
        Ok(())
    }

    /// Whatever the peer writes, the reader reports corruption and stays in bounds.
    #[test]
    fn corrupt_headers_and_torn_indices() -> Result {
        let mut out = [0u8; 64];
        // Length above the maximum.
        let mut mem = ring(256)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        tx.send(&mut mem, 1, b"abc").map_err(|e| e.errno())?;
        mem.write(HEADER_LEN + 4, &u32::MAX.to_le_bytes());
        assert!(matches!(
            rx.recv(&mut mem, &mut out),
            Err(RingError::Corrupt(_))
        ));
        // Length beyond what was published.
        mem.write(HEADER_LEN + 4, &100u32.to_le_bytes());
        assert!(matches!(
            rx.recv(&mut mem, &mut out),
            Err(RingError::Corrupt(_))
        ));
        // Sequence number out of order.
        mem.write(HEADER_LEN + 4, &3u32.to_le_bytes());
        mem.write(HEADER_LEN + 8, &5u64.to_le_bytes());
        assert!(matches!(
            rx.recv(&mut mem, &mut out),
            Err(RingError::Corrupt(_))
        ));
        // Head behind the tail, or more than a ring ahead.
        let mut mem = ring(256)?;
        let mut rx = Consumer::new();
        mem.store_seqcst(OFF_HEAD, u64::MAX);
        assert!(matches!(
            rx.recv(&mut mem, &mut out),
            Err(RingError::Corrupt(_))
        ));
        mem.store_seqcst(OFF_HEAD, 257);
        assert!(matches!(
            rx.recv(&mut mem, &mut out),
            Err(RingError::Corrupt(_))
        ));
        mem.store_seqcst(OFF_HEAD, 8);
        assert!(matches!(
            rx.recv(&mut mem, &mut out),
            Err(RingError::Corrupt(_))
        ));
        // Tail ahead of the head, seen by the producer.
        let mut mem = ring(256)?;
        let mut tx = Producer::new();
        mem.store_seqcst(OFF_TAIL, 64);
        assert!(matches!(
            tx.send(&mut mem, 1, b"x"),
            Err(RingError::Corrupt(_))
        ));
        // Tail moving backwards (a peer flipping it between "full" and "empty").
        let mut mem = ring(256)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        let mut out = [0u8; 8];
        tx.send(&mut mem, 1, b"abc").map_err(|e| e.errno())?;
        rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
        tx.send(&mut mem, 1, b"abc").map_err(|e| e.errno())?;
        mem.store_seqcst(OFF_TAIL, 0);
        assert!(matches!(
            tx.send(&mut mem, 1, b"x"),
            Err(RingError::Corrupt(_))
        ));
        // A size that does not fit the memory, and a bad magic.
        let mut mem = ring(256)?;
        mem.write(OFF_SIZE, &(1u64 << 40).to_le_bytes());
        assert!(matches!(
            Consumer::new().recv(&mut mem, &mut out),
            Err(RingError::Corrupt(_))
        ));
        mem.write(OFF_SIZE, &100u64.to_le_bytes());
        assert!(matches!(
            Consumer::new().recv(&mut mem, &mut out),
            Err(RingError::Corrupt(_))
        ));
        // A size that would fit but is not the one the ring was made with (a peer flipping
        // it between two reads of one operation): refused by both ends.
        let mut mem = ring(256)?;
        let size = init(&mut mem).map_err(|e| e.errno())?;
        mem.write(OFF_SIZE, &((size / 2) as u64).to_le_bytes());
        assert!(matches!(
            Producer::new().send(&mut mem, 1, b"x"),
            Err(RingError::Corrupt(_))
        ));
        assert!(matches!(
            Consumer::new().recv(&mut mem, &mut out),
            Err(RingError::Corrupt(_))
        ));
        mem.write(OFF_SIZE, &(size as u64).to_le_bytes());
        Producer::new()
            .send(&mut mem, 1, b"x")
            .map_err(|e| e.errno())?;
        mem.write(OFF_MAGIC, &0u64.to_le_bytes());
        assert!(matches!(
            Producer::new().send(&mut mem, 1, b"x"),
            Err(RingError::Corrupt(_))
        ));
        assert_eq!(RingError::Corrupt("x").errno(), EPROTO);
        Ok(())
    }

    /// A peeked message stays until it is consumed.
    #[test]
    fn peek_then_advance() -> Result {
        let mut mem = ring(256)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        tx.send(&mut mem, 3, b"one").map_err(|e| e.errno())?;
        tx.send(&mut mem, 4, b"two").map_err(|e| e.errno())?;
        let mut out = [0u8; 8];
        let first = rx.peek(&mem, &mut out).map_err(|e| e.errno())?;
        assert_eq!(rx.peek(&mem, &mut out), Ok(first));
        assert_eq!((first.port, &out[..3]), (3, &b"one"[..]));
        rx.advance(&mut mem, &first);
        assert_eq!(rx.recv(&mut mem, &mut out).map(|m| m.port), Ok(4));
        assert_eq!(&out[..3], b"two");
        assert_eq!(rx.peek(&mem, &mut out), Err(RingError::Empty));
        Ok(())
    }

    /// One doorbell per burst, and only when the consumer asked for one.
    #[test]
    fn doorbell_coalescing() -> Result {
        let mut mem = ring(1024)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        assert_eq!(tx.send(&mut mem, 1, b"a"), Ok(false));
        // The consumer would sleep, but a message is there: it must not.
        assert!(rx.want_doorbell(&mut mem));
        let mut out = [0u8; 8];
        rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
        assert!(!rx.want_doorbell(&mut mem));
        assert_eq!(tx.send(&mut mem, 1, b"b"), Ok(true));
        assert_eq!(tx.send(&mut mem, 1, b"c"), Ok(false));
        // A polling consumer withdraws its wish: no doorbell until it asks again.
        rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
        rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
        assert!(!rx.want_doorbell(&mut mem));
        rx.no_doorbell(&mut mem);
        assert_eq!(tx.send(&mut mem, 1, b"d"), Ok(false));
        assert!(rx.want_doorbell(&mut mem));
        Ok(())
    }

    /// A producer that found the ring full is rung once when room is freed.
    #[test]
    fn space_doorbell() -> Result {
        let mut mem = ring(256)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        while tx.send(&mut mem, 1, b"abcd").is_ok() {}
        assert_eq!(tx.room(&mem), Ok(16));
        assert_eq!(tx.want_space(&mut mem, 4), Ok(false));
        let mut out = [0u8; 8];
        // The consumer takes the request after a receive, once.
        rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
        assert!(rx.space_wanted(&mut mem));
        assert!(!rx.space_wanted(&mut mem));
        assert_eq!(tx.fits(&mem, 4), Ok(true));
        assert_eq!(tx.fits(&mem, 100), Ok(false));
        // Asking when it already fits says so: the producer must not sleep.
        assert_eq!(tx.want_space(&mut mem, 4), Ok(true));
        Ok(())
    }

    /// The hysteresis: a waiting producer is rung once half the ring is free, not before.
    #[test]
    fn space_doorbell_at_half() -> Result {
        let mut mem = ring(256)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        // 16-byte header + 8-byte payload: 24 bytes a message, 10 in 256 bytes.
        let mut sent = 0;
        while tx.send(&mut mem, 1, b"abcdefgh").is_ok() {
            sent += 1;
        }
        assert_eq!(sent, 10);
        assert_eq!(tx.want_space(&mut mem, 8), Ok(false));
        let mut out = [0u8; 8];
        // 240 bytes used; after 4 messages 144 (more than half): no doorbell yet.
        for _ in 0..4 {
            rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
            assert!(!rx.space_wanted_half(&mut mem));
        }
        // After the fifth, 120 of 256: rung, once.
        rx.recv(&mut mem, &mut out).map_err(|e| e.errno())?;
        assert!(rx.space_wanted_half(&mut mem));
        assert!(!rx.space_wanted_half(&mut mem));
        assert!(!rx.space_wanted(&mut mem));
        Ok(())
    }

    /// A message's header alone, then its payload; a short buffer is `TooBig`.
    #[test]
    fn header_then_payload() -> Result {
        let mut mem = ring(256)?;
        let (mut tx, mut rx) = (Producer::new(), Consumer::new());
        assert_eq!(rx.peek_header(&mem), Err(RingError::Empty));
        tx.send(&mut mem, 9, b"payload").map_err(|e| e.errno())?;
        let msg = rx.peek_header(&mem).map_err(|e| e.errno())?;
        assert_eq!((msg.port, msg.len, msg.seq), (9, 7, 0));
        let mut short = [0u8; 6];
        assert_eq!(rx.payload(&mem, &msg, &mut short), Err(RingError::TooBig));
        let mut out = [0u8; 7];
        assert_eq!(rx.payload(&mem, &msg, &mut out), Ok(()));
        assert_eq!(&out, b"payload");
        assert_eq!(rx.peek_header(&mem), Ok(msg));
        rx.advance(&mut mem, &msg);
        assert_eq!(rx.peek_header(&mem), Err(RingError::Empty));
        Ok(())
    }

    #[test]
    fn init_sizes() -> Result {
        let mut mem = Mem(KVec::from_elem(0u8, HEADER_LEN + 1000, GFP_KERNEL)?);
        assert_eq!(init(&mut mem), Ok(512));
        let mut tiny = Mem(KVec::from_elem(0u8, HEADER_LEN + 8, GFP_KERNEL)?);
        assert_eq!(init(&mut tiny), Err(RingError::TooBig));
        Ok(())
    }
}
