// SPDX-License-Identifier: GPL-2.0

//! The host update (`Documentation/multikernel/update.rst`): instances keep running while the
//! host kexecs into a new kernel, which adopts them.
//!
//! In the kernel going away, `kernel_kexec()` (patch 0010) calls, through `handover.c`:
//!
//! * [`multikernel_handover_prepare`]: refuses (nothing changed) unless the instances can be
//!   handed over: KHO on, the next kernel loaded with it and declaring our version, none
//!   starting or stopping (waited for, bounded). Then starts are refused from here on and a
//!   KHO blob big enough for every instance is published.
//! * [`multikernel_handover_commit`]: closes the host's end of each channel (nothing is
//!   written into the instance's memory), and writes each instance's record (`base/
//!   handover.rs`). The instances' kernels keep running on their CPUs, untouched by the rest
//!   of the kexec (their CPUs are offline and not present here, their memory is the pool).
//! * [`multikernel_handover_cancel`]: a kexec that failed after the prepare.
//!
//! In the next kernel, `handover.c` reserved the pool again and held the instances' CPUs out
//! of SMP bring-up; [`adopt`], at module init, makes each instance again from its record,
//! opens its channel where the rings were left, and lets its work watch it.

use crate::{
    base::{
        handover::{
            self,
            blob_bytes,
            CarriedImage,
            Positions,
            Record, //
        },
        report::warn,
        spec::Policy,
        wire::NET_OFFSET,
    },
    control::registry,
    ikc::{
        net::NetLink,
        Channel,
        HostPlace,
        LinkState, //
    },
    instance::{
        ImageInfo,
        Instance,
        Phase,
        State,
        StopReason, //
    },
    sys::handover::{
        cpu_by_apic,
        held,
        unhold,
        Published,
        Taken, //
    },
};
use core::{
    ffi::c_int,
    sync::atomic::Ordering, //
};
use kernel::{
    bindings,
    cpu::CpuId,
    prelude::*,
    sync::Arc,
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
};

// The header C reads is the one `base/handover.rs` writes.
const _: () =
    assert!(core::mem::size_of::<bindings::multikernel_handover>() == handover::HEADER_BYTES);
const _: () = assert!(bindings::MULTIKERNEL_HANDOVER_MAGIC == handover::MAGIC);
const _: () = assert!(bindings::MULTIKERNEL_HANDOVER_VERSION == handover::VERSION);

/// Called by `kexec_file_load()` (patch 0010) for a kernel it loaded to replace this one: the
/// handover version the image declares (its `MKHO` record), 0 for none.
#[no_mangle]
extern "C" fn multikernel_image_handover_version(
    kernel: *const core::ffi::c_void,
    len: core::ffi::c_ulong,
) -> u32 {
    // SAFETY: `kexec_file.c` passes the image it read into `kernel_buf`, `len` bytes, which
    // stay unchanged during the call.
    let file = unsafe { crate::sys::handover::image_bytes(kernel, len as usize) };
    crate::base::loader::handover_version(file)
}

/// How long `kexec -e` waits for instances that are starting or stopping to settle.
pub(crate) const SETTLE_MS: i64 = 10_000;

/// Called by `kernel_kexec()` (patch 0010, through `handover.c`) before anything else of the
/// kexec: 0, or a refusal (`-EBUSY`, `-EINVAL`, `-ENOMEM`) that changed nothing. `kho`: KHO
/// is on and the image was loaded with it; `jump`: a kexec jump (it comes back); the version
/// the next kernel declares.
#[no_mangle]
extern "C" fn multikernel_handover_prepare(kho: bool, jump: bool, next_version: u32) -> c_int {
    match prepare(kho, jump, next_version) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

fn prepare(kho: bool, jump: bool, next_version: u32) -> Result {
    if !crate::kexec::enabled() {
        return Ok(());
    }
    let mut registry = registry();
    if registry.instances().next().is_none() {
        return Ok(());
    }
    // Only instances whose kernel may run need the handover; without one, others (reserved,
    // loaded, stopped) go with the old kernel, as they always did.
    let running = |registry: &crate::control::Registry| {
        registry.instances_arc().any(|i| {
            let mut life = i.life();
            crate::spawn::observe(i, &mut life);
            life.state().killable()
        })
    };
    let why = if jump {
        Some("a kexec jump cannot hand them over")
    } else if !kho {
        Some("hand them over with kho=on at boot and the next kernel loaded by kexec_file_load (kexec -s)")
    } else {
        None
    };
    if let Some(why) = why {
        if !running(&registry) {
            return Ok(());
        }
        drop(registry);
        crate::control::refused_while_running("kexec -e", why);
        return Err(EBUSY);
    }
    if next_version != handover::VERSION {
        if !running(&registry) {
            return Ok(());
        }
        warn(format_args!(
            "kexec -e refused: the next kernel cannot adopt the instances (its handover \
             version is {next_version}, this kernel's {}; 0: it has no multikernel)",
            handover::VERSION
        ));
        return Err(EINVAL);
    }
    // Instances that are starting or stopping settle first, bounded: a restart under way
    // (stopping, then starting) completes, as does what the instance's work has yet to do
    // after a stop (`stopped_from`: a restart policy's start, a `restart`'s). Once none is
    // busy, starts are refused (and the instances looked at again, for one that began
    // meanwhile).
    let busy = |registry: &crate::control::Registry| {
        registry.instances_arc().find_map(|i| {
            let mut life = i.life();
            crate::spawn::observe(i, &mut life);
            (matches!(life.state(), State::Starting | State::Stopping)
                || life.stopped_from.is_some())
            .then(|| (i.clone(), life.state()))
        })
    };
    let deadline = Instant::<Monotonic>::now() + Delta::from_millis(SETTLE_MS);
    let mut said = false;
    loop {
        let mut found = busy(&registry);
        if found.is_none() {
            crate::spawn::set_going_down();
            found = busy(&registry);
            if found.is_none() {
                break;
            }
            crate::spawn::clear_going_down();
        }
        if let Some((instance, state)) = found
            .as_ref()
            .filter(|_| deadline.elapsed().as_nanos() >= 0)
        {
            warn(format_args!(
                "kexec -e refused: instance {} is still {} after {SETTLE_MS} ms",
                instance.name.as_str(),
                state.as_str()
            ));
            return Err(EBUSY);
        }
        if let Some((instance, state)) = found.as_ref().filter(|_| !said) {
            said = true;
            pr_info!(
                "kexec -e: waiting for instance {} ({}) to settle before the host update\n",
                instance.name.as_str(),
                state.as_str()
            );
        }
        drop(registry);
        fsleep(Delta::from_millis(100));
        registry = crate::control::registry();
    }
    let size = blob_bytes(registry.instances().map(|i| i.cpus.len()));
    match Published::new(size) {
        Ok(blob) => {
            registry.handover = Some(blob);
            Ok(())
        }
        Err(e) => {
            crate::spawn::clear_going_down();
            warn(format_args!(
                "kexec -e refused: KHO cannot preserve the instances' {size}-byte handover"
            ));
            Err(e)
        }
    }
}

/// Called by `kernel_kexec()` when a prepared handover's kexec failed before the commit.
#[no_mangle]
extern "C" fn multikernel_handover_cancel() {
    let blob = registry().handover.take();
    if blob.is_some() {
        crate::spawn::clear_going_down();
    }
    drop(blob);
}

/// Called by `kernel_kexec()` once nothing can fail any more: hands every instance over (a
/// no-op unless prepared). Should the records not fit (no memory for them), nothing is
/// handed over: the reboot notifier then stops the instances as for any reboot, and the
/// next kernel brings their CPUs up.
#[no_mangle]
extern "C" fn multikernel_handover_commit() {
    let mut registry = registry();
    let Some(mut blob) = registry.handover.take() else {
        return;
    };
    // Everything that can fail first, with every channel still open: should a record not
    // be made (no memory), nothing is handed over and the reboot notifier stops the
    // instances in order, as for any reboot.
    let mut records = KVec::new();
    let mut whole = registry.pool_range().is_some()
        && records
            .reserve(registry.instances().count(), GFP_KERNEL)
            .is_ok();
    for instance in registry.instances_arc() {
        if !whole {
            break;
        }
        let mut life = instance.life();
        // What it is now, not what its work saw last (a kernel that stopped beating is
        // carried crashed, not running).
        crate::spawn::observe(instance, &mut life);
        match record(instance, &life) {
            Ok(rec) => whole = records.push_within_capacity(rec).is_ok(),
            Err(e) => {
                pr_err!(
                    "host update: {}: cannot record it ({e:?})\n",
                    instance.name.as_str()
                );
                whole = false;
            }
        }
    }
    if !whole {
        pr_err!("host update: the instances are not handed over: they stop as for a reboot\n");
        return;
    }
    // Then each channel closes (nothing more moves through it here) and its rings' positions
    // are taken.
    for (instance, rec) in registry.instances_arc().zip(records.iter_mut()) {
        let mut life = instance.life();
        match instance.endpoint.channel() {
            Some(ch) if ch.state() == LinkState::Open => {
                let (at, net) = ch.hand_over();
                rec.channel = Some(at);
                rec.net_link = net;
            }
            Some(ch) => ch.close(),
            None => (),
        }
        // CPUs that run no instance kernel wait in this kernel's `play_dead`, in memory the
        // next kernel reuses, and it never brings them up (they are held): INIT parks them in
        // wait-for-SIPI, which needs no memory.
        if life.cpus_out {
            crate::spawn::reset_cpus(instance);
        }
        // Its work leaves it alone from now on; so does every operation.
        life.dying = true;
    }
    let written = match registry.pool_range() {
        Some(pool) => handover::encode(
            blob.bytes(),
            pool,
            crate::sys::handover::tsc_now(),
            &records,
        )
        .inspect_err(|why| pr_err!("host update: cannot write the handover ({why})\n"))
        .is_ok(),
        None => false,
    };
    if !written {
        // Sized in `prepare` for these instances: not expected. Their channels are closed;
        // the reboot notifier kills them.
        for instance in registry.instances_arc() {
            instance.life().dying = false;
        }
        pr_err!("host update: the instances are not handed over: they are killed\n");
        return;
    }
    crate::spawn::set_handed_over();
    pr_info!(
        "host update: {} instance(s) handed over to the next kernel\n",
        records.len()
    );
    blob.hand_over();
}

/// The record of `instance` (its life cycle `life` locked), without its channel's positions.
fn record(instance: &Instance, life: &crate::instance::Life) -> Result<Record> {
    let mut apic_ids = KVec::with_capacity(instance.cpus.len(), GFP_KERNEL)?;
    for &cpu in instance.cpus.iter() {
        let id = CpuId::from_u32(cpu).ok_or(EINVAL)?;
        apic_ids.push(crate::sys::spawn::apic_id(id), GFP_KERNEL)?;
    }
    let image = instance.image();
    let image = match image.as_ref() {
        Some(img) => {
            let mut cmdline = KVec::new();
            let keep = img.cmdline.len().min(handover::CMDLINE_MAX);
            cmdline.extend_from_slice(&img.cmdline[..keep], GFP_KERNEL)?;
            Some(CarriedImage {
                kernel_size: img.kernel_size,
                initrd_size: img.initrd_size,
                cmdline,
                layout: img.layout,
            })
        }
        None => None,
    };
    let (console_total, console) = instance.console.snapshot();
    let uptime_ns = instance
        .uptime()
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0));
    Ok(Record {
        id: instance.id,
        name: instance.name,
        apic_ids,
        memory: instance.memory,
        state: life.state() as u8,
        last_stop: life.last_stop() as u8,
        on_reboot: policy_raw(instance.on_reboot),
        on_crash: policy_raw(instance.on_crash),
        net: instance.has_net_device(),
        cpus_out: life.cpus_out,
        dirty: life.dirty,
        auto_restarts: life.auto_restarts,
        stop_timeout_ms: instance.stop_timeout_ms.load(Ordering::Relaxed),
        start_timeout_ms: instance.start_timeout_ms.load(Ordering::Relaxed),
        uptime_ns,
        image,
        channel: None,
        net_link: None,
        console_total,
        console,
    })
}

fn policy_raw(p: Policy) -> u8 {
    match p {
        Policy::Stop => 0,
        Policy::Restart => 1,
    }
}

fn policy_from_raw(v: u8) -> Option<Policy> {
    match v {
        0 => Some(Policy::Stop),
        1 => Some(Policy::Restart),
        _ => None,
    }
}

/// At module init, after the registry exists: adopts the instances the previous kernel
/// handed over, if it did. Each is adopted whole or not at all (said); one that is not keeps
/// its CPUs held and its memory reserved, since its kernel may still run there.
pub(crate) fn adopt() {
    // Unless every record can be read, any part of the pool may hold a kernel that still
    // runs on a held CPU: none of it is given out.
    let lost_all = |why: &str| {
        pr_err!(
            "host update: the handed-over state is unusable ({why}): instances are lost, \
             the pool stays out of use\n"
        );
        registry().quarantine_pool();
    };
    let Some(taken) = Taken::take() else {
        if crate::sys::handover::seen() {
            lost_all("KHO cannot give the blob back");
        }
        return;
    };
    let h = match handover::decode(taken.bytes()) {
        Ok(h) => h,
        Err(why) => return lost_all(why),
    };
    if registry().pool_range() != Some(h.pool) {
        return lost_all("the pool is not the one handed over");
    }
    // What ran on, unseen, between the records and now: part of each kernel's uptime.
    let gap_ns = crate::sys::handover::tsc_since_ns(h.tsc);
    let (mut adopted, mut lost) = (0, 0);
    for rec in h.records {
        let result = rec
            .and_then(|rec| {
                // The CPUs C held out of SMP bring-up are those of the records.
                if rec.apic_ids.iter().all(|a| h.held.contains(a)) {
                    Ok(rec)
                } else {
                    Err("a CPU not in the header's list")
                }
            })
            .map_err(|why| {
                pr_err!("host update: an instance's record is unusable ({why}): it is lost\n");
                EINVAL
            })
            .and_then(|rec| adopt_one(rec, gap_ns));
        match result {
            Ok(()) => adopted += 1,
            Err(_) => lost += 1,
        }
    }
    pr_info!("host update: {adopted} instance(s) adopted, {lost} lost\n");
    if lost > 0 {
        // A lost instance's kernel may run on in the pool: the adopted ones keep their
        // memory, nothing else is given out.
        registry().quarantine_pool();
    }
    drop(taken);
}

/// Makes one instance again from its record (`gap_ns`: how long the update took, for its
/// uptime). If it cannot, its CPUs stay held (its kernel may still run there).
fn adopt_one(rec: Record, gap_ns: u64) -> Result {
    let label = rec.name;
    let label = label.as_str();
    let bad = |what: &str| {
        pr_err!("host update: {label}: {what}: it is lost\n");
        EINVAL
    };
    let state = State::from_raw(rec.state).ok_or_else(|| bad("unknown state"))?;
    let last_stop = StopReason::from_raw(rec.last_stop).ok_or_else(|| bad("unknown stop"))?;
    let policies = (
        policy_from_raw(rec.on_reboot).ok_or_else(|| bad("unknown policy"))?,
        policy_from_raw(rec.on_crash).ok_or_else(|| bad("unknown policy"))?,
    );
    let mut cpus = KVec::with_capacity(rec.apic_ids.len(), GFP_KERNEL)?;
    for &apic in rec.apic_ids.iter() {
        let cpu = cpu_by_apic(apic)
            .filter(|&c| held(c) && c.as_u32() != 0 && !kernel::cpu_hotplug::is_online(c))
            .ok_or_else(|| bad("a CPU this kernel does not hold for it"))?;
        if cpus.contains(&cpu.as_u32()) {
            return Err(bad("a CPU twice"));
        }
        cpus.push(cpu.as_u32(), GFP_KERNEL)?;
    }
    // The CPU order is the instance's (its first CPU takes doorbells); the registry keeps
    // them sorted, as `create` does.
    let first = *cpus.first().ok_or(EINVAL)?;
    let mut sorted = KVec::new();
    sorted.extend_from_slice(&cpus, GFP_KERNEL)?;
    sorted.sort_unstable();
    if sorted.first() != Some(&first) {
        return Err(bad("its first CPU is not its lowest"));
    }
    let now = Instant::<Monotonic>::now();
    // Reserved and loaded instances come back reserved: the image's bytes are not carried.
    let (phase, image) = match state {
        State::Reserved | State::Loaded => (Phase::Reserved, None),
        State::Starting => (Phase::Starting { since: now }, rec.image),
        State::Running | State::Stopping => (Phase::Running { since: now }, rec.image),
        State::Failed => (Phase::Failed, rec.image),
        State::Stopped => (Phase::Stopped, rec.image),
        State::Crashed => (Phase::Crashed, rec.image),
    };
    let layout = image.as_ref().map(|img| img.layout);
    let info = image
        .map(|img| ImageInfo::carried(img.kernel_size, img.initrd_size, img.cmdline, img.layout))
        .transpose()?;
    let instance = registry().adopt(rec.id, rec.name, sorted, rec.memory, policies, rec.net)?;
    // From here the instance exists: what fails below leaves it without a channel (said).
    let mut life = instance.life();
    life.cpus_out = rec.cpus_out;
    life.dirty = rec.dirty;
    life.auto_restarts = rec.auto_restarts;
    instance
        .stop_timeout_ms
        .store(rec.stop_timeout_ms, Ordering::Relaxed);
    instance
        .start_timeout_ms
        .store(rec.start_timeout_ms, Ordering::Relaxed);
    instance.console.restore(rec.console_total, &rec.console);
    if info.is_some() {
        instance.set_image(&mut life, info);
    }
    if phase.since().is_some() {
        // At most a few centuries: the sum with this kernel's time never overflows.
        instance.uptime_carried_ns.store(
            rec.uptime_ns.saturating_add(gap_ns).min(1 << 62),
            Ordering::Relaxed,
        );
    }
    instance.adopt_life(&mut life, phase, last_stop);
    if let (Some(layout), Some(at)) = (layout, rec.channel) {
        open_channel(&instance, layout, rec.apic_ids[0], at, rec.net_link);
    }
    // Owned and hidden now: the ownership gate keeps the CPUs offline from here.
    for &cpu in instance.cpus.iter() {
        if let Some(id) = CpuId::from_u32(cpu) {
            unhold(id);
        }
    }
    if phase.since().is_some() {
        crate::spawn::watch_adopted(&instance);
    }
    pr_info!(
        "host update: {label} adopted: {}, CPUs {:?}, uptime {} ms\n",
        life.state().as_str(),
        &instance.cpus[..],
        instance.uptime().map_or(0, |d| d.as_millis())
    );
    Ok(())
}

/// Opens the host's end of the adopted instance's channel where the previous kernel left it,
/// and its network link; without them (said) the instance runs on, unreachable.
fn open_channel(
    instance: &Arc<Instance>,
    layout: crate::base::loader::Layout,
    peer_apic: u32,
    at: Positions,
    net_at: Option<Positions>,
) {
    let name = instance.name.as_str();
    let channel = Channel::host(
        HostPlace {
            name,
            id: instance.id,
            start: layout.channel.start,
            mailbox: layout.mailbox.start,
            peer_apic,
            console: instance.console.clone(),
            endpoint: &instance.endpoint,
        },
        Some(at),
    );
    let channel = match channel {
        Ok(channel) => channel,
        Err(e) => {
            warn(format_args!(
                "host update: {name}: cannot open its channel again ({e:?})"
            ));
            return;
        }
    };
    if let (Some(net_at), Some(dev)) = (net_at, instance.net_device()) {
        match NetLink::host(
            layout.channel.start + NET_OFFSET as u64,
            peer_apic,
            dev,
            Some(net_at),
        ) {
            Ok(link) => {
                let _ = channel.set_net(link);
            }
            Err(e) => warn(format_args!(
                "host update: {name}: cannot attach its network link again ({e:?})"
            )),
        }
    }
    instance.endpoint.set(Some(channel));
}
