// SPDX-License-Identifier: GPL-2.0

//! The pool allocator: hands out physically contiguous pieces of the boot-time pool.
//!
//! The pool is one region, reserved at boot (`multikernel.pool=`, `pool_reserve.c`). Instances
//! get one contiguous range each, in 2 MiB granules, best fit (the smallest free range that is
//! large enough, lowest address among equals). Freed ranges merge with free neighbours, so
//! destroying every instance always gives back one free range, the whole pool.
//!
//! Pure bookkeeping over numbers: the memory itself is never touched here.

use kernel::{
    prelude::*,
    ptr::{
        Alignable,
        Alignment, //
    },
};

/// Allocation granule and alignment: 2 MiB.
pub(crate) const GRANULE: u64 = 2 << 20;

/// A range of physical memory, `start..start + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl Range {
    /// One past the last byte.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.len
    }

    /// The last byte (inclusive end), as `instances/NAME/memory` shows it.
    pub(crate) fn last(&self) -> u64 {
        self.start + self.len - 1
    }
}

/// Rounds a requested size up to whole granules; `None` if that overflows.
pub(crate) fn round_up(bytes: u64) -> Option<u64> {
    bytes.align_up(Alignment::new::<{ GRANULE as usize }>())
}

/// The free space of the pool.
///
/// # Invariants
///
/// `free` is sorted by address, its ranges are non-empty, granule-aligned, inside
/// `base..base + size`, and neither overlap nor touch (touching ranges are merged).
/// `free.capacity() >= live + 2`, so [`Pool::free`] never needs to allocate.
pub(crate) struct Pool {
    base: u64,
    size: u64,
    free: KVec<Range>,
    live: usize,
}

impl Pool {
    /// A pool covering `base..base + size`, all free. Both must be multiples of [`GRANULE`].
    pub(crate) fn new(base: u64, size: u64) -> Result<Self> {
        if size == 0
            || base % GRANULE != 0
            || size % GRANULE != 0
            || base.checked_add(size).is_none()
        {
            return Err(EINVAL);
        }
        let mut free = KVec::with_capacity(4, GFP_KERNEL)?;
        free.push(
            Range {
                start: base,
                len: size,
            },
            GFP_KERNEL,
        )?;
        // INVARIANT: One free range covering the whole pool; capacity 4 >= 0 + 2.
        Ok(Self {
            base,
            size,
            free,
            live: 0,
        })
    }

    /// Where the pool is.
    pub(crate) fn range(&self) -> Range {
        Range {
            start: self.base,
            len: self.size,
        }
    }

    /// Size of the pool in bytes.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.size
    }

    /// Bytes not allocated.
    pub(crate) fn free_bytes(&self) -> u64 {
        self.free.iter().map(|r| r.len).sum()
    }

    /// The largest allocation that would succeed now.
    pub(crate) fn largest_free_bytes(&self) -> u64 {
        self.free.iter().map(|r| r.len).max().unwrap_or(0)
    }

    /// Number of free ranges (1 when nothing is allocated); for the tests.
    #[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
    pub(crate) fn free_ranges(&self) -> usize {
        self.free.len()
    }

    /// Allocates `len` bytes (a non-zero multiple of [`GRANULE`]), contiguous.
    ///
    /// Fails with `EINVAL` for a bad `len`, `ENOSPC` if no free range is large enough, `ENOMEM`
    /// if bookkeeping memory cannot be reserved. On failure nothing changes.
    pub(crate) fn alloc(&mut self, len: u64) -> Result<Range> {
        if len == 0 || len % GRANULE != 0 {
            return Err(EINVAL);
        }
        let start = self
            .free
            .iter()
            .filter(|r| r.len >= len)
            .min_by_key(|r| r.len)
            .ok_or(ENOSPC)?
            .start;
        // The front of the best-fitting hole.
        let range = Range { start, len };
        self.alloc_at(range)?;
        Ok(range)
    }

    /// Allocates exactly `range` (a host update adopts an instance where the previous kernel
    /// had it). `EINVAL` for a range that is empty, misaligned or outside the pool, `EBUSY` if
    /// part of it is not free, `ENOMEM` if bookkeeping memory cannot be reserved. On failure
    /// nothing changes.
    pub(crate) fn alloc_at(&mut self, range: Range) -> Result {
        if range.len == 0
            || range.start % GRANULE != 0
            || range.len % GRANULE != 0
            || range.start < self.base
            || range.end() > self.base + self.size
        {
            return Err(EINVAL);
        }
        let index = self
            .free
            .iter()
            .position(|r| r.start <= range.start && range.end() <= r.end())
            .ok_or(EBUSY)?;
        // Up to one more free range (the hole splits), and room for `live + 1 + 2`.
        let needed = (self.live + 4).saturating_sub(self.free.len());
        self.free.reserve(needed, GFP_KERNEL)?;
        let hole = self.free[index];
        let before = Range {
            start: hole.start,
            len: range.start - hole.start,
        };
        let after = Range {
            start: range.end(),
            len: hole.end() - range.end(),
        };
        match (before.len, after.len) {
            (0, 0) => {
                self.free.remove(index).map_err(|_| EINVAL)?;
            }
            (0, _) => self.free[index] = after,
            (_, 0) => self.free[index] = before,
            _ => {
                self.free[index] = before;
                self.free
                    .insert_within_capacity(index + 1, after)
                    .map_err(|_| ENOMEM)?;
            }
        }
        // INVARIANT: The hole was replaced by its parts before and after `range`, in order,
        // non-empty, still apart from their neighbours; capacity was reserved above.
        self.live += 1;
        Ok(())
    }

    /// Returns `range` (from [`Pool::alloc`]) to the pool, merging with free neighbours.
    ///
    /// Fails with `EINVAL`, changing nothing, if `range` is not an allocated range of this pool
    /// (outside it, misaligned, or overlapping free space): a caller bug, reported, never a
    /// corrupted free list.
    pub(crate) fn free(&mut self, range: Range) -> Result {
        if range.len == 0
            || range.start % GRANULE != 0
            || range.len % GRANULE != 0
            || range.start < self.base
            || range.end() > self.base + self.size
            || self.live == 0
        {
            return Err(EINVAL);
        }
        // First free range after `range`.
        let next = self.free.partition_point(|r| r.start < range.start);
        let prev = next.checked_sub(1);
        if let Some(p) = prev {
            if self.free[p].end() > range.start {
                return Err(EINVAL);
            }
        }
        if next < self.free.len() && range.end() > self.free[next].start {
            return Err(EINVAL);
        }
        let joins_prev = prev.is_some_and(|p| self.free[p].end() == range.start);
        let joins_next = next < self.free.len() && self.free[next].start == range.end();
        match (joins_prev, joins_next, prev) {
            (true, true, Some(p)) => {
                let after = self.free.remove(next).map_err(|_| EINVAL)?;
                self.free[p].len += range.len + after.len;
            }
            (true, false, Some(p)) => self.free[p].len += range.len,
            (false, true, _) => {
                self.free[next].start = range.start;
                self.free[next].len += range.len;
            }
            _ => {
                // Capacity for this was reserved by `alloc`, so this does not allocate.
                self.free
                    .insert_within_capacity(next, range)
                    .map_err(|_| ENOMEM)?;
            }
        }
        // INVARIANT: Inserted at its sorted place and merged with touching neighbours.
        self.live -= 1;
        Ok(())
    }
}

#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
#[kunit_tests(multikernel_pool)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;
    const BASE: u64 = 0x1_0000_0000;

    /// Exact allocations (a host update's) split holes, refuse what is not free, and free
    /// like any other.
    #[test]
    fn alloc_at_exact() -> Result {
        let mut pool = Pool::new(BASE, 64 * M)?;
        let mid = Range {
            start: BASE + 16 * M,
            len: 8 * M,
        };
        pool.alloc_at(mid)?;
        assert_eq!(pool.free_ranges(), 2);
        assert_eq!(pool.free_bytes(), 56 * M);
        assert_eq!(pool.alloc_at(mid), Err(EBUSY));
        let overlapping = Range {
            start: BASE + 22 * M,
            len: 4 * M,
        };
        assert_eq!(pool.alloc_at(overlapping), Err(EBUSY));
        let outside = Range {
            start: BASE + 62 * M,
            len: 4 * M,
        };
        assert_eq!(pool.alloc_at(outside), Err(EINVAL));
        let first = Range {
            start: BASE,
            len: 16 * M,
        };
        pool.alloc_at(first)?;
        assert_eq!(pool.free_ranges(), 1);
        pool.free(first)?;
        pool.free(mid)?;
        assert_eq!(pool.free_ranges(), 1);
        assert_eq!(pool.free_bytes(), 64 * M);
        Ok(())
    }

    #[test]
    fn new_checks_alignment() {
        assert!(Pool::new(BASE, 512 * M).is_ok());
        assert_eq!(Pool::new(BASE + M, 512 * M).err(), Some(EINVAL));
        assert_eq!(Pool::new(BASE, 3 * M).err(), Some(EINVAL));
        assert_eq!(Pool::new(BASE, 0).err(), Some(EINVAL));
        assert_eq!(
            Pool::new(u64::MAX - GRANULE + 1 - GRANULE, 4 * M).err(),
            Some(EINVAL)
        );
    }

    #[test]
    fn round_up_granules() {
        assert_eq!(round_up(1), Some(2 * M));
        assert_eq!(round_up(2 * M), Some(2 * M));
        assert_eq!(round_up(2 * M + 1), Some(4 * M));
        assert_eq!(round_up(u64::MAX), None);
    }

    #[test]
    fn alloc_free_counts() -> Result {
        let mut pool = Pool::new(BASE, 64 * M)?;
        assert_eq!(pool.total_bytes(), 64 * M);
        let a = pool.alloc(8 * M)?;
        assert_eq!(
            a,
            Range {
                start: BASE,
                len: 8 * M
            }
        );
        assert_eq!(a.last(), BASE + 8 * M - 1);
        assert_eq!(pool.free_bytes(), 56 * M);
        assert_eq!(pool.largest_free_bytes(), 56 * M);
        assert_eq!(pool.alloc(58 * M).err(), Some(ENOSPC));
        assert_eq!(pool.alloc(3 * M).err(), Some(EINVAL));
        assert_eq!(pool.alloc(0).err(), Some(EINVAL));
        let b = pool.alloc(56 * M)?;
        assert_eq!(pool.free_bytes(), 0);
        assert_eq!(pool.largest_free_bytes(), 0);
        assert_eq!(pool.alloc(2 * M).err(), Some(ENOSPC));
        pool.free(a)?;
        pool.free(b)?;
        assert_eq!(pool.free_bytes(), 64 * M);
        assert_eq!(pool.free_ranges(), 1);
        Ok(())
    }

    /// Fragment the pool, then free in an order that exercises every merge case.
    #[test]
    fn fragmentation_and_coalescing() -> Result {
        let mut pool = Pool::new(BASE, 20 * M)?;
        let r: [Range; 5] = [
            pool.alloc(4 * M)?,
            pool.alloc(4 * M)?,
            pool.alloc(4 * M)?,
            pool.alloc(4 * M)?,
            pool.alloc(4 * M)?,
        ];
        assert_eq!(pool.free_bytes(), 0);
        // Free 1 and 3: two separate holes of 4 MiB, so 8 MiB free but 4 MiB largest.
        pool.free(r[1])?;
        pool.free(r[3])?;
        assert_eq!(pool.free_ranges(), 2);
        assert_eq!(pool.free_bytes(), 8 * M);
        assert_eq!(pool.largest_free_bytes(), 4 * M);
        assert_eq!(pool.alloc(6 * M).err(), Some(ENOSPC));
        // Merge with the next hole only (2 touches 3's hole), then with both sides (free 0 is
        // isolated first, then 4 touches 2-3 on the left side only).
        pool.free(r[2])?;
        assert_eq!(pool.free_ranges(), 1);
        assert_eq!(pool.largest_free_bytes(), 12 * M);
        pool.free(r[0])?;
        assert_eq!(pool.free_ranges(), 1);
        assert_eq!(pool.largest_free_bytes(), 16 * M);
        pool.free(r[4])?;
        assert_eq!(pool.free_ranges(), 1);
        assert_eq!(pool.free_bytes(), 20 * M);
        Ok(())
    }

    #[test]
    fn best_fit_prefers_smallest_hole() -> Result {
        let mut pool = Pool::new(BASE, 32 * M)?;
        let a = pool.alloc(8 * M)?;
        let _b = pool.alloc(2 * M)?;
        let c = pool.alloc(4 * M)?;
        let _d = pool.alloc(2 * M)?;
        pool.free(a)?; // 8 MiB hole at the bottom
        pool.free(c)?; // 4 MiB hole in the middle; 16 MiB free at the top
        let e = pool.alloc(4 * M)?;
        assert_eq!(e, c);
        let f = pool.alloc(6 * M)?;
        assert_eq!(f.start, a.start);
        assert_eq!(pool.largest_free_bytes(), 16 * M);
        Ok(())
    }

    #[test]
    fn bad_frees_change_nothing() -> Result {
        let mut pool = Pool::new(BASE, 16 * M)?;
        let a = pool.alloc(4 * M)?;
        let free = pool.free_bytes();
        // Outside, misaligned, overlapping free space, double free.
        assert_eq!(
            pool.free(Range {
                start: BASE - 2 * M,
                len: 2 * M
            })
            .err(),
            Some(EINVAL)
        );
        assert_eq!(
            pool.free(Range {
                start: BASE + 16 * M,
                len: 2 * M
            })
            .err(),
            Some(EINVAL)
        );
        assert_eq!(
            pool.free(Range {
                start: BASE + M,
                len: 2 * M
            })
            .err(),
            Some(EINVAL)
        );
        assert_eq!(
            pool.free(Range {
                start: BASE + 4 * M,
                len: 2 * M
            })
            .err(),
            Some(EINVAL)
        );
        assert_eq!(
            pool.free(Range {
                start: BASE + 2 * M,
                len: 4 * M
            })
            .err(),
            Some(EINVAL)
        );
        assert_eq!(pool.free_bytes(), free);
        pool.free(a)?;
        assert_eq!(pool.free(a).err(), Some(EINVAL));
        assert_eq!(pool.free_bytes(), 16 * M);
        Ok(())
    }

    /// Many allocate/free cycles in a shuffled order always end with one free range.
    #[test]
    fn churn_returns_to_one_range() -> Result {
        let mut pool = Pool::new(BASE, 128 * M)?;
        let mut live = KVec::new();
        let mut seed: u32 = 12345;
        for _ in 0..500u32 {
            seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
            let want = GRANULE * u64::from(1 + (seed >> 16) % 8);
            if (seed >> 8) % 3 != 0 {
                if let Ok(r) = pool.alloc(want) {
                    live.push(r, GFP_KERNEL)?;
                }
            } else if !live.is_empty() {
                let i = (seed as usize >> 4) % live.len();
                let r = live.remove(i).map_err(|_| EINVAL)?;
                pool.free(r)?;
            }
            let used: u64 = live.iter().map(|r| r.len).sum();
            assert_eq!(pool.free_bytes() + used, 128 * M);
        }
        while let Some(r) = live.pop() {
            pool.free(r)?;
        }
        assert_eq!(pool.free_ranges(), 1);
        assert_eq!(pool.free_bytes(), 128 * M);
        Ok(())
    }
}
