// SPDX-License-Identifier: GPL-2.0

//! mkctl: run a program in a kernel of its own, and manage multikernel instances
//! (Documentation/multikernel/mkctl.rst).

mod abi;
mod guest;
mod initramfs;
mod manifest;
mod msg;
mod run;

use abi::{inst_path, inst_read, status, Error, Result};
use clap::{CommandFactory, Parser, Subcommand};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "mkctl",
    version,
    about = "Run a program in a kernel of its own, and manage multikernel instances",
    after_help = "Examples:\n  mkctl run -- uname -a\n  mkctl create rt0 --cpus 2-3 --memory 256M\n  \
                  mkctl load rt0 /boot/vmlinuz-mk --initrd rootfs.cpio.gz\n  mkctl start rt0; \
                  mkctl ps; mkctl console rt0\n\nExit status: 0 done (run: the program's own), 1 \
                  the kernel refused, 2 usage, 3 not root or no multikernel support, 4 no such \
                  instance; run: 125 the instance failed, 130 interrupted."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Creates an instance: its CPUs leave the host, its memory is reserved.
    #[command(
        after_help = "Example: mkctl create rt0 --cpus 2-3 --memory 256M --key on_crash=restart"
    )]
    Create {
        name: String,
        /// CPU list, e.g. 2-3 or 1,4.
        #[arg(long)]
        cpus: String,
        /// Size with K/M/G suffix, e.g. 256M.
        #[arg(long)]
        memory: String,
        /// Further create keys: on_reboot=stop|restart, on_crash=stop|restart, net=on|off.
        #[arg(long = "key", value_name = "KEY=VALUE")]
        keys: Vec<String>,
    },
    /// Loads a kernel (and an initramfs) into an instance.
    #[command(
        after_help = "Example: mkctl load rt0 bzImage --initrd initramfs.cpio.gz --cmdline 'console=ttyS1'"
    )]
    Load {
        name: String,
        kernel: PathBuf,
        #[arg(long)]
        initrd: Option<PathBuf>,
        #[arg(long, default_value = "")]
        cmdline: String,
    },
    /// Starts the loaded kernel.
    #[command(after_help = "Example: mkctl start rt0")]
    Start { name: String },
    /// Asks its kernel to shut down in order (then kill by force after the stop timeout).
    #[command(after_help = "Example: mkctl stop rt0")]
    Stop { name: String },
    /// Stops it at once, by force.
    #[command(after_help = "Example: mkctl kill rt0")]
    Kill { name: String },
    /// Stops it in order, then starts the loaded kernel again.
    #[command(after_help = "Example: mkctl restart rt0")]
    Restart { name: String },
    /// Gives its CPUs and memory back (kill it first if it runs).
    #[command(after_help = "Example: mkctl destroy rt0")]
    Destroy { name: String },
    /// Lists the instances.
    #[command(after_help = "Example: mkctl ps --json")]
    Ps {
        #[arg(long)]
        json: bool,
    },
    /// Its console: what its kernel and terminal print, live; typing goes to its terminal
    /// when stdin is a terminal (Ctrl-] detaches).
    #[command(after_help = "Example: mkctl console rt0")]
    Console {
        name: String,
        /// Print what is there and return.
        #[arg(long)]
        once: bool,
    },
    /// IKC round trips to its kernel.
    #[command(after_help = "Example: mkctl ping rt0 -c 5 -s 4096")]
    Ping {
        name: String,
        #[arg(short = 'c', default_value_t = 3)]
        count: u32,
        #[arg(short = 's', default_value_t = 64)]
        size: u32,
    },
    /// Sends stdin as messages on a port of its message device.
    #[command(after_help = "Example: echo hello | mkctl send rt0 7")]
    Send { name: String, port: u16 },
    /// Writes the payloads of messages on a port to stdout (others are dropped).
    #[command(after_help = "Example: mkctl recv rt0 7 -n 1")]
    Recv {
        name: String,
        port: u16,
        /// Stop after this many messages.
        #[arg(short = 'n')]
        count: Option<u64>,
    },
    /// The pool: total, free, largest free range.
    #[command(after_help = "Example: mkctl pool")]
    Pool,
    /// Runs a program in a new instance and removes it afterwards; exits with its status.
    #[command(
        after_help = "Examples:\n  mkctl run -- uname -a\n  mkctl run -c 2 --memory 512M \
                  --file data.txt:/data.txt -- /usr/bin/sort /data.txt\n\nThe kernel is --kernel, \
                  else $MKCTL_KERNEL, else /boot/vmlinuz-$(uname -r), else \
                  /lib/modules/$(uname -r)/vmlinuz; it must be built with CONFIG_MULTIKERNEL."
    )]
    Run(run::RunArgs),
    /// Creates, loads and starts every instance of a manifest.
    #[command(
        after_help = "Example: mkctl up instances.conf (format: Documentation/multikernel/mkctl.rst)"
    )]
    Up { file: PathBuf },
    /// Kills and destroys every instance of a manifest.
    #[command(after_help = "Example: mkctl down instances.conf")]
    Down { file: PathBuf },
    /// Prints a shell completion script.
    #[command(after_help = "Example: mkctl completion bash > /etc/bash_completion.d/mkctl")]
    Completion { shell: clap_complete::Shell },
}

fn load(name: &str, kernel: &Path, initrd: Option<&PathBuf>, cmdline: &str) -> Result {
    let initrd = initrd
        .map(|p| {
            File::open(p)
                .map_err(|e| Error::usage(format!("cannot open initrd {}: {e}", p.display())))
        })
        .transpose()?;
    abi::load(name, kernel, initrd.as_ref(), cmdline)
}

/// One instance as `ps` shows it.
struct Row {
    name: String,
    id: u64,
    state: String,
    cpus: String,
    memory: u64,
    uptime_ms: Option<u64>,
    tx: u64,
    rx: u64,
    last_stop: String,
}

fn row(name: &str) -> Row {
    let get = |f: &str| inst_read(name, f).unwrap_or_default();
    let num = |f: &str| get(f).parse::<u64>().unwrap_or(0);
    Row {
        name: name.to_string(),
        id: num("id"),
        state: get("state"),
        cpus: get("cpus"),
        memory: abi::range_bytes(&get("memory")).unwrap_or(0),
        uptime_ms: get("uptime_ms").parse().ok(),
        tx: num("ikc/tx"),
        rx: num("ikc/rx"),
        last_stop: get("last_stop"),
    }
}

/// Milliseconds as the table shows them: "42s", "3m07s", "2h05m".
fn uptime(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "-".to_string();
    };
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

fn ps(json: bool) -> Result {
    let names = abi::instances().map_err(|e| Error::new(status::ENVIRONMENT, e.to_string()))?;
    let rows: Vec<Row> = names.iter().map(|n| row(n)).collect();
    if json {
        let items: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"name\":{},\"id\":{},\"state\":{},\"cpus\":{},\"memory_bytes\":{},\
                     \"uptime_ms\":{},\"ikc_tx\":{},\"ikc_rx\":{},\"last_stop\":{}}}",
                    json_str(&r.name),
                    r.id,
                    json_str(&r.state),
                    json_str(&r.cpus),
                    r.memory,
                    r.uptime_ms.map_or("null".to_string(), |u| u.to_string()),
                    r.tx,
                    r.rx,
                    json_str(&r.last_stop),
                )
            })
            .collect();
        println!("[{}]", items.join(","));
        return Ok(());
    }
    let head = [
        "NAME",
        "ID",
        "STATE",
        "CPUS",
        "MEMORY",
        "UPTIME",
        "IKC_TX",
        "IKC_RX",
        "LAST_STOP",
    ]
    .map(String::from);
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.id.to_string(),
                r.state.clone(),
                r.cpus.clone(),
                format!("{}M", r.memory >> 20),
                uptime(r.uptime_ms),
                r.tx.to_string(),
                r.rx.to_string(),
                r.last_stop.clone(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(&head).chain(cells.iter()) {
        let parts: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    }
    Ok(())
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Puts the terminal in raw mode until dropped.
struct RawTerminal(libc::termios);

impl RawTerminal {
    fn new() -> Option<Self> {
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a valid termios.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
            Some(Self(saved))
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: Restores the saved settings of fd 0.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.0) };
    }
}

/// Ctrl-]: leaves `mkctl console`.
const DETACH: u8 = 0x1d;

fn console(name: &str, once: bool) -> Result {
    abi::require(name, abi::Op::Open)?;
    let path = format!("/dev/mk-{name}.console");
    let mut dev = OpenOptions::new()
        .read(true)
        .write(!once)
        .custom_flags_nonblock(once)
        .open(&path)
        .map_err(|e| Error::new(status::REFUSED, format!("{path}: {e}")))?;
    let mut out = io::stdout();
    let mut buf = vec![0u8; 4096];
    if once {
        loop {
            match dev.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.write_all(&buf[..n]).map_err(io_err)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Error::new(status::REFUSED, format!("{path}: {e}"))),
            }
        }
        return Ok(());
    }
    let raw = RawTerminal::new();
    if let Some(saved) = &raw {
        eprint!("(console of {name}: Ctrl-] detaches)\r\n");
        let _ = SAVED.set(saved.0);
        let input = dev.try_clone().map_err(io_err)?;
        std::thread::spawn(move || {
            let mut input = input;
            let mut b = [0u8; 256];
            while let Ok(n) = io::stdin().read(&mut b) {
                if n == 0 {
                    break;
                }
                if let Some(at) = b[..n].iter().position(|&c| c == DETACH) {
                    let _ = input.write_all(&b[..at]);
                    restore_and_exit();
                }
                // Typing into a stopped instance goes nowhere; Ctrl-] still detaches.
                let _ = input.write_all(&b[..n]);
            }
        });
    }
    loop {
        match dev.read(&mut buf) {
            // The instance is gone (destroyed).
            Ok(0) => return Ok(()),
            Ok(n) => {
                let text: Vec<u8> = if raw.is_some() {
                    // Raw mode: a bare \n does not return the carriage.
                    buf[..n]
                        .iter()
                        .flat_map(|&c| {
                            if c == b'\n' {
                                vec![b'\r', b'\n']
                            } else {
                                vec![c]
                            }
                        })
                        .collect()
                } else {
                    buf[..n].to_vec()
                };
                out.write_all(&text)
                    .and_then(|()| out.flush())
                    .map_err(io_err)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::new(status::REFUSED, format!("{path}: {e}"))),
        }
    }
}

/// The terminal's settings before `console` made it raw.
static SAVED: std::sync::OnceLock<libc::termios> = std::sync::OnceLock::new();

/// Ctrl-] in `console`: the terminal as it was, and exit (the main thread is in a read).
fn restore_and_exit() -> ! {
    if let Some(t) = SAVED.get() {
        // SAFETY: Restores saved settings of fd 0.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
    }
    eprintln!();
    std::process::exit(0);
}

trait NonblockExt {
    fn custom_flags_nonblock(&mut self, on: bool) -> &mut Self;
}

impl NonblockExt for OpenOptions {
    fn custom_flags_nonblock(&mut self, on: bool) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(if on { libc::O_NONBLOCK } else { 0 })
    }
}

fn io_err(e: io::Error) -> Error {
    Error::new(status::REFUSED, e.to_string())
}

fn ping(name: &str, count: u32, size: u32) -> Result {
    let file = inst_path(name, "ping");
    abi::require(name, abi::Op::Ping)?;
    abi::write(&file, &size.to_string())
        .map_err(|e| abi::explain(abi::Op::Ping, abi::errno_of(&e), name, ""))?;
    for i in 0..count {
        let ns = abi::read(&file)
            .map_err(|e| abi::explain(abi::Op::Ping, abi::errno_of(&e), name, ""))?;
        let ns: f64 = ns.trim().parse().unwrap_or(0.0);
        println!("{size} bytes to {name}: seq={i} time={:.1} us", ns / 1000.0);
    }
    Ok(())
}

fn open_msg(name: &str) -> Result<File> {
    abi::require(name, abi::Op::Open)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/mk-{name}"))
        .map_err(|e| abi::explain(abi::Op::Open, abi::errno_of(&e), name, ""))
}

fn send(name: &str, port: u16) -> Result {
    let dev = open_msg(name)?;
    let mut data = Vec::new();
    io::stdin().read_to_end(&mut data).map_err(io_err)?;
    msg::send_all(&dev, port, &data)
        .map_err(|e| abi::explain(abi::Op::Send, abi::errno_of(&e), name, ""))
}

fn recv(name: &str, port: u16, count: Option<u64>) -> Result {
    let dev = open_msg(name)?;
    let mut got = 0;
    let mut out = io::stdout();
    while count.is_none_or(|c| got < c) {
        let (p, data) = msg::recv(&dev)
            .map_err(|e| abi::explain(abi::Op::Send, abi::errno_of(&e), name, ""))?;
        if p == port {
            out.write_all(&data)
                .and_then(|()| out.flush())
                .map_err(io_err)?;
            got += 1;
        }
    }
    Ok(())
}

fn read_manifest(file: &Path) -> Result<Vec<manifest::Instance>> {
    let in_file = |e: String| Error::usage(format!("{}: {e}", file.display()));
    let text = std::fs::read_to_string(file).map_err(|e| in_file(e.to_string()))?;
    manifest::parse(&text).map_err(in_file)
}

fn up(file: &Path) -> Result {
    let set = read_manifest(file)?;
    for i in &set {
        abi::create(&i.create_line())?;
        load(&i.name, &i.kernel, i.initrd.as_ref(), &i.cmdline)?;
        abi::control(&i.name, "start")?;
        println!("{}: started", i.name);
    }
    Ok(())
}

fn down(file: &Path) -> Result {
    let set = read_manifest(file)?;
    for i in set.iter().rev() {
        if !abi::exists(&i.name) {
            continue;
        }
        let _ = abi::control(&i.name, "kill");
        abi::destroy(&i.name)?;
        println!("{}: destroyed", i.name);
    }
    Ok(())
}

fn dispatch(cmd: Cmd) -> Result<i32> {
    if !matches!(cmd, Cmd::Completion { .. }) {
        abi::check_environment()?;
    }
    match cmd {
        Cmd::Create {
            name,
            cpus,
            memory,
            keys,
        } => {
            let mut line = format!("{name} cpus={cpus} memory={memory}");
            for k in keys {
                line.push(' ');
                line.push_str(&k);
            }
            abi::create(&line)?;
        }
        Cmd::Load {
            name,
            kernel,
            initrd,
            cmdline,
        } => load(&name, &kernel, initrd.as_ref(), &cmdline)?,
        Cmd::Start { name } => abi::control(&name, "start")?,
        Cmd::Stop { name } => abi::control(&name, "stop")?,
        Cmd::Kill { name } => abi::control(&name, "kill")?,
        Cmd::Restart { name } => abi::control(&name, "restart")?,
        Cmd::Destroy { name } => {
            if !abi::exists(&name) {
                return Err(abi::explain(abi::Op::Destroy, libc::ENOENT, &name, ""));
            }
            abi::destroy(&name)?
        }
        Cmd::Ps { json } => ps(json)?,
        Cmd::Console { name, once } => console(&name, once)?,
        Cmd::Ping { name, count, size } => ping(&name, count, size)?,
        Cmd::Send { name, port } => send(&name, port)?,
        Cmd::Recv { name, port, count } => recv(&name, port, count)?,
        Cmd::Pool => {
            let p = abi::pool()?;
            println!(
                "total {} MiB, free {} MiB, largest free range {} MiB",
                p.total >> 20,
                p.free >> 20,
                p.largest >> 20
            );
        }
        Cmd::Run(args) => return run::run(args),
        Cmd::Up { file } => up(&file)?,
        Cmd::Down { file } => down(&file)?,
        Cmd::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mkctl", &mut io::stdout());
        }
    }
    Ok(0)
}

fn main() {
    // As the init of an instance `mkctl run` started.
    if guest::is_run_init() {
        guest::main();
    }
    let cli = Cli::parse();
    match dispatch(cli.cmd) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("mkctl: {e}");
            std::process::exit(e.status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_words() {
        assert_eq!(uptime(None), "-");
        assert_eq!(uptime(Some(42_999)), "42s");
        assert_eq!(uptime(Some(187_000)), "3m07s");
        assert_eq!(uptime(Some(7_500_000)), "2h05m");
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
