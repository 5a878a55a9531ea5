// SPDX-License-Identifier: GPL-2.0

//! `kexec_file_load(2)` with `KEXEC_FILE_MULTIKERNEL`: loading a kernel into an instance.
//!
//! The syscall reaches `multikernel_kexec_file_load` here; reading the request (the files, the
//! signature policy, the command line) is `sys::kexec`; this is the instance side. A load is
//! planned completely (`base/loader.rs`) before anything is written, so a refused load leaves the previous image, if
//! any, as it was.

use crate::{
    base::{
        loader::{
            self,
            BzImage,
            Layout,
            LoadError, //
        },
        report::warn,
        spec::{
            self,
            VecWriter, //
        },
        vmlinux,
    },
    control::registry,
    instance::{
        ImageInfo,
        Instance, //
    },
    sys::{
        self,
        kexec::Load,
        spawn, //
    },
};
use core::{
    fmt::Write,
    sync::atomic::{
        AtomicBool,
        Ordering, //
    },
};
use kernel::{
    alloc::VVec,
    cpu::CpuId,
    prelude::*,
    sync::Arc, //
};

/// Set once the subsystem is up: loads before that (or after a failed init) get `ENODEV`.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether a load unpacks an LZ4 kernel (`base/vmlinux.rs`), so starts enter it at its
/// `startup_64` without decompressing; `/sys/kernel/multikernel/unpack`. Applies to the next
/// load.
static UNPACK: AtomicBool = AtomicBool::new(true);

/// Whether loads unpack LZ4 kernels.
pub(crate) fn unpacks() -> bool {
    UNPACK.load(Ordering::Relaxed)
}

/// Makes the next loads unpack LZ4 kernels, or leave every kernel to decompress itself.
pub(crate) fn set_unpack(on: bool) {
    UNPACK.store(on, Ordering::Relaxed);
}

/// Lets `kexec_file_load(2)` reach the instances; call once the registry is set up.
pub(crate) fn enable() {
    ENABLED.store(true, Ordering::Release);
}

/// Called by `kexec_file_load(2)` for `KEXEC_FILE_MULTIKERNEL` loads, after the permission
/// checks every kexec load gets.
///
/// # Safety
///
/// Called only from the syscall, with its arguments: `cmdline_ptr` is a user pointer.
#[no_mangle]
unsafe extern "C" fn multikernel_kexec_file_load(
    kernel_fd: c_int,
    initrd_fd: c_int,
    cmdline_len: c_ulong,
    cmdline_ptr: *const c_char,
    flags: c_ulong,
) -> c_long {
    if !ENABLED.load(Ordering::Acquire) {
        return ENODEV.to_errno() as c_long;
    }
    let ret = sys::kexec::serve(
        kernel_fd,
        initrd_fd,
        cmdline_len,
        cmdline_ptr as usize,
        flags as u64,
        load,
        unload,
    );
    match ret {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

/// Whether the subsystem is up (module init finished): `kernel_kexec()`'s handover
/// (`handover.rs`) has nothing to do before.
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// The instance with id `id`. Only the lookup holds the registry lock: a load that copies
/// megabytes or takes CPUs back holds up nobody but its instance (its `life` lock). The caller
/// checks `dying` once it holds the instance's life cycle: a destroy may have come in between.
fn find(id: u32, what: &str) -> Result<Arc<Instance>> {
    registry().by_id(id).cloned().ok_or_else(|| {
        warn(format_args!("kexec {what}: no instance with id {id}"));
        ENOENT
    })
}

fn load(req: &Load<'_>) -> Result {
    let instance = find(req.id, "load")?;
    let name = instance.name.as_str();
    let mut life = instance.life();
    if life.dying {
        return Err(ENOENT);
    }
    crate::control::refuse_going_down("kexec load", name)?;
    crate::spawn::observe(&instance, &mut life);
    let state = life.state();
    if !state.loadable() {
        warn(format_args!(
            "kexec load {name}: instance is {}",
            state.as_str()
        ));
        return Err(EBUSY);
    }
    // Its kernel stopped by itself: its CPUs halted, but a load writes the memory they ran
    // in. Take them back first.
    if !life.cpus_out {
        crate::spawn::verify_out(&instance, &mut life)?;
    }
    let memory = instance.memory;
    let refused = |e: LoadError| {
        match e {
            LoadError::NotKernel(why) => warn(format_args!(
                "kexec load {name}: not a kernel this loader can start: {why}"
            )),
            LoadError::CmdlineTooLong(max) => warn(format_args!(
                "kexec load {name}: command line longer than the kernel's {max} bytes"
            )),
            LoadError::TooBig(needed) => warn(format_args!(
                "kexec load {name}: needs {needed} bytes of memory, the instance has {}",
                memory.len
            )),
            LoadError::BelowPreferred(pref) => warn(format_args!(
                "kexec load {name}: instance memory starts at {:#x}, below the kernel's \
                 {pref:#x}: its decompressor would move it out of the instance",
                memory.start
            )),
            LoadError::NoMemory => warn(format_args!(
                "kexec load {name}: no memory to unpack the kernel into"
            )),
        }
        e.errno()
    };
    let image = BzImage::parse(req.kernel).map_err(refused)?;
    // Whether it fits at all, before unpacking (up to init_size bytes) for nothing; the
    // command line is counted below, with the real layout.
    let initrd_len = req.initrd.map(|i| i.len() as u64).filter(|&len| len > 0);
    Layout::plan(memory, &image, initrd_len, 0, loader::BZIMAGE_ENTRY).map_err(refused)?;
    // Decompressed here once, rather than on the instance's CPU at every start.
    let unpacked = if unpacks() {
        vmlinux::unpack(
            image.file,
            image.payload,
            image.pref_address,
            image.init_size,
            sys::lz4::decode,
        )
        .map_err(refused)?
    } else {
        None
    };
    let initrd = req.initrd.filter(|initrd| !initrd.is_empty());
    // The command line the kernel gets: the user's, then what tells it it is an instance.
    // The mailbox and channel addresses depend on the layout, which depends on the length: the
    // addresses are written with a fixed width so the length is known first.
    let (tsc_khz, lapic_period) = spawn::host_timing();
    // The host's boot CPU: the instance registers it first as the "real BSP" it must never
    // send INIT to, which also keeps x86 from limiting it to one CPU.
    let host_bsp = spawn::apic_id(CpuId::from_u32(0).ok_or(EINVAL)?);
    // Entered with the host's paging mode, the kernel must keep it (see below).
    let la57 = spawn::host_la57();
    let tsc_reliable = spawn::host_tsc_reliable();
    // The instance's parameters go before a "--" of the user's; a line the kernel would stop
    // reading before them is refused.
    let (kernel_args, init_args) = spec::split_init_args(req.cmdline).map_err(|e| {
        warn(format_args!(
            "kexec load {name}: the command line {}: the kernel would not read the instance's \
             parameters after it",
            match e {
                spec::CmdlineError::Nul => "has a NUL byte before its end",
                spec::CmdlineError::OpenQuote => "leaves a double quote open",
            }
        ));
        EINVAL
    })?;
    if la57 && spec::sets_param(req.cmdline, b"no5lvl") {
        warn(format_args!(
            "kexec load {name}: no5lvl on a host with 5-level paging: the instance must keep \
             the host's paging mode"
        ));
        return Err(EINVAL);
    }
    let user_tsc_trust = spec::param_values(req.cmdline, b"tsc")
        .any(|v| matches!(v, b"reliable" | b"unstable" | b"watchdog" | b"nowatchdog"));
    let instance_params = |mailbox: u64, channel: u64| {
        let mut line = KVec::new();
        // Its terminal over IKC is a console from the start (the log reaches the host); first,
        // so that a console= of the user's own decides /dev/console.
        line.extend_from_slice(b"console=hvc0 ", GFP_KERNEL)?;
        // What tells it it is an instance goes before a "--" of the user's, where the kernel
        // still reads it (after it, it would be init's and the kernel would boot as if it
        // owned the machine).
        line.extend_from_slice(kernel_args, GFP_KERNEL)?;
        let mut out = VecWriter(&mut line);
        write!(
            out,
            " multikernel.instance={} multikernel.apic_ids=",
            req.id
        )
        .map_err(|_| ENOMEM)?;
        for (i, &c) in instance.cpus.iter().enumerate() {
            let apic = spawn::apic_id(CpuId::from_u32(c).ok_or(EINVAL)?);
            write!(out, "{}{apic}", if i > 0 { "," } else { "" }).map_err(|_| ENOMEM)?;
        }
        write!(
            out,
            " multikernel.host_bsp_apic={host_bsp} multikernel.tsc_khz={tsc_khz} \
             multikernel.lapic_period={lapic_period} multikernel.mailbox={mailbox:#018x} \
             multikernel.ikc={channel:#018x} acpi=off pci=off nokaslr swiotlb=noforce"
        )
        .map_err(|_| ENOMEM)?;
        // The paging mode it is entered in: switching would need a trampoline below 1 MiB.
        if !la57 {
            write!(out, " no5lvl").map_err(|_| ENOMEM)?;
        }
        // No watchdog clocksource in an instance: without this it never trusts the TSC for
        // high-resolution timers. A tsc= of the user's own about its trust decides instead.
        if tsc_reliable && !user_tsc_trust {
            write!(out, " tsc=reliable").map_err(|_| ENOMEM)?;
        }
        if let Some(init_args) = init_args {
            line.extend_from_slice(b" --", GFP_KERNEL)?;
            line.extend_from_slice(init_args, GFP_KERNEL)?;
        }
        Ok::<_, Error>(line)
    };
    let boot_cmdline_len = instance_params(0, 0)?.len();
    let layout = Layout::plan(
        memory,
        &image,
        initrd.map(|i| i.len() as u64),
        boot_cmdline_len as u64,
        unpacked.as_ref().map_or(loader::BZIMAGE_ENTRY, |k| k.entry),
    )
    .map_err(refused)?;
    let boot_cmdline = instance_params(layout.mailbox.start, layout.channel.start)?;
    let zero_page = loader::boot_params(&image, &layout, memory)?;
    let mut cmdline = KVec::new();
    cmdline.extend_from_slice(req.cmdline, GFP_KERNEL)?;
    let is_unpacked = unpacked.is_some();
    let payload = match unpacked {
        Some(kernel) => kernel.image,
        None => {
            let mut payload = VVec::new();
            payload.extend_from_slice(image.payload, GFP_KERNEL)?;
            payload
        }
    };
    let mut initrd_copy = VVec::new();
    if let Some(bytes) = initrd {
        initrd_copy.extend_from_slice(bytes, GFP_KERNEL)?;
    }
    let mut info = KBox::new(
        ImageInfo {
            kernel_size: req.kernel.len() as u64,
            initrd_size: initrd.map_or(0, |i| i.len() as u64),
            cmdline,
            layout,
            unpacked: is_unpacked,
            payload,
            initrd: initrd_copy,
            boot_cmdline,
            zero_page,
            fresh: false,
            carried: false,
        },
        GFP_KERNEL,
    )?;

    // Everything is checked and allocated: write. The offsets come from `layout`, which lies
    // inside `memory`, so this only fails if the mapping cannot be made, before any byte is
    // written; if it failed later, no stale image would be left claiming to be loaded.
    life.dirty = true;
    if let Err(e) = info.write(memory) {
        instance.set_image(&mut life, None);
        warn(format_args!(
            "kexec load {name}: writing the image failed ({e:?})"
        ));
        return Err(e);
    }
    info.fresh = true;
    if req.debug {
        pr_info!(
            "kexec load {name}: kernel {:#x}, boot_params {:#x}, cmdline {:#x}, entry {:#x}\n",
            layout.kernel.start,
            layout.boot_params.start,
            layout.cmdline.start,
            layout.entry
        );
    }
    instance.set_image(&mut life, Some(info));
    Ok(())
}

fn unload(id: u32) -> Result {
    let instance = find(id, "unload")?;
    let mut life = instance.life();
    if life.dying {
        return Err(ENOENT);
    }
    crate::control::refuse_going_down("kexec unload", instance.name.as_str())?;
    crate::spawn::observe(&instance, &mut life);
    let state = life.state();
    if !state.loadable() {
        warn(format_args!(
            "kexec unload {}: instance is {}",
            instance.name.as_str(),
            state.as_str()
        ));
        return Err(EBUSY);
    }
    instance.set_image(&mut life, None);
    Ok(())
}
