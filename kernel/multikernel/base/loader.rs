// SPDX-License-Identifier: GPL-2.0

//! Placing an x86 bzImage, its initrd, boot parameters and command line in an instance's memory.
//!
//! Pure computation: [`BzImage::parse`] checks the image (the x86 boot protocol,
//! `Documentation/arch/x86/boot.rst`), [`Layout::plan`] decides where everything goes inside the
//! instance's range, and [`boot_params`] builds the zero page the kernel will be entered with.
//! Writing it to memory is `kexec.rs`'s job, and only happens once all of this has succeeded,
//! so a refused load never disturbs a previously loaded image.
//!
//! The layout, bottom to top of the instance's memory:
//!
//! ```text
//! start: kernel (protected-mode part), init_size bytes reserved for its decompression
//!        boot_params (4 KiB), command line (page-rounded)
//!        page tables for entering the kernel (128 KiB; the spawn fills them)
//!        mailbox (4 KiB) the instance kernel reports through
//!        park area (8 KiB): where its other CPUs wait to be started, and the GDT, IDT and
//!        stacks all its CPUs enter on
//!        IKC channel (6 MiB + 28 KiB): header, rings and stream area shared with the host
//!                 (`ikc.rs`), then the network link's frame rings (`ikc/net.rs`)
//!        ... free memory of the instance ...
//! end:   initrd (page-aligned, at the top)
//! ```
//!
//! The load address is the start of the instance's memory, which is 2 MiB aligned, which every
//! x86-64 kernel accepts. What is written there is either the bzImage's protected-mode part,
//! entered at its 64-bit entry (load address + [`BZIMAGE_ENTRY`]), which decompresses the kernel
//! over itself at every start; or the kernel already unpacked at load (`vmlinux.rs`), entered at
//! its `startup_64`.

use crate::base::pool::Range;
use kernel::{
    prelude::*,
    ptr::{
        Alignable,
        Alignment, //
    },
};

const PAGE: u64 = 4096;
/// Room for the identity map the kernel is entered with: 1 PGD, PUDs and PMDs (2 MiB pages)
/// for a few GiB, and the entry stub's alias. Filled by the spawn, not by the loader.
pub(crate) const PAGETABLE_BYTES: u64 = 32 * PAGE;
/// The park area: the park loop, and the GDT, IDT and stacks the CPUs enter on.
pub(crate) const PARK_BYTES: u64 = crate::sys::spawn::PARK_BYTES as u64;
/// The inter-kernel channel.
pub(crate) const CHANNEL_BYTES: u64 = crate::base::wire::CHANNEL_BYTES as u64;

/// Boot protocol offsets (`Documentation/arch/x86/boot.rst`, zero-page.rst).
mod off {
    pub(super) const EXT_RAMDISK_IMAGE: usize = 0x0c0;
    pub(super) const EXT_RAMDISK_SIZE: usize = 0x0c4;
    pub(super) const EXT_CMD_LINE_PTR: usize = 0x0c8;
    pub(super) const E820_ENTRIES: usize = 0x1e8;
    pub(super) const SETUP_SECTS: usize = 0x1f1;
    pub(super) const BOOT_FLAG: usize = 0x1fe;
    pub(super) const JUMP: usize = 0x200;
    pub(super) const HEADER: usize = 0x202;
    pub(super) const VERSION: usize = 0x206;
    pub(super) const TYPE_OF_LOADER: usize = 0x210;
    pub(super) const LOADFLAGS: usize = 0x211;
    pub(super) const RAMDISK_IMAGE: usize = 0x218;
    pub(super) const RAMDISK_SIZE: usize = 0x21c;
    pub(super) const CMD_LINE_PTR: usize = 0x228;
    pub(super) const KERNEL_ALIGNMENT: usize = 0x230;
    pub(super) const RELOCATABLE_KERNEL: usize = 0x234;
    pub(super) const XLOADFLAGS: usize = 0x236;
    pub(super) const CMDLINE_SIZE: usize = 0x238;
    pub(super) const PREF_ADDRESS: usize = 0x258;
    pub(super) const INIT_SIZE: usize = 0x260;
    pub(super) const KERNEL_INFO_OFFSET: usize = 0x268;
    pub(super) const E820_TABLE: usize = 0x2d0;
}

/// The bzImage's 64-bit entry point, from its load address.
pub(crate) const BZIMAGE_ENTRY: u64 = 0x200;
/// `xloadflags`: the kernel has a 64-bit entry point at load address + 0x200.
const XLF_KERNEL_64: u16 = 1 << 0;
/// `xloadflags`: the kernel and its boot data may live above 4 GiB.
const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// Oldest protocol with `xloadflags`, `init_size` and 64-bit entry (2.12).
const MIN_VERSION: u16 = 0x020c;
/// Oldest protocol with `kernel_info` (2.15), where an instance kernel declares itself.
const KERNEL_INFO_VERSION: u16 = 0x020f;
/// The record in `kernel_info`'s variable-length data that says "this kernel can run as a
/// multikernel instance" (patch 0008, `arch/x86/boot/compressed/kernel_info.S`), followed by
/// a 32-bit version.
const INSTANCE_RECORD: &[u8; 4] = b"MKIN";
/// The instance protocol this loader speaks.
const INSTANCE_VERSION: u32 = 1;
/// The record that says "this kernel adopts the instances of a host it replaces", followed by
/// the handover version it reads (`handover.rs`).
const HANDOVER_RECORD: &[u8; 4] = b"MKHO";
/// `loadflags` bit 0: the protected-mode code is loaded at 0x100000 or above.
const LOADED_HIGH: u8 = 1 << 0;
/// `type_of_loader`: "undefined", as the boot protocol allows for loaders without an id.
const LOADER_UNDEFINED: u8 = 0xff;
/// E820 type of usable RAM.
const E820_RAM: u32 = 1;
/// E820 type of reserved memory.
const E820_RESERVED: u32 = 2;

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([buf[at], buf[at + 1]])
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn put(page: &mut [u8], at: usize, bytes: &[u8]) {
    page[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Rounds up to whole pages; `None` if that overflows.
fn page_up(value: u64) -> Option<u64> {
    value.align_up(Alignment::new::<{ PAGE as usize }>())
}

/// Why an image cannot be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoadError {
    /// Not an x86-64 bzImage this loader can start (reason for the log).
    NotKernel(&'static str),
    /// The command line is longer than the kernel accepts (`cmdline_size`).
    CmdlineTooLong(u32),
    /// Everything needs this many bytes, more than the instance has.
    TooBig(u64),
    /// The instance's memory starts below the kernel's preferred address (`pref_address`,
    /// 16 MiB): its decompressor would move itself there, outside the instance.
    BelowPreferred(u64),
    /// No memory to unpack the kernel into (`vmlinux.rs`).
    NoMemory,
}

impl LoadError {
    pub(crate) fn errno(self) -> Error {
        match self {
            Self::NotKernel(_) => ENOEXEC,
            Self::CmdlineTooLong(_) => EINVAL,
            Self::TooBig(_) => ENOMEM,
            Self::BelowPreferred(_) => EINVAL,
            Self::NoMemory => ENOMEM,
        }
    }
}

/// A checked bzImage.
pub(crate) struct BzImage<'a> {
    /// The whole file.
    pub(crate) file: &'a [u8],
    /// The protected-mode kernel: what is copied to the load address.
    pub(crate) payload: &'a [u8],
    /// Bytes the kernel needs from its load address to decompress and start.
    pub(crate) init_size: u64,
    /// Longest command line the kernel takes, NUL excluded.
    pub(crate) cmdline_size: u32,
    /// The lowest address the kernel runs at without moving itself (`pref_address`), which is
    /// also the physical address it is linked at (`LOAD_PHYSICAL_ADDR`).
    pub(crate) pref_address: u64,
    above_4g: bool,
}

impl<'a> BzImage<'a> {
    /// Checks `file` is a relocatable x86-64 bzImage with a 64-bit entry point.
    pub(crate) fn parse(file: &'a [u8]) -> Result<Self, LoadError> {
        let payload = payload(file)?;
        if u16_at(file, off::VERSION) < MIN_VERSION {
            return Err(LoadError::NotKernel("boot protocol older than 2.12"));
        }
        let xloadflags = u16_at(file, off::XLOADFLAGS);
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(LoadError::NotKernel("no 64-bit entry point"));
        }
        if file[off::RELOCATABLE_KERNEL] == 0 {
            return Err(LoadError::NotKernel("kernel is not relocatable"));
        }
        let alignment = u32_at(file, off::KERNEL_ALIGNMENT);
        if !alignment.is_power_of_two() || u64::from(alignment) > crate::base::pool::GRANULE {
            return Err(LoadError::NotKernel("kernel alignment above 2 MiB"));
        }
        let init_size = u64::from(u32_at(file, off::INIT_SIZE));
        if init_size < payload.len() as u64 {
            return Err(LoadError::NotKernel("init_size smaller than the kernel"));
        }
        if !declares_instance(file, payload) {
            return Err(LoadError::NotKernel(
                "no multikernel instance support (no MKIN record in its kernel_info): \
                 it would take the machine's shared hardware",
            ));
        }
        let pref = &file[off::PREF_ADDRESS..off::PREF_ADDRESS + 8];
        let mut pref_address = [0u8; 8];
        pref_address.copy_from_slice(pref);
        Ok(Self {
            file,
            payload,
            init_size,
            cmdline_size: u32_at(file, off::CMDLINE_SIZE),
            pref_address: u64::from_le_bytes(pref_address),
            above_4g: xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0,
        })
    }

    /// The setup header as the file has it: from 0x1f1 to its end (0x202 + the byte at 0x201).
    fn setup_header(&self) -> &'a [u8] {
        let end = (off::HEADER + usize::from(self.file[off::JUMP + 1])).min(0x280);
        &self.file[off::SETUP_SECTS..end]
    }
}

/// The protected-mode part of a bzImage `file` (after its setup sectors), once its x86 boot
/// header is checked.
fn payload(file: &[u8]) -> Result<&[u8], LoadError> {
    if file.len() < 0x400 {
        return Err(LoadError::NotKernel("file too small for a bzImage"));
    }
    if u16_at(file, off::BOOT_FLAG) != 0xaa55 || &file[off::HEADER..off::HEADER + 4] != b"HdrS" {
        return Err(LoadError::NotKernel("no x86 boot header (HdrS)"));
    }
    let setup_sects = match file[off::SETUP_SECTS] {
        0 => 4,
        n => usize::from(n),
    };
    let payload_start = (setup_sects + 1) * 512;
    if payload_start >= file.len() {
        return Err(LoadError::NotKernel(
            "setup sectors run past the end of the file",
        ));
    }
    Ok(&file[payload_start..])
}

/// Whether the kernel declares that it can run as an instance: a `kernel_info` (boot protocol
/// 2.15) whose variable-length data holds the [`INSTANCE_RECORD`] with our
/// [`INSTANCE_VERSION`]. `kernel_info_offset` counts from the start of `payload`.
fn declares_instance(file: &[u8], payload: &[u8]) -> bool {
    kernel_info_records(file, payload).is_some_and(|mut r| {
        r.any(|(tag, value)| tag == *INSTANCE_RECORD && value == INSTANCE_VERSION)
    })
}

/// The records of a `kernel_info` (boot protocol 2.15) in its variable-length data: 4-byte
/// aligned, a tag then its 32-bit value. `None` without a well-formed `kernel_info`.
fn kernel_info_records<'a>(
    file: &[u8],
    payload: &'a [u8],
) -> Option<impl Iterator<Item = ([u8; 4], u32)> + 'a> {
    if u16_at(file, off::VERSION) < KERNEL_INFO_VERSION {
        return None;
    }
    let at = u32_at(file, off::KERNEL_INFO_OFFSET) as usize;
    let info = payload.get(at..).filter(|info| info.len() >= 12)?;
    if &info[..4] != b"LToP" {
        return None;
    }
    let (fixed, total) = (u32_at(info, 4) as usize, u32_at(info, 8) as usize);
    let data = info.get(fixed..total).filter(|_| fixed >= 12)?;
    Some(
        data.windows(8)
            .step_by(4)
            .map(|r| ([r[0], r[1], r[2], r[3]], u32_at(r, 4))),
    )
}

/// The handover version a kernel image declares it adopts instances with (its `MKHO`
/// record, patch 0008); 0 if it is no bzImage or declares none (a kernel without the
/// subsystem). Checked for the kernel a host update boots (`handover.rs`).
pub(crate) fn handover_version(file: &[u8]) -> u32 {
    let Ok(payload) = payload(file) else {
        return 0;
    };
    kernel_info_records(file, payload)
        .and_then(|mut r| r.find(|(tag, _)| tag == HANDOVER_RECORD))
        .map_or(0, |(_, version)| version)
}

/// Where the pieces of a load go, as physical ranges inside the instance's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) kernel: Range,
    pub(crate) boot_params: Range,
    pub(crate) cmdline: Range,
    /// Page-table pages for the spawn's identity map: inside the instance, so the entered
    /// kernel can read (and extend) the tables it starts on.
    pub(crate) pagetables: Range,
    /// A page the instance kernel writes to when it has booted, and through which it starts
    /// its other CPUs (`instance_x86.c`).
    pub(crate) mailbox: Range,
    /// A page holding the loop the instance's other CPUs wait in (`spawn_entry.S`).
    pub(crate) park: Range,
    /// The inter-kernel channel (`ikc.rs`), set up by the host at each start.
    pub(crate) channel: Range,
    pub(crate) initrd: Option<Range>,
    /// The 64-bit entry point: the kernel's load address + [`BZIMAGE_ENTRY`], or + the offset
    /// of `startup_64` in a kernel unpacked at load.
    pub(crate) entry: u64,
}

impl Layout {
    /// Plans a load of `image` with an initrd of `initrd_len` bytes (if any) and a command line
    /// of `cmdline_len` bytes (NUL excluded) into `memory`, entered `entry` bytes above its
    /// load address ([`BZIMAGE_ENTRY`], or `startup_64` of the unpacked kernel).
    pub(crate) fn plan(
        memory: Range,
        image: &BzImage<'_>,
        initrd_len: Option<u64>,
        cmdline_len: u64,
        entry: u64,
    ) -> Result<Self, LoadError> {
        if cmdline_len > u64::from(image.cmdline_size) {
            return Err(LoadError::CmdlineTooLong(image.cmdline_size));
        }
        // Loaded lower, the decompressor moves the kernel to its preferred address: outside
        // the instance.
        if memory.start < image.pref_address {
            return Err(LoadError::BelowPreferred(image.pref_address));
        }
        let too_big = |needed: Option<u64>| LoadError::TooBig(needed.unwrap_or(u64::MAX));
        let kernel_len = page_up(image.init_size).ok_or(too_big(None))?;
        let cmdline_pages = page_up(cmdline_len + 1).ok_or(too_big(None))?;
        let initrd_pages = match initrd_len {
            Some(len) => page_up(len).ok_or(too_big(None))?,
            None => 0,
        };
        let needed = kernel_len
            .checked_add(PAGE)
            .and_then(|n| n.checked_add(cmdline_pages))
            .and_then(|n| n.checked_add(PAGETABLE_BYTES + PAGE + PARK_BYTES + CHANNEL_BYTES))
            .and_then(|n| n.checked_add(initrd_pages));
        match needed {
            Some(needed) if needed <= memory.len => (),
            needed => return Err(too_big(needed)),
        }
        // The kernel's span is all it may use while decompressing and starting.
        let kernel = Range {
            start: memory.start,
            len: kernel_len,
        };
        let boot_params = Range {
            start: memory.start + kernel_len,
            len: PAGE,
        };
        let cmdline = Range {
            start: boot_params.end(),
            len: cmdline_len + 1,
        };
        let pagetables = Range {
            start: boot_params.end() + cmdline_pages,
            len: PAGETABLE_BYTES,
        };
        let mailbox = Range {
            start: pagetables.end(),
            len: PAGE,
        };
        let park = Range {
            start: mailbox.end(),
            len: PARK_BYTES,
        };
        let channel = Range {
            start: park.end(),
            len: CHANNEL_BYTES,
        };
        let initrd = initrd_len.map(|len| Range {
            start: memory.end() - initrd_pages,
            len,
        });
        let layout = Self {
            kernel,
            boot_params,
            cmdline,
            pagetables,
            mailbox,
            park,
            channel,
            initrd,
            entry: memory.start + entry,
        };
        // Boot data the kernel reads through 32-bit fields must sit below 4 GiB unless the
        // kernel says it copes (every x86-64 kernel since 3.9 does).
        if !image.above_4g && memory.end() > 1 << 32 {
            return Err(LoadError::NotKernel("kernel cannot be loaded above 4 GiB"));
        }
        Ok(layout)
    }
}

/// Builds the boot parameters ("zero page") for `image` placed as `layout` says, seeing only
/// `memory` as RAM.
pub(crate) fn boot_params(
    image: &BzImage<'_>,
    layout: &Layout,
    memory: Range,
) -> Result<KBox<[u8; 4096]>> {
    let mut page = KBox::new([0u8; 4096], GFP_KERNEL)?;
    let header = image.setup_header();
    put(&mut page[..], off::SETUP_SECTS, header);
    page[off::TYPE_OF_LOADER] = LOADER_UNDEFINED;
    page[off::LOADFLAGS] |= LOADED_HIGH;
    let split = |value: u64| ((value & 0xffff_ffff) as u32, (value >> 32) as u32);
    let (lo, hi) = split(layout.cmdline.start);
    put(&mut page[..], off::CMD_LINE_PTR, &lo.to_le_bytes());
    put(&mut page[..], off::EXT_CMD_LINE_PTR, &hi.to_le_bytes());
    if let Some(initrd) = layout.initrd {
        let (lo, hi) = split(initrd.start);
        put(&mut page[..], off::RAMDISK_IMAGE, &lo.to_le_bytes());
        put(&mut page[..], off::EXT_RAMDISK_IMAGE, &hi.to_le_bytes());
        let (lo, hi) = split(initrd.len);
        put(&mut page[..], off::RAMDISK_SIZE, &lo.to_le_bytes());
        put(&mut page[..], off::EXT_RAMDISK_SIZE, &hi.to_le_bytes());
    }
    // The instance's memory is all the RAM the new kernel is told about, less the pages its
    // CPUs are entered and parked with (page tables, mailbox, park loop) and the channel it
    // shares with the host: those are reserved, so its allocator never hands them out.
    let reserved = Range {
        start: layout.pagetables.start,
        len: layout.channel.end() - layout.pagetables.start,
    };
    let entries = [
        (memory.start, reserved.start - memory.start, E820_RAM),
        (reserved.start, reserved.len, E820_RESERVED),
        (reserved.end(), memory.end() - reserved.end(), E820_RAM),
    ];
    page[off::E820_ENTRIES] = entries.len() as u8;
    for (i, (start, len, kind)) in entries.iter().enumerate() {
        let at = off::E820_TABLE + 20 * i;
        put(&mut page[..], at, &start.to_le_bytes());
        put(&mut page[..], at + 8, &len.to_le_bytes());
        put(&mut page[..], at + 16, &kind.to_le_bytes());
    }
    Ok(page)
}

#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
#[kunit_tests(multikernel_loader)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    /// A minimal bzImage: 4 setup sectors (setup_sects = 0 means 4), a header, a payload.
    fn fake_image(payload_len: usize) -> Result<KVec<u8>> {
        let mut file = KVec::from_elem(0u8, 5 * 512 + payload_len, GFP_KERNEL)?;
        file[off::BOOT_FLAG..off::BOOT_FLAG + 2].copy_from_slice(&0xaa55u16.to_le_bytes());
        file[off::JUMP + 1] = 0x6a; // header ends at 0x26c
        file[off::HEADER..off::HEADER + 4].copy_from_slice(b"HdrS");
        file[off::VERSION..off::VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        file[off::LOADFLAGS] = LOADED_HIGH;
        file[off::KERNEL_ALIGNMENT..off::KERNEL_ALIGNMENT + 4]
            .copy_from_slice(&(2 * M as u32).to_le_bytes());
        file[off::RELOCATABLE_KERNEL] = 1;
        file[off::XLOADFLAGS..off::XLOADFLAGS + 2]
            .copy_from_slice(&(XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G).to_le_bytes());
        file[off::CMDLINE_SIZE..off::CMDLINE_SIZE + 4].copy_from_slice(&2047u32.to_le_bytes());
        file[off::INIT_SIZE..off::INIT_SIZE + 4].copy_from_slice(&(8 * M as u32).to_le_bytes());
        file[off::PREF_ADDRESS..off::PREF_ADDRESS + 8].copy_from_slice(&(16 * M).to_le_bytes());
        // kernel_info at payload offset 64: header, then the MKIN record, version 1.
        let info = 5 * 512 + 64;
        file[off::KERNEL_INFO_OFFSET..off::KERNEL_INFO_OFFSET + 4]
            .copy_from_slice(&64u32.to_le_bytes());
        file[info..info + 4].copy_from_slice(b"LToP");
        file[info + 4..info + 8].copy_from_slice(&16u32.to_le_bytes());
        file[info + 8..info + 12].copy_from_slice(&24u32.to_le_bytes());
        file[info + 16..info + 20].copy_from_slice(b"MKIN");
        file[info + 20..info + 24].copy_from_slice(&1u32.to_le_bytes());
        Ok(file)
    }

    /// The handover record is found where the kernel declares it, and nowhere else.
    #[test]
    fn handover_record() -> Result {
        let info = 5 * 512 + 64;
        let mut file = fake_image(1000)?;
        assert_eq!(handover_version(&file), 0);
        // A second record after MKIN: "MKHO", version 7.
        file[info + 8..info + 12].copy_from_slice(&32u32.to_le_bytes());
        file[info + 24..info + 28].copy_from_slice(b"MKHO");
        file[info + 28..info + 32].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(handover_version(&file), 7);
        assert!(BzImage::parse(&file).is_ok());
        assert_eq!(handover_version(&file[..0x3ff]), 0);
        assert_eq!(handover_version(&file[..info + 20]), 0);
        file[off::HEADER] = b'X';
        assert_eq!(handover_version(&file), 0);
        Ok(())
    }

    fn not_kernel(file: &[u8]) -> bool {
        matches!(BzImage::parse(file), Err(LoadError::NotKernel(_)))
    }

    #[test]
    fn parse_good_and_bad() -> Result {
        let file = fake_image(1000)?;
        let image = BzImage::parse(&file).map_err(|e| e.errno())?;
        assert_eq!(image.payload.len(), 1000);
        assert_eq!(image.init_size, 8 * M);
        assert_eq!(image.cmdline_size, 2047);

        assert!(not_kernel(&file[..0x3ff]));
        assert!(not_kernel(&[0u8; 8192]));
        let mut bad = fake_image(1000)?;
        bad[off::HEADER] = b'X';
        assert!(not_kernel(&bad));
        let mut bad = fake_image(1000)?;
        bad[off::VERSION..off::VERSION + 2].copy_from_slice(&0x020bu16.to_le_bytes());
        assert!(not_kernel(&bad));
        let mut bad = fake_image(1000)?;
        bad[off::XLOADFLAGS] = 0;
        assert!(not_kernel(&bad));
        let mut bad = fake_image(1000)?;
        bad[off::RELOCATABLE_KERNEL] = 0;
        assert!(not_kernel(&bad));
        let mut bad = fake_image(1000)?;
        bad[off::SETUP_SECTS] = 200;
        assert!(not_kernel(&bad));
        let mut bad = fake_image(1000)?;
        bad[off::INIT_SIZE..off::INIT_SIZE + 4].copy_from_slice(&10u32.to_le_bytes());
        assert!(not_kernel(&bad));
        let mut bad = fake_image(1000)?;
        bad[off::KERNEL_ALIGNMENT..off::KERNEL_ALIGNMENT + 4]
            .copy_from_slice(&(3 * M as u32).to_le_bytes());
        assert!(not_kernel(&bad));
        // An image that does not declare instance support (a distro kernel), or another
        // version of the instance protocol, or a kernel_info running past the file.
        let info = 5 * 512 + 64;
        let mut bad = fake_image(1000)?;
        bad[info + 16] = b'X';
        assert!(not_kernel(&bad));
        let mut bad = fake_image(1000)?;
        bad[info + 20] = 2;
        assert!(not_kernel(&bad));
        let mut bad = fake_image(1000)?;
        bad[info + 8..info + 12].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(not_kernel(&bad));
        let mut bad = fake_image(1000)?;
        bad[off::KERNEL_INFO_OFFSET..off::KERNEL_INFO_OFFSET + 4]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(not_kernel(&bad));
        let mut bad = fake_image(1000)?;
        bad[off::VERSION..off::VERSION + 2].copy_from_slice(&0x020eu16.to_le_bytes());
        assert!(not_kernel(&bad));
        assert_eq!(LoadError::NotKernel("x").errno(), ENOEXEC);
        Ok(())
    }

    #[test]
    fn layout_inside_memory() -> Result {
        let file = fake_image(3000)?;
        let image = BzImage::parse(&file).map_err(|e| e.errno())?;
        let memory = Range {
            start: 0x4000_0000,
            len: 64 * M,
        };
        let layout =
            Layout::plan(memory, &image, Some(5000), 10, BZIMAGE_ENTRY).map_err(|e| e.errno())?;
        assert_eq!(
            layout.kernel,
            Range {
                start: memory.start,
                len: 8 * M
            }
        );
        assert_eq!(layout.entry, memory.start + 0x200);
        assert_eq!(layout.boot_params.start, memory.start + 8 * M);
        assert_eq!(
            layout.cmdline,
            Range {
                start: memory.start + 8 * M + 4096,
                len: 11
            }
        );
        let initrd = layout.initrd.ok_or(EINVAL)?;
        assert_eq!(initrd.len, 5000);
        assert_eq!(initrd.start % 4096, 0);
        assert!(initrd.end() <= memory.end());
        assert_eq!(layout.pagetables.start, memory.start + 8 * M + 2 * 4096);
        assert_eq!(layout.pagetables.len, PAGETABLE_BYTES);
        assert_eq!(layout.mailbox.start, layout.pagetables.end());
        assert_eq!(layout.park.start, layout.mailbox.end());
        assert_eq!(
            layout.channel,
            Range {
                start: layout.park.end(),
                len: CHANNEL_BYTES
            }
        );
        assert!(initrd.start >= layout.channel.end());

        // No initrd, empty command line.
        let layout = Layout::plan(memory, &image, None, 0, BZIMAGE_ENTRY).map_err(|e| e.errno())?;
        assert_eq!(layout.initrd, None);
        assert_eq!(layout.cmdline.len, 1);
        Ok(())
    }

    #[test]
    fn layout_refusals() -> Result {
        let file = fake_image(3000)?;
        let image = BzImage::parse(&file).map_err(|e| e.errno())?;
        // 8 MiB init_size + boot params + command line: 2 MiB is not enough, and says how much.
        let small = Range {
            start: 0x4000_0000,
            len: 2 * M,
        };
        assert_eq!(
            Layout::plan(small, &image, None, 0, BZIMAGE_ENTRY),
            Err(LoadError::TooBig(
                8 * M + 3 * 4096 + PARK_BYTES + PAGETABLE_BYTES + CHANNEL_BYTES
            ))
        );
        assert_eq!(
            Layout::plan(small, &image, None, 0, BZIMAGE_ENTRY)
                .err()
                .map(|e| e.errno()),
            Some(ENOMEM)
        );
        // Exactly enough fits.
        let exact = Range {
            start: 0x4000_0000,
            len: 8 * M + 3 * 4096 + PARK_BYTES + PAGETABLE_BYTES + CHANNEL_BYTES,
        };
        assert!(Layout::plan(exact, &image, None, 0, BZIMAGE_ENTRY).is_ok());
        let big = Range {
            start: 0x4000_0000,
            len: 64 * M,
        };
        assert_eq!(
            Layout::plan(big, &image, Some(60 * M), 0, BZIMAGE_ENTRY),
            Err(LoadError::TooBig(
                68 * M + 3 * 4096 + PARK_BYTES + PAGETABLE_BYTES + CHANNEL_BYTES
            ))
        );
        assert_eq!(
            Layout::plan(big, &image, Some(u64::MAX), 0, BZIMAGE_ENTRY),
            Err(LoadError::TooBig(u64::MAX))
        );
        assert_eq!(
            Layout::plan(big, &image, None, 2048, BZIMAGE_ENTRY),
            Err(LoadError::CmdlineTooLong(2047))
        );
        assert!(Layout::plan(big, &image, None, 2047, BZIMAGE_ENTRY).is_ok());
        // Below 16 MiB the decompressor would move the kernel out of the instance.
        let low = Range {
            start: 2 * M,
            len: 64 * M,
        };
        assert_eq!(
            Layout::plan(low, &image, None, 0, BZIMAGE_ENTRY),
            Err(LoadError::BelowPreferred(16 * M))
        );
        assert_eq!(LoadError::BelowPreferred(16 * M).errno(), EINVAL);
        Ok(())
    }

    #[test]
    fn zero_page() -> Result {
        let file = fake_image(3000)?;
        let image = BzImage::parse(&file).map_err(|e| e.errno())?;
        let memory = Range {
            start: 0x1_4000_0000,
            len: 64 * M,
        };
        let layout =
            Layout::plan(memory, &image, Some(5000), 10, BZIMAGE_ENTRY).map_err(|e| e.errno())?;
        let page = boot_params(&image, &layout, memory)?;
        // The setup header is the file's, with the loader's fields filled in.
        assert_eq!(&page[off::HEADER..off::HEADER + 4], b"HdrS");
        assert_eq!(u16_at(&page[..], off::VERSION), 0x020f);
        assert_eq!(page[off::TYPE_OF_LOADER], 0xff);
        assert_eq!(page[off::LOADFLAGS] & LOADED_HIGH, LOADED_HIGH);
        let cmd = u64::from(u32_at(&page[..], off::CMD_LINE_PTR))
            | u64::from(u32_at(&page[..], off::EXT_CMD_LINE_PTR)) << 32;
        assert_eq!(cmd, layout.cmdline.start);
        let initrd = layout.initrd.ok_or(EINVAL)?;
        let rd = u64::from(u32_at(&page[..], off::RAMDISK_IMAGE))
            | u64::from(u32_at(&page[..], off::EXT_RAMDISK_IMAGE)) << 32;
        assert_eq!(rd, initrd.start);
        assert_eq!(u32_at(&page[..], off::RAMDISK_SIZE), 5000);
        // Three e820 entries: RAM, the reserved entry pages and channel, RAM; together the
        // instance's memory.
        assert_eq!(page[off::E820_ENTRIES], 3);
        let entry = |i: usize| {
            let at = off::E820_TABLE + 20 * i;
            let mut a = [0u8; 8];
            let mut l = [0u8; 8];
            a.copy_from_slice(&page[at..at + 8]);
            l.copy_from_slice(&page[at + 8..at + 16]);
            (
                u64::from_le_bytes(a),
                u64::from_le_bytes(l),
                u32_at(&page[..], at + 16),
            )
        };
        assert_eq!(
            entry(0),
            (
                memory.start,
                layout.pagetables.start - memory.start,
                E820_RAM
            )
        );
        assert_eq!(
            entry(1),
            (
                layout.pagetables.start,
                layout.channel.end() - layout.pagetables.start,
                E820_RESERVED
            )
        );
        assert_eq!(entry(2).0, layout.channel.end());
        assert_eq!(entry(2).0 + entry(2).1, memory.end());
        assert_eq!(entry(2).2, E820_RAM);
        Ok(())
    }
}
