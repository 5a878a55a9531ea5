// SPDX-License-Identifier: GPL-2.0

//! `mkctl run`: a program in a kernel of its own, for as long as it runs.

use crate::abi::{self, status, Error, Result};
use crate::initramfs::{find_program, Archive};
use crate::msg::{self, port};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM/SIGHUP: the instance is removed and `run` exits with 130.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches the signals that end `run` (not those already ignored, as under `nohup`).
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: A zeroed sigaction with a handler that only stores an atomic is valid;
        // the pointers are valid for the calls.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old);
            if old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Waits up to `ms` for a message on `dev`; whether one is there (or the device has an
/// error or hung up, which the read then reports).
fn readable(dev: &File, ms: i32) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: dev.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: One valid pollfd for the call.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// What `mkctl run` takes (its command line).
#[derive(clap::Args)]
pub struct RunArgs {
    /// CPU list for the instance (default: the highest free ones).
    #[arg(long, conflicts_with = "count")]
    pub cpus: Option<String>,
    /// How many CPUs, picked among the free ones.
    #[arg(short = 'c', default_value_t = 1)]
    pub count: u32,
    #[arg(long, default_value = "256M")]
    pub memory: String,
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// SRC[:DST]: a file to put into the instance (DST defaults to SRC).
    #[arg(long = "file", value_name = "SRC[:DST]")]
    pub files: Vec<String>,
    /// The instance kernel's command line (default: "quiet loglevel=1 panic=0").
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Print the instance's console (its kernel log) afterwards.
    #[arg(long = "console")]
    pub keep_console: bool,
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The kernel `run` boots when not told: `$MKCTL_KERNEL`, then the running kernel's image in
/// `/boot/vmlinuz-RELEASE`, then `/lib/modules/RELEASE/vmlinuz`.
pub fn default_kernel() -> Result<PathBuf> {
    if let Some(k) = std::env::var_os("MKCTL_KERNEL") {
        return Ok(PathBuf::from(k));
    }
    let release = abi::read("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let candidates = [
        PathBuf::from(format!("/boot/vmlinuz-{release}")),
        PathBuf::from(format!("/lib/modules/{release}/vmlinuz")),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            Error::usage(format!(
                "no kernel image found for the running kernel {release} (looked at $MKCTL_KERNEL, \
             {} and {}): give one with --kernel",
                candidates[0].display(),
                candidates[1].display()
            ))
        })
}

/// The `n` highest-numbered online CPUs other than CPU 0.
pub fn pick_cpus(n: u32) -> Result<Vec<u32>> {
    let online = abi::read("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut cpus = abi::parse_cpulist(online.trim()).map_err(Error::usage)?;
    cpus.retain(|&c| c != 0);
    if (cpus.len() as u32) < n || n == 0 {
        return Err(Error::new(
            status::REFUSED,
            format!(
                "{n} CPU(s) asked, {} free: the host keeps CPU 0, and CPUs of other instances are \
                 taken (mkctl ps)",
                cpus.len()
            ),
        ));
    }
    Ok(cpus[cpus.len() - n as usize..].to_vec())
}

/// The archive: mkctl as /init, the program and the `--file`s.
fn build_initramfs(args: &RunArgs) -> Result<File> {
    let mut a = Archive::default();
    let me = std::env::current_exe()
        .map_err(|e| Error::usage(format!("cannot find mkctl itself: {e}")))?;
    a.add_program(&me, Path::new("/init"))
        .map_err(Error::usage)?;
    let prog = find_program(&args.command[0]).map_err(Error::usage)?;
    // Where the user named it: its directory resolved, its own name kept (a symlinked program
    // may look at the name it was run by).
    let abs =
        std::path::absolute(&prog).map_err(|e| Error::usage(format!("{}: {e}", prog.display())))?;
    let inside = match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(file)) => std::fs::canonicalize(dir)
            .map_err(|e| Error::usage(format!("{}: {e}", dir.display())))?
            .join(file),
        _ => abs,
    };
    a.add_program(&prog, &inside).map_err(Error::usage)?;
    for spec in &args.files {
        let (src, dst) = match spec.split_once(':') {
            Some((s, d)) => (s, d),
            None => (spec.as_str(), spec.as_str()),
        };
        let dst = if dst.starts_with('/') {
            PathBuf::from(dst)
        } else {
            Path::new("/").join(dst)
        };
        if dst == Path::new("/init") || dst.starts_with("/mkctl") {
            return Err(Error::usage(format!(
                "--file {spec}: /init and /mkctl are mkctl's own in the instance"
            )));
        }
        // An executable comes with the libraries it needs.
        let exec = std::fs::metadata(src).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        });
        if exec {
            a.add_program(Path::new(src), &dst).map_err(Error::usage)?;
        } else {
            a.add_file(Path::new(src), &dst).map_err(Error::usage)?;
        }
    }
    // Where the loader finds libraries outside its default directories.
    if Path::new("/etc/ld.so.cache").is_file() {
        a.add_file(Path::new("/etc/ld.so.cache"), Path::new("/etc/ld.so.cache"))
            .map_err(Error::usage)?;
    }
    let mut argv = Vec::new();
    argv.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(inside.as_os_str()));
    argv.push(0);
    for arg in &args.command[1..] {
        argv.extend_from_slice(arg.as_bytes());
        argv.push(0);
    }
    a.add_bytes(Path::new("/mkctl/argv"), 0o644, argv)
        .map_err(Error::usage)?;
    let name = CString::new("mkctl-initramfs").unwrap_or_default();
    // SAFETY: A NUL-terminated name and flags; returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::usage(format!(
            "memfd_create: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: `fd` is a new file descriptor that nothing else owns.
    let mut f = unsafe { File::from_raw_fd(fd) };
    let mut w = io::BufWriter::new(&mut f);
    a.write_to(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| Error::usage(format!("writing the initramfs: {e}")))?;
    drop(w);
    f.rewind()
        .map_err(|e| Error::usage(format!("writing the initramfs: {e}")))?;
    Ok(f)
}

/// Removes the instance when `run` ends, however it ends.
struct Cleanup<'a>(&'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = abi::write(abi::inst_path(self.0, "control"), "kill");
        if let Err(e) = abi::destroy(self.0) {
            eprintln!("mkctl: the instance {} could not be removed: {e}", self.0);
        }
    }
}

fn state(name: &str) -> String {
    abi::inst_read(name, "state").unwrap_or_default()
}

/// Runs the program (the caller checked the environment); returns its exit status.
pub fn run(args: RunArgs) -> Result<i32> {
    let kernel = match &args.kernel {
        Some(k) => k.clone(),
        None => default_kernel()?,
    };
    File::open(&kernel)
        .map_err(|e| Error::usage(format!("cannot open kernel {}: {e}", kernel.display())))?;
    if args.count == 0 {
        return Err(Error::usage("-c takes 1 or more CPUs"));
    }
    let cpus = match &args.cpus {
        Some(list) => abi::parse_cpulist(list).map_err(Error::usage)?,
        None => pick_cpus(args.count)?,
    };
    abi::parse_size(&args.memory).map_err(Error::usage)?;
    let initrd = build_initramfs(&args)?;
    catch_signals();
    // SAFETY: getpid has no preconditions.
    let name = format!("run-{}", unsafe { libc::getpid() });
    abi::create(&format!(
        "{name} cpus={} memory={} net=off",
        abi::format_cpulist(&cpus),
        args.memory
    ))?;
    let _cleanup = Cleanup(&name);
    let cmdline = args
        .cmdline
        .clone()
        .unwrap_or_else(|| "quiet loglevel=1 panic=0".to_string());
    abi::load(&name, &kernel, Some(&initrd), &cmdline)?;
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Ok(status::INTERRUPTED);
    }
    abi::control(&name, "start")?;
    let start = Instant::now();
    while state(&name) == "starting" {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Ok(status::INTERRUPTED);
        }
        if start.elapsed() > Duration::from_secs(120) {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let now = state(&name);
    if now != "running" {
        return Err(failed(&name, &format!("did not start (state {now})")));
    }
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/mk-{name}"))
        .map_err(|e| failed(&name, &format!("its message device: {e}")))?;
    let (mut out, mut err) = (io::stdout(), io::stderr());
    loop {
        // A signal between this check and a blocking read would be missed: poll a while.
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Ok(status::INTERRUPTED);
        }
        if !readable(&dev, 200) {
            continue;
        }
        match msg::recv(&dev) {
            Ok((port::STDOUT, data)) => {
                if let Err(e) = out.write_all(&data).and_then(|()| out.flush()) {
                    // Nobody reads its output any more (`| head`): end it, as SIGPIPE would.
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        return Ok(128 + libc::SIGPIPE);
                    }
                }
            }
            Ok((port::STDERR, data)) => {
                let _ = err.write_all(&data).and_then(|()| err.flush());
            }
            Ok((port::STATUS, data)) if data.len() == 4 => {
                let code = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                // An exit status is 0-255: anything else did not come from guest.rs.
                if !(0..=255).contains(&code) {
                    return Err(failed(&name, "sent a bad exit status"));
                }
                let _ = msg::send(&dev, port::STATUS, b"ok");
                // It powers off; the cleanup kills what is left.
                let start = Instant::now();
                while state(&name) == "running" && start.elapsed() < Duration::from_secs(5) {
                    thread::sleep(Duration::from_millis(20));
                }
                if args.keep_console {
                    print_console(&name);
                }
                return Ok(code);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                thread::sleep(Duration::from_millis(200));
                return Err(failed(&name, &format!("stopped talking ({e})")));
            }
        }
    }
}

fn print_console(name: &str) {
    if let Ok(text) = abi::read(abi::inst_path(name, "console")) {
        eprintln!("--- console of {name} ---\n{text}");
    }
}

/// The instance ended before the program's status came back: say how, with its console.
fn failed(name: &str, what: &str) -> Error {
    let state = state(name);
    let last = abi::inst_read(name, "last_stop").unwrap_or_default();
    let console = abi::read(abi::inst_path(name, "console")).unwrap_or_default();
    let tail: String = console
        .lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    Error::new(
        status::INSTANCE_FAILED,
        format!(
            "the instance {name} {what}; state {state}, last stop {last}. Its console ended \
             with:\n{tail}"
        ),
    )
}
