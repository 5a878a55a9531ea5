// SPDX-License-Identifier: GPL-2.0

//! The initramfs of `mkctl run`: a newc cpio archive (uncompressed: the kernel takes it as it
//! is) holding mkctl itself as `/init`, the program, the shared libraries both need (as their
//! dynamic loader lists them) and the files given with `--file`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// What goes into the archive: path inside -> (mode, contents).
#[derive(Default)]
pub struct Archive {
    entries: BTreeMap<PathBuf, (u32, Vec<u8>)>,
}

/// Regular file and directory mode bits of a cpio entry.
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

impl Archive {
    /// Adds `data` at `dst` (absolute, no `..`) with permission bits `perm`, and its
    /// directories.
    pub fn add_bytes(&mut self, dst: &Path, perm: u32, data: Vec<u8>) -> Result<(), String> {
        let rel = relative(dst)?;
        if u32::try_from(data.len()).is_err() {
            return Err(format!(
                "{}: 4 GiB or more does not fit a cpio entry",
                dst.display()
            ));
        }
        if matches!(self.entries.get(&rel), Some((mode, _)) if mode & S_IFDIR != 0) {
            return Err(format!("{}: a directory of the initramfs", dst.display()));
        }
        let mut dir = PathBuf::new();
        if let Some(parent) = rel.parent() {
            for c in parent.components() {
                dir.push(c);
                self.entries
                    .entry(dir.clone())
                    .or_insert((S_IFDIR | 0o755, Vec::new()));
            }
        }
        self.entries.insert(rel, (S_IFREG | (perm & 0o7777), data));
        Ok(())
    }

    /// Adds the file `src` (symlinks followed) at `dst`, with its permission bits.
    pub fn add_file(&mut self, src: &Path, dst: &Path) -> Result<(), String> {
        let meta = fs::metadata(src).map_err(|e| format!("{}: {e}", src.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", src.display()));
        }
        let data = fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
        self.add_bytes(dst, meta.permissions().mode(), data)
    }

    /// Adds the executable `src` at `dst` and the shared libraries it needs, each at its own
    /// path (the dynamic loader's too).
    pub fn add_program(&mut self, src: &Path, dst: &Path) -> Result<(), String> {
        self.add_file(src, dst)?;
        // Its headers from the copy just read.
        let data = self
            .entries
            .get(&relative(dst)?)
            .map_or(&[][..], |(_, d)| d);
        let libs = libraries(src, data)?;
        for lib in libs {
            if !self.entries.contains_key(&relative(&lib)?) {
                self.add_file(&lib, &lib)?;
            }
        }
        Ok(())
    }

    /// The newc cpio archive.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        for (ino, (path, (mode, data))) in (1u32..).zip(self.entries.iter()) {
            entry(out, ino, &path.to_string_lossy(), *mode, data)?;
        }
        entry(out, 0, "TRAILER!!!", 0, &[])
    }
}

/// `dst` without its leading `/`, refused if it climbs out (`..`) or is empty.
fn relative(dst: &Path) -> Result<PathBuf, String> {
    let mut rel = PathBuf::new();
    for c in dst.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            _ => return Err(format!("{}: only plain absolute paths", dst.display())),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(format!("{}: not a file path", dst.display()));
    }
    Ok(rel)
}

fn entry(out: &mut impl Write, ino: u32, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
    let namesize = name.len() + 1;
    let header = format!(
        "070701{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}\
         {maj:08x}{min:08x}{rmaj:08x}{rmin:08x}{namesize:08x}{check:08x}",
        uid = 0,
        gid = 0,
        nlink = if mode & S_IFDIR != 0 { 2 } else { 1 },
        mtime = 0,
        size = data.len(),
        maj = 0,
        min = 0,
        rmaj = 0,
        rmin = 0,
        check = 0,
    );
    out.write_all(header.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    pad(out, 110 + namesize)?;
    out.write_all(data)?;
    pad(out, data.len())
}

fn pad(out: &mut impl Write, len: usize) -> io::Result<()> {
    out.write_all(&[0u8; 3][..(4 - len % 4) % 4])
}

/// The shared libraries `program` (its contents: `data`) needs, with the dynamic loader, as
/// that loader resolves them (`LOADER --list PROGRAM`, the loader's own listing, which `ldd`
/// also relies on; calling it directly spares the `ldd` shell script and its two extra loader
/// runs, seconds under emulation); none for a static program, a file that is not ELF (a script: its
/// interpreter is the user's to pack) or one whose loader this host lacks (a foreign
/// program, packed alone as `ldd` would have had it).
pub fn libraries(program: &Path, data: &[u8]) -> Result<Vec<PathBuf>, String> {
    let Some(loader) = interpreter(data, program)? else {
        return Ok(Vec::new());
    };
    // A name without a `/` would be looked up on the library path, one starting with `-`
    // taken for an option: a relative path goes as `./PATH`.
    let program = if program.is_absolute() {
        program.to_path_buf()
    } else {
        Path::new(".").join(program)
    };
    let out = match Command::new(&loader).arg("--list").arg(&program).output() {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!(
                "{}: cannot run its dynamic loader {}: {e}",
                program.display(),
                loader.display()
            ))
        }
    };
    // A missing library: glibc's and musl's loaders stop (status 127) and name the first on
    // stderr; a "=> not found" line (as `ldd`'s tracing mode prints) is said as such.
    let libs = parse_ldd(&String::from_utf8_lossy(&out.stdout))?;
    if !out.status.success() {
        return Err(format!(
            "{}: its dynamic loader {} cannot list its libraries: {}",
            program.display(),
            loader.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(libs)
}

/// The dynamic loader the ELF file `data` asks for (its `PT_INTERP`); `None` if it is not
/// ELF or has none (static). 32- and 64-bit, either byte order; headers or a path outside
/// the file are an error (`program` names the file in it).
pub fn interpreter(data: &[u8], program: &Path) -> Result<Option<PathBuf>, String> {
    const PT_INTERP: u64 = 3;
    if data.len() < 16 || &data[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let bad = |what: &str| format!("{}: a malformed ELF file ({what})", program.display());
    let wide = match data[4] {
        1 => false,
        2 => true,
        _ => return Err(bad("class")),
    };
    let little = match data[5] {
        1 => true,
        2 => false,
        _ => return Err(bad("byte order")),
    };
    // The `len`-byte field at `base + off` (any sum that overflows is outside the file).
    let field = |base: u64, off: u64, len: usize| -> Result<u64, String> {
        let bytes = base
            .checked_add(off)
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| data.get(at..at.checked_add(len)?))
            .ok_or_else(|| bad("header beyond the end of the file"))?;
        let mut v = 0u64;
        for i in 0..len {
            let b = if little { bytes[len - 1 - i] } else { bytes[i] };
            v = (v << 8) | u64::from(b);
        }
        Ok(v)
    };
    // e_phoff, e_phentsize, e_phnum; then per header p_type, p_offset, p_filesz.
    let (phoff, phentsize, phnum) = if wide {
        (field(0, 32, 8)?, field(0, 54, 2)?, field(0, 56, 2)?)
    } else {
        (field(0, 28, 4)?, field(0, 42, 2)?, field(0, 44, 2)?)
    };
    let min_entry = if wide { 56 } else { 32 };
    if phnum > 0 && phentsize < min_entry {
        return Err(bad("program header size"));
    }
    for i in 0..phnum {
        // phentsize and i are at most 65535: their product fits.
        let at = phoff
            .checked_add(i * phentsize)
            .ok_or_else(|| bad("program headers"))?;
        if field(at, 0, 4)? != PT_INTERP {
            continue;
        }
        let (offset, size) = if wide {
            (field(at, 8, 8)?, field(at, 32, 8)?)
        } else {
            (field(at, 4, 4)?, field(at, 16, 4)?)
        };
        let path = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, n)| data.get(o..o.checked_add(n)?))
            .ok_or_else(|| bad("loader path beyond the end of the file"))?;
        let path = path.split(|&b| b == 0).next().unwrap_or_default();
        if path.first() != Some(&b'/') {
            return Err(bad("loader path not absolute"));
        }
        use std::os::unix::ffi::OsStrExt;
        return Ok(Some(PathBuf::from(std::ffi::OsStr::from_bytes(path))));
    }
    Ok(None)
}

/// The library paths in `ldd` output: `name => /path (addr)` and `/path (addr)` lines.
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("=> not found") {
            return Err(format!("a library is missing: {line}"));
        }
        // "name => /path (addr)", "/path (addr)", and "/loader => /its/real/path (addr)",
        // where the program asks for the left path: both are packed.
        let (left, right) = match line.split_once("=>") {
            Some((l, r)) => (l.trim(), Some(r.trim())),
            None => (line, None),
        };
        for side in [Some(left), right].into_iter().flatten() {
            let path = side.split_whitespace().next().unwrap_or("");
            if path.starts_with('/') && !libs.iter().any(|l: &PathBuf| l.as_os_str() == path) {
                libs.push(PathBuf::from(path));
            }
        }
    }
    Ok(libs)
}

/// Where `program` is: itself if it has a `/`, else the first match in `$PATH`.
pub fn find_program(program: &str) -> Result<PathBuf, String> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{program}: no such file"))
        };
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(program);
        if p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        {
            return Ok(p);
        }
    }
    Err(format!("{program}: not found in $PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tlibfoo.so => not found\n").is_err());
        assert_eq!(
            parse_ldd("\t/lib64/ld-linux-x86-64.so.2 => /usr/lib64/ld-linux-x86-64.so.2 (0x1)\n")
                .unwrap(),
            vec![
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
                PathBuf::from("/usr/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    /// An ELF header and program headers as a linker lays them out: `wide` 64-bit, `little`
    /// endian; a PT_INTERP naming `loader` (if any) after a PT_LOAD.
    fn elf(wide: bool, little: bool, loader: Option<&[u8]>) -> Vec<u8> {
        let put = |v: &mut Vec<u8>, at: usize, len: usize, x: u64| {
            for i in 0..len {
                let b = (x >> (8 * i)) as u8;
                v[if little { at + i } else { at + len - 1 - i }] = b;
            }
        };
        let (eh, ph) = if wide { (64, 56) } else { (52, 32) };
        let mut v = vec![0u8; eh + 2 * ph + 64];
        v[..4].copy_from_slice(b"\x7fELF");
        v[4] = if wide { 2 } else { 1 };
        v[5] = if little { 1 } else { 2 };
        let interp_at = eh + 2 * ph;
        if wide {
            put(&mut v, 32, 8, eh as u64);
            put(&mut v, 54, 2, ph as u64);
            put(&mut v, 56, 2, 2);
        } else {
            put(&mut v, 28, 4, eh as u64);
            put(&mut v, 42, 2, ph as u64);
            put(&mut v, 44, 2, 2);
        }
        put(&mut v, eh, 4, 1); // PT_LOAD
        if let Some(path) = loader {
            let at = eh + ph;
            put(&mut v, at, 4, 3); // PT_INTERP
            if wide {
                put(&mut v, at + 8, 8, interp_at as u64);
                put(&mut v, at + 32, 8, path.len() as u64 + 1);
            } else {
                put(&mut v, at + 4, 4, interp_at as u64);
                put(&mut v, at + 16, 4, path.len() as u64 + 1);
            }
            v[interp_at..interp_at + path.len()].copy_from_slice(path);
        }
        v
    }

    #[test]
    fn elf_interpreter() {
        let p = Path::new("prog");
        let ld = b"/lib64/ld-linux-x86-64.so.2";
        for (wide, little) in [(true, true), (true, false), (false, true), (false, false)] {
            assert_eq!(
                interpreter(&elf(wide, little, Some(ld)), p).unwrap(),
                Some(PathBuf::from("/lib64/ld-linux-x86-64.so.2")),
                "wide {wide} little {little}"
            );
            // Static: no PT_INTERP.
            assert_eq!(interpreter(&elf(wide, little, None), p).unwrap(), None);
        }
        // Not ELF (a script), or too short to be: nothing to pack.
        assert_eq!(interpreter(b"#!/bin/sh\necho hi\n", p).unwrap(), None);
        assert_eq!(interpreter(b"\x7fELF", p).unwrap(), None);
        // Malformed: a bad class, headers or path outside what was read, a relative path.
        let mut bad = elf(true, true, Some(ld));
        bad[4] = 9;
        assert!(interpreter(&bad, p).is_err());
        let whole = elf(true, true, Some(ld));
        assert!(interpreter(&whole[..100], p).is_err());
        assert!(interpreter(&whole[..whole.len() - 60], p).is_err());
        assert!(interpreter(&elf(true, true, Some(b"ld.so")), p).is_err());
        let mut tiny = elf(true, true, Some(ld));
        tiny[54] = 8; // e_phentsize smaller than a program header
        assert!(interpreter(&tiny, p).is_err());
        // e_phoff near the top of u64: an error, not an overflow.
        let mut far = elf(true, true, Some(ld));
        far[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
        assert!(interpreter(&far, p).is_err());
    }

    /// A program whose loader this host does not have is packed alone (no libraries).
    #[test]
    fn foreign_loader() {
        let path = std::env::temp_dir().join(format!("mkctl-foreign-{}", std::process::id()));
        let data = elf(true, true, Some(b"/no/such/ld.so"));
        fs::write(&path, &data).unwrap();
        let libs = libraries(&path, &data);
        let _ = fs::remove_file(&path);
        assert_eq!(libs.unwrap(), Vec::<PathBuf>::new());
    }

    /// This test program is dynamic: its loader lists libc, and the loader itself.
    #[test]
    fn own_libraries() {
        let me = std::env::current_exe().unwrap();
        let data = fs::read(&me).unwrap();
        let libs = libraries(&me, &data).unwrap();
        let loader = interpreter(&data, &me).unwrap().unwrap();
        assert!(
            libs.contains(&loader),
            "{libs:?} lacks {}",
            loader.display()
        );
        assert!(
            libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
            "{libs:?}"
        );
    }

    #[test]
    fn archive_layout() {
        let mut a = Archive::default();
        a.add_bytes(Path::new("/a/b/c"), 0o755, b"hello".to_vec())
            .unwrap();
        assert!(a
            .add_bytes(Path::new("/a/../x"), 0o644, Vec::new())
            .is_err());
        assert!(a.add_bytes(Path::new("/"), 0o644, Vec::new()).is_err());
        let mut out = Vec::new();
        a.write_to(&mut out).unwrap();
        // a, a/b (directories), a/b/c, the trailer; every header at a multiple of 4.
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text.matches("070701").count(), 4);
        assert!(text.contains("a/b/c\0"));
        assert!(text.contains("hello"));
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!"));
        assert_eq!(out.len() % 4, 0);
        let c = text.find("070701").unwrap();
        assert_eq!(c, 0);
        // The file's header: mode 0100755, size 5.
        let at = text.find("a/b/c\0").unwrap() - 110;
        assert_eq!(at % 4, 0);
        assert_eq!(&text[at + 14..at + 22], "000081ed");
        assert_eq!(&text[at + 54..at + 62], "00000005");
    }
}
