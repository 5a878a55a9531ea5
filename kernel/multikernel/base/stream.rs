// SPDX-License-Identifier: GPL-2.0

//! The stream area of a channel (`struct mk_ikc_stream` in `include/uapi/linux/multikernel.h`):
//! a header page and two byte rings, one per direction, that processes in both kernels map and
//! move bytes through themselves. The kernels only set the header up (the host, at each start),
//! read the indices to tell a waiter when to wake, and write the words that say what it waits
//! for. Pure data and the index rule, covered by KUnit.

use kernel::prelude::*;

/// The header page.
pub(crate) const HEADER: usize = 4096;
/// Bytes of data per direction (`MK_IKC_STREAM_SIZE`).
pub(crate) const SIZE: usize = 1 << 20;
/// What a process maps (`MK_IKC_STREAM_BYTES`).
pub(crate) const BYTES: usize = HEADER + 2 * SIZE;
/// "MKSTREAM" (`MK_IKC_STREAM_MAGIC`).
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"MKSTREAM");
/// Header words: the magic number, the data size per direction.
pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_SIZE: usize = 8;
/// Where each direction's indices are in the header (`struct mk_ikc_stream_dir`).
pub(crate) const DIR_TO_INSTANCE: usize = 64;
pub(crate) const DIR_TO_HOST: usize = 64 + 256;
/// In a direction: bytes ever written, bytes ever read, what a sleeping consumer waits for
/// (data), what a sleeping producer waits for (room); each in a cache line of its own. After
/// each want word, the word the other side last kicked for (user space's alone).
pub(crate) const TAIL: usize = 0;
pub(crate) const HEAD: usize = 64;
pub(crate) const WANT_DATA: usize = 128;
pub(crate) const WANT_ROOM: usize = 192;

/// What a waiter waits for (`MK_IKC_STREAM_DATA`, `MK_IKC_STREAM_ROOM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// Bytes to read, in the direction toward this kernel.
    Data = 1,
    /// Room to write, in the direction away from this kernel.
    Room = 2,
}

impl Want {
    /// `None` for a value user space may not give.
    pub(crate) fn from_u32(what: u32) -> Option<Self> {
        match what {
            1 => Some(Self::Data),
            2 => Some(Self::Room),
            _ => None,
        }
    }

    /// The word of a direction a waiter for this writes what it waits for into.
    pub(crate) fn word(self) -> usize {
        match self {
            Self::Data => WANT_DATA,
            Self::Room => WANT_ROOM,
        }
    }
}

/// The word a waiter writes into `WANT_DATA` or `WANT_ROOM`: the bytes it waits for in the low
/// half (never 0: a waiter wants at least one), the count of looks this kernel's waiters took
/// in the high half, so that each look writes a new word: a side that kicked for one word need
/// not kick again until the word changes (`mk_stream.h`, which notes the word it kicked for in
/// the area, so that the reset at each start forgets it).
pub(crate) fn want_word(bytes: u32, arm: u32) -> u64 {
    u64::from(bytes) | (u64::from(arm) << 32)
}

/// The indices say more than [`SIZE`] bytes are in the ring: one side broke the protocol.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Impossible;

/// Whether `bytes` are ready in a direction whose indices are `tail` and `head` (both count
/// bytes ever moved, wrapping at 2^64): that many to read, or free to write.
pub(crate) fn ready(want: Want, tail: u64, head: u64, bytes: u64) -> Result<bool, Impossible> {
    let used = tail.wrapping_sub(head);
    if used > SIZE as u64 {
        return Err(Impossible);
    }
    Ok(match want {
        Want::Data => used >= bytes,
        Want::Room => SIZE as u64 - used >= bytes,
    })
}

#[kunit_tests(multikernel_stream)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_uapi() {
        // The C header's numbers, spelled out (`mk_stream.h` asserts the same ones of the C
        // structures): a change here is an ABI change.
        assert_eq!(BYTES, 4096 + 2 * 1048576);
        assert_eq!(MAGIC, 0x4d41_4552_5453_4b4d);
        assert_eq!((DIR_TO_INSTANCE, DIR_TO_HOST), (64, 320));
        assert_eq!((TAIL, HEAD, WANT_DATA, WANT_ROOM), (0, 64, 128, 192));
        assert_eq!((OFF_MAGIC, OFF_SIZE), (0, 8));
        assert!(DIR_TO_HOST + WANT_ROOM + 8 <= HEADER);
    }

    #[test]
    fn data_and_room() {
        let size = SIZE as u64;
        assert_eq!(ready(Want::Data, 0, 0, 1), Ok(false));
        assert_eq!(ready(Want::Room, 0, 0, size), Ok(true));
        assert_eq!(ready(Want::Data, 10, 0, 10), Ok(true));
        assert_eq!(ready(Want::Data, 10, 0, 11), Ok(false));
        assert_eq!(ready(Want::Room, size, 0, 1), Ok(false));
        assert_eq!(ready(Want::Room, size, 1, 1), Ok(true));
        assert_eq!(ready(Want::Data, size, 0, size), Ok(true));
    }

    #[test]
    fn indices_wrap() {
        // Across 2^64: the tail wrapped, the head not yet.
        let head = u64::MAX - 5;
        let tail = head.wrapping_add(100);
        assert_eq!(ready(Want::Data, tail, head, 100), Ok(true));
        assert_eq!(ready(Want::Data, tail, head, 101), Ok(false));
        assert_eq!(ready(Want::Room, tail, head, SIZE as u64 - 100), Ok(true));
    }

    #[test]
    fn want_words() {
        assert_eq!(want_word(1, 0), 1);
        assert_eq!(want_word(4096, 3) & 0xffff_ffff, 4096);
        assert_ne!(want_word(4096, 3), want_word(4096, 4));
        assert_ne!(want_word(1, u32::MAX), 0);
    }

    #[test]
    fn impossible_indices() {
        // More than a ring's worth, or a head past the tail.
        assert_eq!(ready(Want::Data, SIZE as u64 + 1, 0, 1), Err(Impossible));
        assert_eq!(ready(Want::Room, 5, 6, 1), Err(Impossible));
        assert_eq!(Want::from_u32(0), None);
        assert_eq!(Want::from_u32(3), None);
        assert_eq!(Want::from_u32(2), Some(Want::Room));
    }
}
