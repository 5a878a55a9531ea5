// SPDX-License-Identifier: GPL-2.0

//! The files of an instance's sysfs directory, `/sys/kernel/multikernel/instances/NAME/`:
//! the user-facing layer above the instance, its spawn and IKC. Reads show what the instance
//! holds; `control` starts and kills it (`spawn.rs`); `ikc/inject` is for testing.

use crate::{
    base::{
        pool::Range,
        report::{
            admin,
            warn, //
        },
        spec, //
    },
    instance::{
        InstanceDir,
        State,
        TIMEOUT_MAX_MS, //
    },
};
use core::{
    fmt::Write,
    sync::atomic::{
        AtomicU32,
        Ordering, //
    },
};
use kernel::{
    prelude::*,
    sysfs::ShowBuffer, //
};

impl InstanceDir {
    fn store_control(this: &Self, input: &[u8]) -> Result {
        admin("control")?;
        let command = input.strip_suffix(b"\n").unwrap_or(input);
        let mut life = this.life();
        if life.dying {
            return Err(ENOENT);
        }
        crate::spawn::observe(this, &mut life);
        match command {
            b"start" => crate::spawn::start(&this.0, &mut life),
            b"stop" => crate::spawn::stop(&this.0, &mut life, false),
            b"restart" => crate::spawn::restart(&this.0, &mut life),
            b"kill" => crate::control::refuse_going_down("kill", this.name.as_str())
                .and_then(|()| crate::spawn::kill(this, &mut life)),
            _ => {
                warn(format_args!(
                    "control {}: unknown command (known: start, stop, restart, kill)",
                    this.name.as_str()
                ));
                Err(EINVAL)
            }
        }
    }

    fn show_id(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{}", this.id)?;
        Ok(())
    }

    fn show_cpus(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        spec::write_cpulist(buf, &this.cpus)?;
        writeln!(buf)?;
        Ok(())
    }

    fn show_memory(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{:#x}-{:#x}", this.memory.start, this.memory.last())?;
        Ok(())
    }

    fn show_state(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{}", this.state().as_str())?;
        Ok(())
    }

    /// Milliseconds since its kernel was entered (starting, running, stopping); empty else.
    fn show_uptime(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        if let Some(up) = this.uptime() {
            writeln!(buf, "{}", up.as_millis())?;
        }
        Ok(())
    }

    fn show_last_stop(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        let reason = this.last_stop();
        writeln!(buf, "{}", reason.as_str())?;
        Ok(())
    }

    fn show_image(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        let image = this.image();
        let Some(image) = image.as_ref() else {
            return Ok(());
        };
        writeln!(buf, "kernel_size {}", image.kernel_size)?;
        writeln!(buf, "initrd_size {}", image.initrd_size)?;
        buf.write_str("cmdline ")?;
        for &b in image.cmdline.iter() {
            // The command line is the loader's bytes: keep the file one line per field.
            let c = if b == b' ' || b.is_ascii_graphic() {
                b
            } else {
                b'?'
            };
            buf.write_bytes(&[c])?;
        }
        writeln!(buf)?;
        let layout = &image.layout;
        writeln!(buf, "entry {:#x}", layout.entry)?;
        // How the kernel is entered: unpacked at load, or decompressing itself.
        let boot = if image.unpacked { "vmlinux" } else { "bzimage" };
        writeln!(buf, "boot {boot}")?;
        let mut segment = |name: &str, r: &Range| -> Result {
            writeln!(buf, "segment {name} {:#x}-{:#x}", r.start, r.last())?;
            Ok(())
        };
        segment("kernel", &layout.kernel)?;
        segment("boot_params", &layout.boot_params)?;
        segment("cmdline", &layout.cmdline)?;
        segment("pagetables", &layout.pagetables)?;
        segment("mailbox", &layout.mailbox)?;
        segment("park", &layout.park)?;
        segment("ikc", &layout.channel)?;
        if let Some(initrd) = &layout.initrd {
            if initrd.len > 0 {
                segment("initrd", initrd)?;
            }
        }
        Ok(())
    }
}

/// `instances/NAME/ikc/` files: the current channel's counters (0 without one).
macro_rules! ikc_counter {
    ($($show:ident => $field:ident),* $(,)?) => {
        impl InstanceDir {
            $(
                fn $show(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
                    let value = this
                        .endpoint
                        .channel()
                        .map_or(0, |c| c.counters.$field.load(Ordering::Relaxed));
                    writeln!(buf, "{value}")?;
                    Ok(())
                }
            )*
        }
    };
}

ikc_counter! {
    show_ikc_tx => tx,
    show_ikc_rx => rx,
    show_ikc_bytes => bytes,
    show_ikc_ring_full => ring_full,
    show_ikc_errors => errors,
    show_ikc_doorbells => doorbells,
}

impl InstanceDir {
    fn show_ikc_state(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        let state = this
            .endpoint
            .channel()
            .map_or("none", |c| c.state().as_str());
        writeln!(buf, "{state}")?;
        Ok(())
    }

    /// Fault injection into the channel (`CONFIG_MULTIKERNEL_IKC_FAULT_INJECT`).
    fn store_ikc_inject(this: &Self, input: &[u8]) -> Result {
        admin("ikc/inject")?;
        let fault = input.strip_suffix(b"\n").unwrap_or(input);
        if fault == b"nmi" && cfg!(CONFIG_MULTIKERNEL_IKC_FAULT_INJECT) {
            // An NMI at every CPU of the instance, parked or running: it must be taken there.
            // Only while its kernel runs: otherwise the CPUs may be the host's again.
            let life = this.life();
            // Not while starting: the decompressor's first IDT and the real-mode trampoline's
            // have no NMI gate (security.rst).
            if life.state() != State::Running {
                return Err(ENOTCONN);
            }
            for &cpu in this.cpus.iter() {
                let id = kernel::cpu::CpuId::from_u32(cpu).ok_or(EINVAL)?;
                crate::sys::doorbell::send_nmi(crate::sys::spawn::apic_id(id));
            }
            return Ok(());
        }
        let channel = this.endpoint.channel().ok_or(ENOTCONN)?;
        let injected = match fault {
            // Malformed frames both ways: from the host, and (asked over the channel) from
            // the instance's kernel. Each side drops and counts what it gets.
            b"net" => channel
                .net()
                .ok_or(ENOTCONN)
                .and_then(|link| link.inject())
                .and_then(|()| channel.send(crate::ikc::port::NET_INJECT, b"", true)),
            // A corrupt frame ring: the link breaks, carrier down.
            b"net_ring" if cfg!(CONFIG_MULTIKERNEL_IKC_FAULT_INJECT) => channel
                .net()
                .ok_or(ENOTCONN)
                .and_then(|link| link.inject_ring()),
            _ => channel.inject(fault),
        };
        injected.inspect_err(|&e| {
            let why = match e {
                e if e == EOPNOTSUPP => "built without CONFIG_MULTIKERNEL_IKC_FAULT_INJECT",
                e if e == EINVAL => "unknown fault (known: head, magic, net, net_ring, nmi)",
                e if e == EAGAIN => "the ring is full now",
                _ => "the instance is not running, or has no network link",
            };
            warn(format_args!("ikc/inject {}: {why}", this.name.as_str()))
        })
    }

    /// The last bytes of the instance's console output (a page's worth).
    fn show_console(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        let mut recent = KVec::from_elem(0u8, CONSOLE_SHOWN, GFP_KERNEL)?;
        let n = this.console.recent(&mut recent);
        buf.write_bytes(&recent[..n])
    }

    /// One IKC round trip to the instance's kernel, in nanoseconds.
    fn show_ping(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        admin("ping")?;
        let channel = this.endpoint.channel().ok_or(ENOTCONN)?;
        let size = this.endpoint.ping_size.load(Ordering::Relaxed);
        let ns = channel.ping(size)?;
        writeln!(buf, "{ns}")?;
        Ok(())
    }

    /// The network link: the host's device (as named at create), its MAC and the instance's
    /// (`mkv0` there); `off` without one (`net=off`, the device could not be made, or
    /// `destroy` began).
    fn show_net(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        use crate::ikc::{
            net::mac,
            Side, //
        };
        if !this.has_net_device() {
            writeln!(buf, "off")?;
            return Ok(());
        }
        write!(buf, "mkv{}", this.id)?;
        for m in [mac(this.id, Side::Host), mac(this.id, Side::Instance)] {
            write!(
                buf,
                " {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            )?;
        }
        writeln!(buf)?;
        Ok(())
    }

    /// The restart policies given at create, and the automatic restarts in a row.
    fn show_policy(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(
            buf,
            "on_reboot={} on_crash={} restarts={}",
            this.on_reboot.as_str(),
            this.on_crash.as_str(),
            this.auto_restarts()
        )?;
        Ok(())
    }

    fn show_stop_timeout(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{}", this.stop_timeout_ms.load(Ordering::Relaxed))?;
        Ok(())
    }

    /// Sets how long `control stop` waits before it kills (100..=600000 ms; default 10000).
    fn store_stop_timeout(this: &Self, input: &[u8]) -> Result {
        Self::store_ms(this, input, "stop_timeout_ms", 100, &this.stop_timeout_ms)
    }

    fn show_start_timeout(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{}", this.start_timeout_ms.load(Ordering::Relaxed))?;
        Ok(())
    }

    /// Sets how long a started kernel has to report in (1000..=600000 ms; default 30000).
    fn store_start_timeout(this: &Self, input: &[u8]) -> Result {
        Self::store_ms(
            this,
            input,
            "start_timeout_ms",
            1000,
            &this.start_timeout_ms,
        )
    }

    /// Stores a number of milliseconds from `min` to [`TIMEOUT_MAX_MS`] written to `file`.
    fn store_ms(this: &Self, input: &[u8], file: &str, min: u32, to: &AtomicU32) -> Result {
        admin(file)?;
        let text = core::str::from_utf8(input).map_err(|_| EINVAL)?.trim();
        let ms: u32 = text.parse().map_err(|_| EINVAL)?;
        if !(min..=TIMEOUT_MAX_MS).contains(&ms) {
            warn(format_args!(
                "{file} {}: {text} outside {min}..={TIMEOUT_MAX_MS}",
                this.name.as_str()
            ));
            return Err(EINVAL);
        }
        to.store(ms, Ordering::Relaxed);
        Ok(())
    }

    /// Sets the payload size of the pings (8..=4096 bytes; default 64).
    fn store_ping(this: &Self, input: &[u8]) -> Result {
        admin("ping")?;
        let text = core::str::from_utf8(input).map_err(|_| EINVAL)?.trim();
        let size: usize = text.parse().map_err(|_| EINVAL)?;
        if !(8..=crate::base::ring::MAX_PAYLOAD).contains(&size) {
            warn(format_args!(
                "ping {}: size {size} outside 8..=4096",
                this.name.as_str()
            ));
            return Err(EINVAL);
        }
        this.endpoint.ping_size.store(size, Ordering::Relaxed);
        Ok(())
    }
}

/// Console bytes `instances/NAME/console` shows: what fits a sysfs page.
const CONSOLE_SHOWN: usize = 4000;

kernel::sysfs_attributes! {
    impl DirData for InstanceDir {
        group {
            id: read_only(InstanceDir::show_id),
            cpus: read_only(InstanceDir::show_cpus),
            memory: read_only(InstanceDir::show_memory),
            state: read_only(InstanceDir::show_state),
            last_stop: read_only(InstanceDir::show_last_stop),
            uptime_ms: read_only(InstanceDir::show_uptime),
            image: read_only(InstanceDir::show_image),
            control: write_only(InstanceDir::store_control),
            console: read_only(InstanceDir::show_console) mode 0o400,
            ping: read_write(InstanceDir::show_ping, InstanceDir::store_ping) mode 0o600,
            policy: read_only(InstanceDir::show_policy),
            net: read_only(InstanceDir::show_net),
            start_timeout_ms: read_write(InstanceDir::show_start_timeout,
                                         InstanceDir::store_start_timeout) mode 0o644,
            stop_timeout_ms: read_write(InstanceDir::show_stop_timeout,
                                        InstanceDir::store_stop_timeout) mode 0o644,
        },
        group ikc {
            tx: read_only(InstanceDir::show_ikc_tx),
            rx: read_only(InstanceDir::show_ikc_rx),
            bytes: read_only(InstanceDir::show_ikc_bytes),
            ring_full: read_only(InstanceDir::show_ikc_ring_full),
            errors: read_only(InstanceDir::show_ikc_errors),
            doorbells: read_only(InstanceDir::show_ikc_doorbells),
            state: read_only(InstanceDir::show_ikc_state),
            inject: write_only(InstanceDir::store_ikc_inject),
        },
    }
}
