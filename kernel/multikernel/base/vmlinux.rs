// SPDX-License-Identifier: GPL-2.0

//! The kernel inside a bzImage, unpacked once at load so that no start decompresses it.
//!
//! A bzImage carries its kernel (`vmlinux`, an ELF file) compressed, behind a decompressor
//! that every boot runs first: on an instance's CPU, under emulation, about 0.2 s of a 1.4 s
//! start (`Documentation/multikernel/spawn.rst`, "Where a start's time goes"). The boot
//! protocol points a loader at the compressed kernel (`payload_offset`, `payload_length`)
//! and lets it enter the kernel's own 64-bit entry (`startup_64`) directly, as Xen's PVH
//! loader does. So a load does the decompressor's work once:
//!
//! * the payload, in the LZ4 "legacy" format the kernel's `lz4 -l` build writes (a magic
//!   number, then chunks of at most 8 MiB, each behind its 32-bit length), followed by the
//!   decompressed size as 32 bits (what `size_append` adds);
//! * the ELF file it decompresses to: its `PT_LOAD` segments are copied to their physical
//!   addresses relative to the kernel's link address (`pref_address`), as `parse_elf()` in
//!   `arch/x86/boot/compressed/misc.c` does. No relocation is applied: instances run with
//!   `nokaslr`, where the decompressor applies none either.
//!
//! Other compressions are left to the kernel's decompressor ([`unpack`] returns `None`).
//! A payload that claims to be LZ4 and is not well formed is refused: the kernel's own
//! decompressor would fail on it too, only later, on the instance's CPU.
//!
//! Decoding one LZ4 block is the kernel's `LZ4_decompress_safe()` (`sys::lz4`), passed in:
//! this file stays pure and its KUnit suite can feed it hand-made frames.

use crate::base::loader::LoadError;
use kernel::{alloc::VVec, prelude::*};

/// `payload_offset` and `payload_length` in the setup header (boot protocol 2.08).
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;

/// The LZ4 legacy format's magic number, little endian at the start of the stream.
const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
/// The legacy format's chunk: 8 MiB of output at most.
const LZ4_CHUNK: usize = 8 << 20;
/// The longest a chunk's compressed form can be (`LZ4_COMPRESSBOUND(8 MiB)`).
const LZ4_CHUNK_BOUND: usize = LZ4_CHUNK + LZ4_CHUNK / 255 + 16;

/// ELF64 as `vmlinux` is: little endian, x86-64, executable.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// A kernel unpacked from its bzImage: what a start copies to the load address, and where
/// it is entered.
pub(crate) struct Unpacked {
    /// The kernel's loadable segments, placed as they run from the load address on (gaps
    /// between segments are zeros; the kernel clears its own `.bss`).
    pub(crate) image: VVec<u8>,
    /// Offset of `startup_64` from the load address.
    pub(crate) entry: u64,
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([buf[at], buf[at + 1]])
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from(u32_at(buf, at)) | u64::from(u32_at(buf, at + 4)) << 32
}

const fn corrupt(why: &'static str) -> LoadError {
    LoadError::NotKernel(why)
}

/// Unpacks the kernel of the bzImage `file` (its setup header checked by `BzImage::parse`),
/// whose protected-mode part is `payload`, linked to run at `link_address` and needing
/// `init_size` bytes from its load address. `decode` decompresses one LZ4 block into its
/// output buffer and returns the bytes written. `None`: not LZ4, the kernel decompresses
/// itself.
pub(crate) fn unpack(
    file: &[u8],
    payload: &[u8],
    link_address: u64,
    init_size: u64,
    decode: impl Fn(&[u8], &mut [u8]) -> Result<usize>,
) -> Result<Option<Unpacked>, LoadError> {
    let at = u32_at(file, PAYLOAD_OFFSET) as usize;
    let len = u32_at(file, PAYLOAD_LENGTH) as usize;
    let compressed = at
        .checked_add(len)
        .and_then(|end| payload.get(at..end))
        .ok_or(corrupt("payload_offset/payload_length run past the file"))?;
    if compressed.len() < 12 || u32_at(compressed, 0) != LZ4_LEGACY_MAGIC {
        return Ok(None);
    }
    let elf = decompress(compressed, init_size, decode)?;
    place(&elf, link_address, init_size).map(Some)
}

/// Decompresses an LZ4 legacy stream followed by its decompressed size, which must be at
/// most `max` bytes.
fn decompress(
    compressed: &[u8],
    max: u64,
    decode: impl Fn(&[u8], &mut [u8]) -> Result<usize>,
) -> Result<VVec<u8>, LoadError> {
    let (stream, size) = compressed.split_at(compressed.len() - 4);
    let size = u32_at(size, 0) as usize;
    if size as u64 > max || size < EHDR_SIZE {
        return Err(corrupt(
            "decompressed size of the LZ4 kernel is outside init_size",
        ));
    }
    let mut out = VVec::from_elem(0u8, size, GFP_KERNEL).map_err(|_| LoadError::NoMemory)?;
    let (mut inp, mut done) = (4, 0);
    while inp < stream.len() {
        let chunk = stream
            .get(inp..inp + 4)
            .map(|c| u32_at(c, 0) as usize)
            .ok_or(corrupt("LZ4 kernel: truncated chunk length"))?;
        inp += 4;
        // Concatenated streams repeat the magic number.
        if chunk == LZ4_LEGACY_MAGIC as usize {
            continue;
        }
        let block = stream
            .get(inp..inp + chunk)
            .filter(|_| chunk <= LZ4_CHUNK_BOUND)
            .ok_or(corrupt(
                "LZ4 kernel: chunk longer than the stream or the format",
            ))?;
        let room = (size - done).min(LZ4_CHUNK);
        let n = decode(block, &mut out[done..done + room])
            .map_err(|_| corrupt("LZ4 kernel: a chunk does not decode"))?;
        if n > room {
            return Err(corrupt("LZ4 kernel: a chunk decodes past its room"));
        }
        done += n;
        inp += chunk;
    }
    if done != size {
        return Err(corrupt(
            "LZ4 kernel: decompressed size differs from the size recorded",
        ));
    }
    Ok(out)
}

/// Copies the `PT_LOAD` segments of the ELF file `elf` to where they run, relative to the
/// load address, as the decompressor's `parse_elf()` does.
fn place(elf: &[u8], link_address: u64, init_size: u64) -> Result<Unpacked, LoadError> {
    if &elf[..4] != ELF_MAGIC
        || elf[4] != ELFCLASS64
        || elf[5] != ELFDATA2LSB
        || u16_at(elf, 16) != ET_EXEC
        || u16_at(elf, 18) != EM_X86_64
    {
        return Err(corrupt(
            "the LZ4 kernel does not decompress to an x86-64 ELF executable",
        ));
    }
    let (phoff, phentsize, phnum) = (u64_at(elf, 32), u16_at(elf, 54), u16_at(elf, 56));
    let table = usize::try_from(phoff)
        .ok()
        .filter(|_| usize::from(phentsize) == PHDR_SIZE)
        .and_then(|at| {
            let end = at.checked_add(PHDR_SIZE * usize::from(phnum))?;
            elf.get(at..end)
        })
        .ok_or(corrupt(
            "the kernel's ELF program headers run past the file",
        ))?;
    // Where each loadable segment's bytes are, and where they go (offsets from the load
    // address); the end of the image is where the last file-backed byte goes.
    let mut end = 0u64;
    let mut segments = KVec::new();
    for ph in table.chunks_exact(PHDR_SIZE) {
        if u32_at(ph, 0) != PT_LOAD {
            continue;
        }
        let (offset, paddr) = (u64_at(ph, 8), u64_at(ph, 24));
        let (filesz, memsz) = (u64_at(ph, 32), u64_at(ph, 40));
        let to = paddr
            .checked_sub(link_address)
            .filter(|to| filesz <= memsz && to.checked_add(memsz).is_some_and(|e| e <= init_size))
            .ok_or(corrupt(
                "a segment of the kernel lies outside init_size from its link address",
            ))?;
        let from = offset
            .checked_add(filesz)
            .filter(|e| *e <= elf.len() as u64)
            .map(|_| offset as usize)
            .ok_or(corrupt("a segment of the kernel runs past its ELF file"))?;
        segments
            .push((from, to as usize, filesz as usize), GFP_KERNEL)
            .map_err(|_| LoadError::NoMemory)?;
        end = end.max(to + filesz);
    }
    if segments.is_empty() {
        return Err(corrupt("the kernel's ELF file has no loadable segment"));
    }
    let entry = u64_at(elf, 24)
        .checked_sub(link_address)
        .filter(|e| *e < end)
        .ok_or(corrupt("the kernel's entry point lies outside its image"))?;
    let mut image =
        VVec::from_elem(0u8, end as usize, GFP_KERNEL).map_err(|_| LoadError::NoMemory)?;
    for &(from, to, len) in segments.iter() {
        image[to..to + len].copy_from_slice(&elf[from..from + len]);
    }
    Ok(Unpacked { image, entry })
}

#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
#[kunit_tests(multikernel_vmlinux)]
mod tests {
    use super::*;

    const LINK: u64 = 16 << 20;

    /// An LZ4 block of literals only: a valid block the real decoder takes.
    fn literals(out: &mut KVec<u8>, data: &[u8]) -> Result {
        if data.len() < 15 {
            out.push((data.len() as u8) << 4, GFP_KERNEL)?;
        } else {
            out.push(0xf0, GFP_KERNEL)?;
            let mut rest = data.len() - 15;
            while rest >= 255 {
                out.push(255, GFP_KERNEL)?;
                rest -= 255;
            }
            out.push(rest as u8, GFP_KERNEL)?;
        }
        out.extend_from_slice(data, GFP_KERNEL)?;
        Ok(())
    }

    /// An ELF file with two loadable segments (at the link address and 64 bytes above it,
    /// file offsets 0x100 and 0x180) and entry `entry`.
    fn elf(entry: u64) -> Result<KVec<u8>> {
        let mut f = KVec::from_elem(0u8, 0x200, GFP_KERNEL)?;
        f[..4].copy_from_slice(ELF_MAGIC);
        f[4] = ELFCLASS64;
        f[5] = ELFDATA2LSB;
        f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        f[56..58].copy_from_slice(&3u16.to_le_bytes());
        // Two PT_LOADs, and a PT_NOTE (4) in between that is skipped.
        for (i, (kind, offset, paddr, filesz, memsz)) in [
            (PT_LOAD, 0x100u64, LINK, 0x40u64, 0x40u64),
            (4, 0x1c0, 0, 0x10, 0x10),
            (PT_LOAD, 0x180, LINK + 0x80, 0x20, 0x1000),
        ]
        .iter()
        .enumerate()
        {
            let ph = 64 + i * PHDR_SIZE;
            f[ph..ph + 4].copy_from_slice(&kind.to_le_bytes());
            f[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
            f[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
            f[ph + 32..ph + 40].copy_from_slice(&filesz.to_le_bytes());
            f[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        for (i, b) in f[0x100..0x1a0].iter_mut().enumerate() {
            *b = i as u8 | 1;
        }
        Ok(f)
    }

    /// A "file" whose setup header points at an LZ4 legacy stream of `data` in two chunks,
    /// followed by `size`.
    fn file(data: &[u8], size: u32) -> Result<KVec<u8>> {
        let mut f = KVec::from_elem(0u8, 0x400, GFP_KERNEL)?;
        f.extend_from_slice(&LZ4_LEGACY_MAGIC.to_le_bytes(), GFP_KERNEL)?;
        let half = data.len() / 2;
        for part in [&data[..half], &data[half..]] {
            let mut block = KVec::new();
            literals(&mut block, part)?;
            f.extend_from_slice(&(block.len() as u32).to_le_bytes(), GFP_KERNEL)?;
            f.extend_from_slice(&block, GFP_KERNEL)?;
        }
        f.extend_from_slice(&size.to_le_bytes(), GFP_KERNEL)?;
        let len = (f.len() - 0x400) as u32;
        f[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&0x300u32.to_le_bytes());
        f[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&len.to_le_bytes());
        Ok(f)
    }

    fn run(f: &[u8], init_size: u64) -> Result<Option<Unpacked>, LoadError> {
        unpack(f, &f[0x100..], LINK, init_size, crate::sys::lz4::decode)
    }

    #[test]
    fn unpacks_segments() -> Result {
        let e = elf(LINK + 0x10)?;
        let f = file(&e, e.len() as u32)?;
        let k = run(&f, 1 << 20).map_err(|e| e.errno())?.ok_or(EINVAL)?;
        assert_eq!(k.entry, 0x10);
        // The second segment ends at 0x80 + 0x20; its .bss part is not in the image.
        assert_eq!(k.image.len(), 0xa0);
        assert_eq!(&k.image[..0x40], &e[0x100..0x140]);
        assert!(k.image[0x40..0x80].iter().all(|&b| b == 0));
        assert_eq!(&k.image[0x80..0xa0], &e[0x180..0x1a0]);
        Ok(())
    }

    #[test]
    fn other_compressions_and_bad_streams() -> Result {
        let e = elf(LINK)?;
        let good = file(&e, e.len() as u32)?;
        // Not LZ4 (say gzip): the kernel's decompressor does it.
        let mut other = file(&e, e.len() as u32)?;
        other[0x400..0x404].copy_from_slice(&[0x1f, 0x8b, 8, 0]);
        assert!(matches!(run(&other, 1 << 20), Ok(None)));
        let bad = |f: &[u8], init: u64| matches!(run(f, init), Err(LoadError::NotKernel(_)));
        // The recorded size differs from what the stream holds, or exceeds init_size.
        assert!(bad(&file(&e, e.len() as u32 + 1)?, 1 << 20));
        assert!(bad(&file(&e, e.len() as u32 - 1)?, 1 << 20));
        assert!(bad(&good, 0x100));
        // A chunk length past the stream; a payload past the file.
        let mut f = file(&e, e.len() as u32)?;
        f[0x406] = 0x10;
        assert!(bad(&f, 1 << 20));
        let mut f = file(&e, e.len() as u32)?;
        f[PAYLOAD_LENGTH] = f[PAYLOAD_LENGTH].wrapping_add(0x40);
        assert!(bad(&f, 1 << 20));
        // A block the decoder refuses (a match before the start of the output).
        let mut f = file(&e, e.len() as u32)?;
        f[0x408] = 0x0f;
        assert!(bad(&f, 1 << 20));
        Ok(())
    }

    #[test]
    fn bad_elf() -> Result {
        let check = |edit: &dyn Fn(&mut KVec<u8>), init: u64| -> Result<bool> {
            let mut e = elf(LINK)?;
            edit(&mut e);
            let f = file(&e, e.len() as u32)?;
            Ok(matches!(run(&f, init), Err(LoadError::NotKernel(_))))
        };
        assert!(!check(&|_| (), 0x2000)?);
        assert!(check(&|e| e[18] = 3, 0x2000)?); // EM_386
        assert!(check(&|e| e[4] = 1, 0x2000)?); // 32-bit
        assert!(check(&|e| e[56] = 200, 0x2000)?); // headers past the file
                                                   // A header offset that wraps around (a panic, were it added unchecked).
        assert!(check(
            &|e| e[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes()),
            0x2000
        )?);
        // More file bytes than memory for a segment.
        assert!(check(&|e| e[64 + 32] = 0x80, 0x2000)?);
        // The .bss of the second segment ends at 0x1080: past an init_size of 0x1000.
        assert!(check(&|_| (), 0x1000)?);
        // A segment below the link address; one whose bytes are past the file.
        assert!(check(&|e| e[64 + 24 + 3] = 0, 0x2000)?);
        assert!(check(&|e| e[64 + 2 * PHDR_SIZE + 9] = 0x10, 0x2000)?);
        // The entry past the end of the last segment, or below the link address.
        assert!(check(
            &|e| e[24..32].copy_from_slice(&(LINK + 0x100).to_le_bytes()),
            0x2000
        )?);
        assert!(check(
            &|e| e[24..32].copy_from_slice(&(LINK - 1).to_le_bytes()),
            0x2000
        )?);
        Ok(())
    }
}
