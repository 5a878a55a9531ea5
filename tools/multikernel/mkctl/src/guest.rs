// SPDX-License-Identifier: GPL-2.0

//! mkctl as `/init` of the instance `mkctl run` starts: mounts the basic file systems, runs
//! the program (its argv in `/mkctl/argv`, NUL-separated; stdin from `/dev/null`), sends its
//! output and exit status to the host over `/dev/mk-host` (`msg::port`), waits for the host's
//! answer and powers the instance off.

use crate::msg::{self, port};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

fn mount(src: &str, dst: &str, fstype: &str) {
    let _ = fs::create_dir_all(dst);
    let (s, d, t) = (
        CString::new(src).unwrap_or_default(),
        CString::new(dst).unwrap_or_default(),
        CString::new(fstype).unwrap_or_default(),
    );
    // SAFETY: Three NUL-terminated strings valid for the call, no data.
    unsafe { libc::mount(s.as_ptr(), d.as_ptr(), t.as_ptr(), 0, std::ptr::null()) };
}

fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers; as init, reboot(RB_POWER_OFF) stops this
    // kernel (in an instance: only this instance, reported to the host as "poweroff").
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    loop {
        thread::sleep(Duration::from_secs(1));
    }
}

/// The device to the host, once the kernel made it.
fn open_host() -> Option<File> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(f) = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/mk-host")
        {
            return Some(f);
        }
        thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Forwards everything `from` gives to the host on `port`.
fn forward(mut from: impl Read, dev: File, port: u16) {
    let mut buf = vec![0u8; crate::abi::MAX_PAYLOAD];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if msg::send(&dev, port, &buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Runs the program; its exit status (128 + signal if killed, 127 if it could not start).
fn run_program(dev: &File) -> i32 {
    let argv = fs::read("/mkctl/argv").unwrap_or_default();
    // NUL-terminated arguments; empty ones are kept.
    let args: Vec<std::ffi::OsString> = argv
        .strip_suffix(&[0])
        .unwrap_or(&argv)
        .split(|&b| b == 0)
        .map(|a| std::ffi::OsStr::from_bytes(a).to_os_string())
        .collect();
    let Some((prog, rest)) = args.split_first().filter(|(p, _)| !p.is_empty()) else {
        let _ = msg::send(
            dev,
            port::STDERR,
            b"mkctl init: no program in /mkctl/argv\n",
        );
        return 127;
    };
    let child = Command::new(prog)
        .args(rest)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", "/")
        .env("TERM", "dumb")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let text = format!(
                "mkctl: cannot run {} in the instance: {e}\n",
                prog.to_string_lossy()
            );
            let _ = msg::send(dev, port::STDERR, text.as_bytes());
            return 127;
        }
    };
    let mut threads = Vec::new();
    if let (Some(out), Ok(d)) = (child.stdout.take(), dev.try_clone()) {
        threads.push(thread::spawn(move || forward(out, d, port::STDOUT)));
    }
    if let (Some(err), Ok(d)) = (child.stderr.take(), dev.try_clone()) {
        threads.push(thread::spawn(move || forward(err, d, port::STDERR)));
    }
    let status = child.wait();
    // What it left running (which may hold its output open) goes with it: as init, every
    // other process; then the orphans are reaped and the output drained.
    // SAFETY: kill and waitpid take no pointers but a null status.
    unsafe {
        libc::kill(-1, libc::SIGKILL);
        while libc::waitpid(-1, std::ptr::null_mut(), 0) > 0 {}
    }
    for t in threads {
        let _ = t.join();
    }
    match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
        }
        Err(_) => 127,
    }
}

/// Whether this process is the init of an instance `mkctl run` made (and not, say, mkctl as
/// a container's first process).
pub fn is_run_init() -> bool {
    std::process::id() == 1 && std::path::Path::new("/mkctl/argv").is_file()
}

/// The init's whole life.
pub fn main() -> ! {
    mount("proc", "/proc", "proc");
    mount("sysfs", "/sys", "sysfs");
    mount("devtmpfs", "/dev", "devtmpfs");
    let _ = fs::create_dir_all("/tmp");
    let Some(dev) = open_host() else {
        eprintln!("mkctl init: no /dev/mk-host: is this a multikernel instance?");
        power_off();
    };
    let status = run_program(&dev);
    if msg::send(&dev, port::STATUS, &status.to_le_bytes()).is_ok() {
        // Until the host has read everything (it answers on the same port; a host that
        // goes away kills the instance anyway), or the channel fails.
        while let Ok((p, _)) = msg::recv(&dev) {
            if p == port::STATUS {
                break;
            }
        }
    }
    power_off();
}
