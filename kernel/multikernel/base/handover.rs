// SPDX-License-Identifier: GPL-2.0

//! The host update's blob: what the old host hands the next kernel about its instances, in
//! KHO (`Documentation/multikernel/update.rst`). Pure data and its checks.
//!
//! ```text
//! header (48 bytes, struct multikernel_handover)   read by C in setup_arch() too
//! held:    u32 APIC id per instance CPU           (nr_held)
//! records: one per instance, each starting with its own length
//! ```
//!
//! Every integer is little endian. The next kernel trusts the old host no more than it must:
//! every length, offset and range is checked before use, and a record that fails a check is
//! refused whole (that instance is not adopted; its CPUs stay held and its memory reserved).

use crate::base::{
    loader::Layout,
    pool::{
        Range,
        GRANULE, //
    },
    spec::Name,
};
use kernel::prelude::*;

/// "MKHANDOV" (`MULTIKERNEL_HANDOVER_MAGIC`).
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"MKHANDOV");
/// The version this kernel writes and reads (`MULTIKERNEL_HANDOVER_VERSION`; the `MKHO`
/// record of its `kernel_info` declares it). Raised with the channel layout
/// ([`crate::base::wire::VERSION`]): an instance's channel is handed over as it is.
pub(crate) const VERSION: u32 = 3;
/// `struct multikernel_handover`.
pub(crate) const HEADER_BYTES: usize = 56;
/// The longest command line a record carries (longer ones are cut: only `image` shows it).
pub(crate) const CMDLINE_MAX: usize = 4096;
/// The most console bytes a record carries (what the host keeps of an instance's console).
pub(crate) const CONSOLE_MAX: usize = 16384;
/// The most CPUs one instance has in a record.
pub(crate) const CPUS_MAX: usize = 1024;

/// Where a channel's two rings were: the producer's `(head, seq, tail_seen)` and the
/// consumer's `(tail, seq)` (`ring.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Positions {
    pub(crate) tx: [u64; 3],
    pub(crate) rx: [u64; 2],
}

/// What is known of the loaded image: enough to watch and show it, not to start it again.
#[derive(PartialEq, Eq)]
pub(crate) struct CarriedImage {
    pub(crate) kernel_size: u64,
    pub(crate) initrd_size: u64,
    pub(crate) cmdline: KVec<u8>,
    pub(crate) layout: Layout,
}

/// One instance, as the old host hands it over. The enums are their `u8` values
/// (`instance.rs` and `spec.rs` say which are valid).
#[derive(PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) id: u32,
    pub(crate) name: Name,
    /// One per CPU, in the instance's CPU order.
    pub(crate) apic_ids: KVec<u32>,
    pub(crate) memory: Range,
    pub(crate) state: u8,
    pub(crate) last_stop: u8,
    pub(crate) on_reboot: u8,
    pub(crate) on_crash: u8,
    pub(crate) net: bool,
    pub(crate) cpus_out: bool,
    pub(crate) dirty: bool,
    pub(crate) auto_restarts: u32,
    pub(crate) stop_timeout_ms: u32,
    pub(crate) start_timeout_ms: u32,
    /// How long its kernel had run (0 if none runs).
    pub(crate) uptime_ns: u64,
    pub(crate) image: Option<CarriedImage>,
    /// The message channel, if open.
    pub(crate) channel: Option<Positions>,
    /// The network link, if attached.
    pub(crate) net_link: Option<Positions>,
    /// Bytes of console output ever seen, and the last of them.
    pub(crate) console_total: u64,
    pub(crate) console: KVec<u8>,
}

/// Bytes a record takes at most, for an instance of `cpus` CPUs.
pub(crate) fn record_bytes(cpus: usize) -> usize {
    // Fixed fields (generously), the CPUs, the command line and the console.
    512 + 4 * cpus + CMDLINE_MAX + CONSOLE_MAX
}

/// Bytes of the whole blob for instances of `cpus` CPUs each.
pub(crate) fn blob_bytes(cpus: impl Iterator<Item = usize>) -> usize {
    let (held, records) = cpus.fold((0, 0), |(h, r), n| (h + n, r + record_bytes(n)));
    HEADER_BYTES + (4 * held).next_multiple_of(8) + records
}

/// Why a blob or record was refused.
pub(crate) type Bad = &'static str;

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Result<(), Bad> {
        let end = self.at.checked_add(b.len()).ok_or("too long")?;
        self.out
            .get_mut(self.at..end)
            .ok_or("blob too small")?
            .copy_from_slice(b);
        self.at = end;
        Ok(())
    }
    fn u8(&mut self, v: u8) -> Result<(), Bad> {
        self.bytes(&[v])
    }
    fn u32(&mut self, v: u32) -> Result<(), Bad> {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<(), Bad> {
        self.bytes(&v.to_le_bytes())
    }
    fn range(&mut self, r: Range) -> Result<(), Bad> {
        self.u64(r.start)?;
        self.u64(r.len)
    }
    fn len_bytes(&mut self, b: &[u8]) -> Result<(), Bad> {
        self.u32(u32::try_from(b.len()).map_err(|_| "too long")?)?;
        self.bytes(b)
    }
    fn put_u32_at(&mut self, at: usize, v: u32) -> Result<(), Bad> {
        self.out
            .get_mut(at..at + 4)
            .ok_or("blob too small")?
            .copy_from_slice(&v.to_le_bytes());
        Ok(())
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        let end = self.at.checked_add(n).ok_or("truncated")?;
        let b = self.buf.get(self.at..end).ok_or("truncated")?;
        self.at = end;
        Ok(b)
    }
    fn u8(&mut self) -> Result<u8, Bad> {
        Ok(self.bytes(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, Bad> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("bad flag"),
        }
    }
    fn u32(&mut self) -> Result<u32, Bad> {
        let mut w = [0u8; 4];
        w.copy_from_slice(self.bytes(4)?);
        Ok(u32::from_le_bytes(w))
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(w))
    }
    fn range(&mut self) -> Result<Range, Bad> {
        let (start, len) = (self.u64()?, self.u64()?);
        start.checked_add(len).ok_or("range wraps")?;
        Ok(Range { start, len })
    }
    fn len_bytes(&mut self, max: usize) -> Result<&'a [u8], Bad> {
        let n = self.u32()? as usize;
        if n > max {
            return Err("field too long");
        }
        self.bytes(n)
    }
}

fn write_positions(w: &mut Writer<'_>, p: Option<Positions>) -> Result<(), Bad> {
    let Some(p) = p else {
        return w.u8(0);
    };
    w.u8(1)?;
    for v in p.tx {
        w.u64(v)?;
    }
    for v in p.rx {
        w.u64(v)?;
    }
    Ok(())
}

fn read_positions(r: &mut Reader<'_>) -> Result<Option<Positions>, Bad> {
    if !r.bool()? {
        return Ok(None);
    }
    Ok(Some(Positions {
        tx: [r.u64()?, r.u64()?, r.u64()?],
        rx: [r.u64()?, r.u64()?],
    }))
}

fn write_record(w: &mut Writer<'_>, rec: &Record) -> Result<(), Bad> {
    let start = w.at;
    w.u32(0)?; // its length, filled in below
    w.u32(rec.id)?;
    w.len_bytes(rec.name.as_bytes())?;
    if rec.apic_ids.is_empty() || rec.apic_ids.len() > CPUS_MAX {
        return Err("bad CPU count");
    }
    w.u32(rec.apic_ids.len() as u32)?;
    for a in rec.apic_ids.iter() {
        w.u32(*a)?;
    }
    w.range(rec.memory)?;
    for b in [rec.state, rec.last_stop, rec.on_reboot, rec.on_crash] {
        w.u8(b)?;
    }
    for b in [rec.net, rec.cpus_out, rec.dirty] {
        w.u8(u8::from(b))?;
    }
    for v in [rec.auto_restarts, rec.stop_timeout_ms, rec.start_timeout_ms] {
        w.u32(v)?;
    }
    w.u64(rec.uptime_ns)?;
    match &rec.image {
        None => w.u8(0)?,
        Some(img) => {
            w.u8(1)?;
            w.u64(img.kernel_size)?;
            w.u64(img.initrd_size)?;
            w.len_bytes(&img.cmdline[..img.cmdline.len().min(CMDLINE_MAX)])?;
            let l = &img.layout;
            for r in [
                l.kernel,
                l.boot_params,
                l.cmdline,
                l.pagetables,
                l.mailbox,
                l.park,
                l.channel,
            ] {
                w.range(r)?;
            }
            match l.initrd {
                None => w.u8(0)?,
                Some(r) => {
                    w.u8(1)?;
                    w.range(r)?;
                }
            }
            w.u64(l.entry)?;
        }
    }
    write_positions(w, rec.channel)?;
    write_positions(w, rec.net_link)?;
    w.u64(rec.console_total)?;
    let console = &rec.console[rec.console.len().saturating_sub(CONSOLE_MAX)..];
    w.len_bytes(console)?;
    let len = u32::try_from(w.at - start).map_err(|_| "record too long")?;
    w.put_u32_at(start, len)
}

/// Whether `inner` lies inside `outer`.
fn inside(inner: Range, outer: Range) -> bool {
    inner.start >= outer.start && inner.end() <= outer.end()
}

fn read_record(r: &mut Reader<'_>) -> Result<Record, Bad> {
    let start = r.at;
    let len = r.u32()? as usize;
    let end = start.checked_add(len).ok_or("truncated")?;
    if end > r.buf.len() || len < 8 {
        return Err("record length outside the blob");
    }
    // The record is read within its own length.
    let mut r = Reader {
        buf: &r.buf[..end],
        at: r.at,
    };
    let id = r.u32()?;
    let name = Name::new(r.len_bytes(64)?).map_err(|_| "bad name")?;
    let cpus = r.u32()? as usize;
    if cpus == 0 || cpus > CPUS_MAX {
        return Err("bad CPU count");
    }
    let mut apic_ids = KVec::with_capacity(cpus, GFP_KERNEL).map_err(|_| "no memory")?;
    for _ in 0..cpus {
        let a = r.u32()?;
        if apic_ids.contains(&a) {
            return Err("a CPU twice");
        }
        apic_ids.push(a, GFP_KERNEL).map_err(|_| "no memory")?;
    }
    let memory = r.range()?;
    if memory.len == 0 || memory.start % GRANULE != 0 || memory.len % GRANULE != 0 {
        return Err("memory not in whole granules");
    }
    let (state, last_stop, on_reboot, on_crash) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
    let (net, cpus_out, dirty) = (r.bool()?, r.bool()?, r.bool()?);
    let (auto_restarts, stop_timeout_ms, start_timeout_ms) = (r.u32()?, r.u32()?, r.u32()?);
    let uptime_ns = r.u64()?;
    let image = if r.bool()? {
        let kernel_size = r.u64()?;
        let initrd_size = r.u64()?;
        let mut cmdline = KVec::new();
        cmdline
            .extend_from_slice(r.len_bytes(CMDLINE_MAX)?, GFP_KERNEL)
            .map_err(|_| "no memory")?;
        let mut ranges = [Range { start: 0, len: 0 }; 7];
        for slot in ranges.iter_mut() {
            *slot = r.range()?;
        }
        let initrd = if r.bool()? { Some(r.range()?) } else { None };
        let entry = r.u64()?;
        let [kernel, boot_params, cmdline_range, pagetables, mailbox, park, channel] = ranges;
        let layout = Layout {
            kernel,
            boot_params,
            cmdline: cmdline_range,
            pagetables,
            mailbox,
            park,
            channel,
            initrd,
            entry,
        };
        if !ranges.iter().all(|&x| inside(x, memory))
            || !initrd.is_none_or(|x| inside(x, memory))
            || !inside(
                Range {
                    start: entry,
                    len: 1,
                },
                kernel,
            )
            || mailbox.len < 4096
            || (channel.len as usize) < crate::base::wire::CHANNEL_BYTES
        {
            return Err("image layout outside the instance's memory");
        }
        Some(CarriedImage {
            kernel_size,
            initrd_size,
            cmdline,
            layout,
        })
    } else {
        None
    };
    let channel = read_positions(&mut r)?;
    let net_link = read_positions(&mut r)?;
    if (channel.is_some() || net_link.is_some()) && image.is_none() {
        return Err("a channel without an image");
    }
    let console_total = r.u64()?;
    let mut console = KVec::new();
    console
        .extend_from_slice(r.len_bytes(CONSOLE_MAX)?, GFP_KERNEL)
        .map_err(|_| "no memory")?;
    if r.at != end {
        return Err("record length does not match its fields");
    }
    Ok(Record {
        id,
        name,
        apic_ids,
        memory,
        state,
        last_stop,
        on_reboot,
        on_crash,
        net,
        cpus_out,
        dirty,
        auto_restarts,
        stop_timeout_ms,
        start_timeout_ms,
        uptime_ns,
        image,
        channel,
        net_link,
        console_total,
        console,
    })
}

/// Writes the blob for `pool` and `records` into `out` (zeroed, [`blob_bytes`] long), the TSC
/// read then being `tsc`.
pub(crate) fn encode(out: &mut [u8], pool: Range, tsc: u64, records: &[Record]) -> Result<(), Bad> {
    let size = u32::try_from(out.len()).map_err(|_| "blob too large")?;
    let held: usize = records.iter().map(|r| r.apic_ids.len()).sum();
    let held_offset = HEADER_BYTES;
    let records_offset = held_offset + (4 * held).next_multiple_of(8);
    let mut w = Writer { out, at: 0 };
    w.u64(MAGIC)?;
    w.u32(VERSION)?;
    w.u32(size)?;
    w.u64(pool.start)?;
    w.u64(pool.len)?;
    w.u32(held as u32)?;
    w.u32(held_offset as u32)?;
    w.u32(u32::try_from(records.len()).map_err(|_| "too many")?)?;
    w.u32(records_offset as u32)?;
    w.u64(tsc)?;
    for rec in records {
        for a in rec.apic_ids.iter() {
            w.u32(*a)?;
        }
    }
    w.at = records_offset;
    for rec in records {
        write_record(&mut w, rec)?;
    }
    Ok(())
}

/// A blob as read: the pool, every held APIC id, and the records in the order written; a
/// record that failed its checks is `Err` with why.
pub(crate) struct Handover {
    pub(crate) pool: Range,
    /// The TSC when the records were written.
    pub(crate) tsc: u64,
    pub(crate) held: KVec<u32>,
    pub(crate) records: KVec<Result<Record, Bad>>,
}

/// Reads a blob. `Err` if its header cannot be trusted (then nothing in it can be).
pub(crate) fn decode(blob: &[u8]) -> Result<Handover, Bad> {
    let mut r = Reader { buf: blob, at: 0 };
    if r.u64()? != MAGIC {
        return Err("bad magic");
    }
    if r.u32()? != VERSION {
        return Err("another handover version");
    }
    let size = r.u32()? as usize;
    if size > blob.len() || size < HEADER_BYTES {
        return Err("size outside the blob");
    }
    let blob = &blob[..size];
    let pool = r.range()?;
    let (nr_held, held_offset) = (r.u32()? as usize, r.u32()? as usize);
    let (nr_records, records_offset) = (r.u32()? as usize, r.u32()? as usize);
    let tsc = r.u64()?;
    let mut held = KVec::new();
    let mut hr = Reader {
        buf: blob,
        at: held_offset,
    };
    if held_offset < HEADER_BYTES || nr_held > size / 4 {
        return Err("bad CPU list");
    }
    for _ in 0..nr_held {
        held.push(hr.u32()?, GFP_KERNEL).map_err(|_| "no memory")?;
    }
    if records_offset < hr.at || nr_records > size / 8 {
        return Err("bad record list");
    }
    let mut r = Reader {
        buf: blob,
        at: records_offset,
    };
    let mut records = KVec::with_capacity(nr_records, GFP_KERNEL).map_err(|_| "no memory")?;
    for _ in 0..nr_records {
        let at = r.at;
        let rec = read_record(&mut r);
        // A bad record is skipped by its length, if that much can be read.
        let len = Reader { buf: blob, at }
            .u32()
            .map_err(|_| "truncated record")? as usize;
        r.at = at.checked_add(len.max(4)).ok_or("truncated record")?;
        records.push(rec, GFP_KERNEL).map_err(|_| "no memory")?;
    }
    Ok(Handover {
        pool,
        tsc,
        held,
        records,
    })
}

#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
#[kunit_tests(multikernel_handover)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    fn record(id: u32, apic: &[u32], start: u64) -> Result<Record> {
        let memory = Range { start, len: 64 * M };
        let at = |off: u64, len: u64| Range {
            start: start + off,
            len,
        };
        let mut apic_ids = KVec::new();
        apic_ids.extend_from_slice(apic, GFP_KERNEL)?;
        let mut cmdline = KVec::new();
        cmdline.extend_from_slice(b"console=hvc0", GFP_KERNEL)?;
        let mut console = KVec::new();
        console.extend_from_slice(b"booted\n", GFP_KERNEL)?;
        Ok(Record {
            id,
            name: Name::new(b"web").map_err(|_| EINVAL)?,
            apic_ids,
            memory,
            state: 3,
            last_stop: 0,
            on_reboot: 1,
            on_crash: 0,
            net: true,
            cpus_out: false,
            dirty: true,
            auto_restarts: 2,
            stop_timeout_ms: 10_000,
            start_timeout_ms: 30_000,
            uptime_ns: 123_456_789,
            image: Some(CarriedImage {
                kernel_size: 5 * M,
                initrd_size: M,
                cmdline,
                layout: Layout {
                    kernel: at(0, 16 * M),
                    boot_params: at(16 * M, 4096),
                    cmdline: at(16 * M + 4096, 4096),
                    pagetables: at(17 * M, M),
                    mailbox: at(18 * M, 4096),
                    park: at(18 * M + 4096, 8192),
                    channel: at(19 * M, 7 * M),
                    initrd: Some(at(26 * M, M)),
                    entry: start + 0x200,
                },
            }),
            channel: Some(Positions {
                tx: [100, 3, 80],
                rx: [64, 2],
            }),
            net_link: None,
            console_total: 7,
            console,
        })
    }

    fn blob_for(records: &[Record]) -> Result<KVec<u8>> {
        let size = blob_bytes(records.iter().map(|r| r.apic_ids.len()));
        let mut blob = KVec::from_elem(0u8, size, GFP_KERNEL)?;
        let pool = Range {
            start: 0x1_0000_0000,
            len: 512 * M,
        };
        encode(&mut blob, pool, 42, records).map_err(|_| EINVAL)?;
        Ok(blob)
    }

    fn copy(blob: &[u8]) -> Result<KVec<u8>> {
        let mut v = KVec::new();
        v.extend_from_slice(blob, GFP_KERNEL)?;
        Ok(v)
    }

    /// What is written comes back, the CPUs of every record in the held list.
    #[test]
    fn round_trip() -> Result {
        let records = [
            record(1, &[2], 0x1_0000_0000)?,
            record(2, &[4, 6], 0x1_0800_0000)?,
        ];
        let blob = blob_for(&records)?;
        let h = decode(&blob).map_err(|_| EINVAL)?;
        assert_eq!(h.pool.len, 512 * M);
        assert_eq!(h.tsc, 42);
        assert_eq!(&h.held[..], &[2, 4, 6]);
        assert_eq!(h.records.len(), 2);
        for (got, want) in h.records.iter().zip(records.iter()) {
            assert!(got.as_ref().ok() == Some(want));
        }
        Ok(())
    }

    /// A blob cut anywhere, or with a bad header, is refused; a bad record is refused alone.
    #[test]
    fn refusals() -> Result {
        let records = [
            record(1, &[2], 0x1_0000_0000)?,
            record(2, &[4], 0x1_0800_0000)?,
        ];
        let blob = blob_for(&records)?;
        for cut in [0, 8, HEADER_BYTES - 1] {
            assert!(decode(&blob[..cut]).is_err());
        }
        let mut bad = copy(&blob)?;
        bad[8] = VERSION as u8 + 1; // a version this kernel does not read
        assert!(decode(&bad).is_err());
        // The first record's memory no longer in whole granules: that record only.
        let rec0 = HEADER_BYTES + 8;
        let mem_at = rec0 + 4 + 4 + 4 + 3 + 4 + 4;
        let mut bad = copy(&blob)?;
        bad[mem_at] = 1;
        let h = decode(&bad).map_err(|_| EINVAL)?;
        assert!(h.records[0].is_err());
        assert!(h.records[1].as_ref().ok() == Some(&records[1]));
        // A record whose length runs past the blob.
        let mut bad = copy(&blob)?;
        bad[rec0 + 3] = 0x7f;
        let h = decode(&bad);
        assert!(h.map_or(true, |h| h.records[0].is_err()));
        // A layout outside the instance's memory.
        let mut far = record(1, &[2], 0x1_0000_0000)?;
        if let Some(img) = far.image.as_mut() {
            img.layout.mailbox.start += 64 * M;
        }
        let blob = blob_for(&[far])?;
        let h = decode(&blob).map_err(|_| EINVAL)?;
        assert!(h.records[0].is_err());
        Ok(())
    }
}
