// SPDX-License-Identifier: GPL-2.0

//! The kernel's ABI as mkctl uses it: the control tree in sysfs
//! (Documentation/ABI/testing/sysfs-kernel-multikernel), the message devices and
//! `kexec_file_load(2)` with `KEXEC_FILE_MULTIKERNEL` (Documentation/multikernel/kexec.rst).
//! Every failure becomes an [`Error`] that says, in words, what to do about it.

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The control tree.
pub const ROOT: &str = "/sys/kernel/multikernel";
/// `kexec_file_load(2)` flag: load into an instance (`KEXEC_FILE_MULTIKERNEL`).
pub const KEXEC_FILE_MULTIKERNEL: libc::c_ulong = 0x40;
/// The largest payload of one message on a message device (`MK_IKC_MAX_PAYLOAD`).
pub const MAX_PAYLOAD: usize = 4096;
/// The header of a message on a message device (`struct mk_ikc_msg`).
pub const MSG_HEADER: usize = 8;
/// The first port user space may use (`MK_IKC_PORT_FIRST_USER`).
pub const FIRST_USER_PORT: u16 = 64;

/// What went wrong, as a sentence for the user, and the exit status it gives.
#[derive(Debug)]
pub struct Error {
    pub message: String,
    pub status: i32,
}

/// Exit statuses (README, "mkctl").
pub mod status {
    /// The kernel refused (the message says why).
    pub const REFUSED: i32 = 1;
    /// Bad command line (clap's own errors also exit 2).
    pub const USAGE: i32 = 2;
    /// Not root, or no multikernel support in this kernel.
    pub const ENVIRONMENT: i32 = 3;
    /// No such instance.
    pub const NO_INSTANCE: i32 = 4;
    /// `run`: the instance failed or crashed before the program's status came back.
    pub const INSTANCE_FAILED: i32 = 125;
    /// `run`: interrupted (Ctrl-C); the instance was removed.
    pub const INTERRUPTED: i32 = 130;
}

impl Error {
    pub fn new(status: i32, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            status,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(status::USAGE, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Result<T = ()> = std::result::Result<T, Error>;

/// An operation of the ABI, for the words of its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Destroy,
    Load,
    Control(&'static str),
    Ping,
    Open,
    Send,
}

/// The sentence for `errno` from `op` on instance `name` (`detail`: the spec or file).
pub fn explain(op: Op, errno: i32, name: &str, detail: &str) -> Error {
    use libc::*;
    let (status, text) = match (op, errno) {
        (Op::Load, EPERM) => (
            status::ENVIRONMENT,
            "needs root with CAP_SYS_BOOT, and kexec loading allowed (kernel.kexec_load_disabled \
             = 0, no lockdown)"
                .to_string(),
        ),
        (_, EACCES) | (_, EPERM) => (
            status::ENVIRONMENT,
            "needs root (CAP_SYS_ADMIN, and CAP_SYS_BOOT to load a kernel)".to_string(),
        ),
        (Op::Create, E2BIG) => (
            status::REFUSED,
            format!("the create line is longer than 256 bytes: {detail}"),
        ),
        (Op::Create, EINVAL) => (
            status::REFUSED,
            format!(
                "the kernel refused '{detail}': a bad name (1-31 of a-z 0-9 _ -), CPU list, \
                 size or key (dmesg says which)"
            ),
        ),
        (Op::Create, EEXIST) => (
            status::REFUSED,
            format!("an instance named {name} exists already (mkctl ps)"),
        ),
        (Op::Create, EBUSY) => (status::REFUSED, cpu_busy(detail)),
        (Op::Create, ENOMEM) => (
            status::ENVIRONMENT,
            "the host was booted without multikernel.pool= (add e.g. multikernel.pool=1G to its \
             command line)"
                .to_string(),
        ),
        (Op::Create, ENOSPC) => (status::REFUSED, pool_exhausted()),
        (Op::Destroy, EBUSY) => (
            status::REFUSED,
            format!("{name} is still starting or running: kill it first (mkctl kill {name})"),
        ),
        (Op::Load, EBUSY) => (
            status::REFUSED,
            format!("{name} is starting, running or failed: kill it before loading another kernel"),
        ),
        (Op::Load, ENOEXEC) => (
            status::REFUSED,
            format!(
                "{detail} cannot run as an instance: it must be an x86-64 bzImage built with \
                 CONFIG_MULTIKERNEL (a distro kernel is refused)"
            ),
        ),
        (Op::Load, ENOMEM) => (
            status::REFUSED,
            format!(
                "{detail} and its initramfs do not fit {name}'s memory: create it with more \
                 (--memory; dmesg says how much it needs)"
            ),
        ),
        (Op::Load, EINVAL) => (
            status::REFUSED,
            format!(
                "the kernel refused to load {detail} into {name}: the command line is too long, \
                 or {name}'s memory starts below 16 MiB"
            ),
        ),
        (Op::Control(cmd), EBUSY) => (
            status::REFUSED,
            format!("{name} cannot {cmd} in its state now (mkctl ps; load a kernel before start)"),
        ),
        (Op::Control(cmd), ESHUTDOWN) => (
            status::REFUSED,
            format!("cannot {cmd} {name}: the host is going down"),
        ),
        (_, ESHUTDOWN) => (
            status::REFUSED,
            format!("{name}: the host is going down or hands its instances to the next kernel"),
        ),
        (Op::Control(cmd), ENOEXEC) => (
            status::REFUSED,
            format!(
                "cannot {cmd} {name}: its image did not survive the host update \
                 (mkctl load {name} KERNEL first)"
            ),
        ),
        (Op::Control(cmd), EIO) => (
            status::REFUSED,
            format!("{cmd} {name}: a CPU did not come back to the host (dmesg)"),
        ),
        (Op::Control(_), ENOTCONN) | (Op::Control(_), EAGAIN) => (
            status::REFUSED,
            format!(
                "{name}'s kernel does not take the request (no channel, or its ring is full): \
                 mkctl kill {name} stops it by force"
            ),
        ),
        (Op::Ping, ENOTCONN) | (Op::Send, ENOTCONN) | (Op::Open, ENOTCONN) => (
            status::REFUSED,
            format!("{name} is not running (mkctl start {name})"),
        ),
        (Op::Ping, ETIMEDOUT) => (
            status::REFUSED,
            format!("{name}'s kernel did not answer within 1 s"),
        ),
        (Op::Ping, EPROTO) | (Op::Send, EPROTO) => (
            status::REFUSED,
            format!("{name}'s channel is broken (its kernel broke the protocol; dmesg)"),
        ),
        (Op::Ping, EINVAL) => (status::USAGE, "ping sizes are 8 to 4096 bytes".to_string()),
        (Op::Send, EINVAL) => (
            status::USAGE,
            format!(
                "ports below {FIRST_USER_PORT} belong to the kernel (7, echo, and 9, \
                 discard, excepted); payloads are at most {MAX_PAYLOAD} bytes"
            ),
        ),
        (_, ENOENT) => (
            status::NO_INSTANCE,
            format!("no instance named {name} (mkctl ps)"),
        ),
        _ => (
            status::REFUSED,
            format!("{op:?} {name}: {}", io::Error::from_raw_os_error(errno)),
        ),
    };
    Error::new(status, text)
}

/// Which of the CPUs in `spec` is taken, and by whom.
fn cpu_busy(spec: &str) -> String {
    let cpus = spec
        .split_whitespace()
        .find_map(|t| t.strip_prefix("cpus="))
        .and_then(|l| parse_cpulist(l).ok())
        .unwrap_or_default();
    let owners = instances().unwrap_or_default();
    for cpu in &cpus {
        if *cpu == 0 {
            return "CPU 0 is the boot CPU: it stays with the host".to_string();
        }
        for owner in &owners {
            let theirs = read(inst_path(owner, "cpus"))
                .ok()
                .and_then(|l| parse_cpulist(l.trim()).ok())
                .unwrap_or_default();
            if theirs.contains(cpu) {
                return format!("CPU {cpu} belongs to instance {owner}");
            }
        }
    }
    format!(
        "a CPU of {} is offline in the host or refused to go offline (online: {})",
        spec,
        read("/sys/devices/system/cpu/online")
            .unwrap_or_default()
            .trim()
    )
}

fn pool_exhausted() -> String {
    let p = pool().unwrap_or_default();
    format!(
        "pool exhausted: {} MiB free, largest range {} MiB (or all 4095 instance ids in use)",
        p.free >> 20,
        p.largest >> 20
    )
}

/// The errno of `e`, EIO for an error that has none (a short write, a malformed message).
pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Reads a whole file of the control tree (or any text file).
pub fn read(path: impl AsRef<Path>) -> io::Result<String> {
    fs::read_to_string(path)
}

/// One write(2) of `text`, as the control tree wants it.
pub fn write(path: impl AsRef<Path>, text: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(text.as_bytes())
}

pub fn inst_path(name: &str, file: &str) -> PathBuf {
    Path::new(ROOT).join("instances").join(name).join(file)
}

/// Checks that the kernel has the control tree and that we may use it.
pub fn check_environment() -> Result {
    if !Path::new(ROOT).exists() {
        return Err(Error::new(
            status::ENVIRONMENT,
            "this kernel has no multikernel support (no /sys/kernel/multikernel: build it with \
             CONFIG_MULTIKERNEL)",
        ));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(explain(Op::Create, libc::EACCES, "", ""));
    }
    Ok(())
}

/// The names of the instances, sorted.
pub fn instances() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(Path::new(ROOT).join("instances"))? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

pub fn exists(name: &str) -> bool {
    // A path component, never a way out of instances/ (a name the kernel takes has none).
    !name.is_empty()
        && !name.contains('/')
        && name != "."
        && name != ".."
        && inst_path(name, "state").exists()
}

/// `Ok` if instance `name` exists, else the ENOENT sentence for `op`.
pub fn require(name: &str, op: Op) -> Result {
    if exists(name) {
        Ok(())
    } else {
        Err(explain(op, libc::ENOENT, name, ""))
    }
}

/// A file of instance `name`, trimmed; the error says when there is no such instance.
pub fn inst_read(name: &str, file: &str) -> Result<String> {
    read(inst_path(name, file))
        .map(|s| s.trim_end().to_string())
        .map_err(|e| explain(Op::Open, errno_of(&e), name, file))
}

#[derive(Default, Clone, Copy, Debug)]
pub struct Pool {
    pub total: u64,
    pub free: u64,
    pub largest: u64,
}

pub fn pool() -> Result<Pool> {
    let get = |f: &str| -> Result<u64> {
        read(Path::new(ROOT).join("pool").join(f))
            .map_err(|e| explain(Op::Open, errno_of(&e), "", f))
            .and_then(|s| parse_number(s.trim()).map_err(Error::usage))
    };
    Ok(Pool {
        total: get("total_bytes")?,
        free: get("free_bytes")?,
        largest: get("largest_free_bytes")?,
    })
}

pub fn create(spec: &str) -> Result {
    let name = spec.split_whitespace().next().unwrap_or("");
    write(Path::new(ROOT).join("create"), spec)
        .map_err(|e| explain(Op::Create, errno_of(&e), name, spec))
}

pub fn destroy(name: &str) -> Result {
    write(Path::new(ROOT).join("destroy"), name)
        .map_err(|e| explain(Op::Destroy, errno_of(&e), name, ""))
}

pub fn control(name: &str, cmd: &'static str) -> Result {
    require(name, Op::Control(cmd))?;
    write(inst_path(name, "control"), cmd)
        .map_err(|e| explain(Op::Control(cmd), errno_of(&e), name, ""))
}

/// Loads `kernel` (and `initrd`) with `cmdline` into instance `name`.
pub fn load(name: &str, kernel: &Path, initrd: Option<&fs::File>, cmdline: &str) -> Result {
    // Ids are 1-4095: the flags carry them in 12 bits.
    let id: u64 = inst_read(name, "id")?
        .parse()
        .ok()
        .filter(|id| (1..=0xfff).contains(id))
        .ok_or_else(|| Error::usage("unreadable instance id"))?;
    let k = fs::File::open(kernel).map_err(|e| {
        Error::new(
            status::USAGE,
            format!("cannot open kernel {}: {e}", kernel.display()),
        )
    })?;
    let mut line = cmdline.as_bytes().to_vec();
    line.push(0);
    let mut flags = KEXEC_FILE_MULTIKERNEL | (id << 16) as libc::c_ulong;
    // No initrd: KEXEC_FILE_NO_INITRAMFS.
    let initrd_fd = match initrd {
        Some(f) => f.as_raw_fd(),
        None => {
            flags |= libc::KEXEC_FILE_NO_INITRAMFS as libc::c_ulong;
            -1
        }
    };
    // SAFETY: kexec_file_load takes two fds, a length and a NUL-terminated buffer of that
    // length, and flags; all are valid for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            k.as_raw_fd(),
            initrd_fd,
            line.len() as libc::c_ulong,
            line.as_ptr(),
            flags,
        )
    };
    if r != 0 {
        let errno = errno_of(&io::Error::last_os_error());
        return Err(explain(
            Op::Load,
            errno,
            name,
            &kernel.display().to_string(),
        ));
    }
    Ok(())
}

/// Parses a CPU list like "1,3-5".
pub fn parse_cpulist(list: &str) -> std::result::Result<Vec<u32>, String> {
    let mut cpus = Vec::new();
    if list.is_empty() {
        return Ok(cpus);
    }
    for item in list.split(',') {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (a, b),
            None => (item, item),
        };
        let a: u32 = a.parse().map_err(|_| format!("bad CPU list '{list}'"))?;
        let b: u32 = b.parse().map_err(|_| format!("bad CPU list '{list}'"))?;
        if b < a {
            return Err(format!("bad CPU list '{list}': {a}-{b} is reversed"));
        }
        cpus.extend(a..=b);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// A CPU list in the kernel's form ("1,3-5").
pub fn format_cpulist(cpus: &[u32]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// Parses a decimal or 0x-hexadecimal number.
pub fn parse_number(s: &str) -> std::result::Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("not a number: '{s}'"))
}

/// Parses a size with an optional K/M/G/T/P/E suffix (binary units), as `create` takes it.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    // (In hexadecimal, a last letter is a digit: 0x1E is 30, as the kernel reads it.)
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() && !s.starts_with("0x") => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                'P' => 50,
                'E' => 60,
                _ => return Err(format!("bad size '{s}': suffixes are K, M, G, T, P, E")),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    let n = parse_number(digits).map_err(|_| format!("bad size '{s}'"))?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n && *v > 0)
        .ok_or_else(|| format!("bad size '{s}'"))
}

/// The size of a memory range as the `memory` file shows it ("0xA-0xB", inclusive).
pub fn range_bytes(range: &str) -> Option<u64> {
    let (a, b) = range.trim().split_once('-')?;
    parse_number(b)
        .ok()?
        .checked_sub(parse_number(a).ok()?)?
        .checked_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulists() {
        assert_eq!(parse_cpulist("1,3-5").unwrap(), vec![1, 3, 4, 5]);
        assert_eq!(parse_cpulist("2").unwrap(), vec![2]);
        assert_eq!(parse_cpulist("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpulist("5-3").is_err());
        assert!(parse_cpulist("a").is_err());
        assert!(parse_cpulist("1,").is_err());
        assert_eq!(format_cpulist(&[1, 3, 4, 5, 7]), "1,3-5,7");
        assert_eq!(format_cpulist(&[]), "");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("0x1000").unwrap(), 4096);
        assert_eq!(parse_size("0x1E").unwrap(), 30);
        assert_eq!(parse_size("2P").unwrap(), 2 << 50);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(range_bytes("0x1000-0x1fff"), Some(4096));
        assert_eq!(range_bytes("none"), None);
    }

    #[test]
    fn explanations() {
        let e = explain(Op::Create, libc::EEXIST, "rt0", "rt0 cpus=1 memory=1M");
        assert_eq!(e.message, "an instance named rt0 exists already (mkctl ps)");
        assert_eq!(
            explain(Op::Load, libc::EPERM, "x", "").status,
            status::ENVIRONMENT
        );
        assert_eq!(
            explain(Op::Ping, libc::ENOENT, "x", "").status,
            status::NO_INSTANCE
        );
        assert!(explain(Op::Load, libc::ENOEXEC, "x", "/boot/vmlinuz")
            .message
            .contains("CONFIG_MULTIKERNEL"));
        assert!(explain(Op::Create, libc::ENOMEM, "x", "")
            .message
            .contains("multikernel.pool="));
    }
}
