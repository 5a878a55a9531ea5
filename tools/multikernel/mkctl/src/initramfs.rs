// SPDX-License-Identifier: GPL-2.0

//! The initramfs of `mkctl run`: a newc cpio archive (uncompressed: the kernel takes it as it
//! is) holding mkctl itself as `/init`, the program, the shared libraries both need (as `ldd`
//! names them) and the files given with `--file`.

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
        for lib in libraries(src)? {
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

/// The shared libraries `program` needs, with the dynamic loader, as `ldd` resolves them;
/// none for a static program.
pub fn libraries(program: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .map_err(|e| format!("cannot run ldd (libc-bin) on {}: {e}", program.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "not a dynamic executable": nothing to add.
        return Ok(Vec::new());
    }
    parse_ldd(&text)
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
