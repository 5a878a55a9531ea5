// SPDX-License-Identifier: GPL-2.0

//! Starting and stopping an instance's kernel on its first CPU (x86, EXPERIMENTAL).
//!
//! Start: the image is written afresh into the instance's memory (a previous run decompressed
//! over it), the CPU (offline, owned) is armed (`crate::sys::spawn`), brought online in
//! the host for a moment and taken offline again: on its way out of this kernel, in
//! `play_dead`, it switches to an identity map of the instance's memory and jumps to the
//! kernel's 64-bit entry. Kill: an INIT IPI puts the CPU back in wait-for-SIPI, where the host's
//! next bring-up (a start, or a destroy giving the CPU back) finds it. Each start sets up a
//! fresh IKC channel in the instance's memory; kill closes it.
//! See Documentation/multikernel/spawn.rst.

use crate::{
    base::{
        cpus,
        report::warn,
        spec::Policy, //
    },
    ikc::{
        Channel,
        HostPlace,
        LinkState, //
    },
    instance::{
        Instance,
        Life,
        Phase,
        State,
        StopReason,
        MAX_AUTO_RESTARTS,
        RESTART_RESET_MS,
        WATCH_MS,
        WATCH_RUNNING_MS, //
    },
    sys::spawn, //
};
use core::sync::atomic::{
    AtomicBool,
    Ordering, //
};
use kernel::{
    cpu::CpuId,
    cpu_hotplug,
    prelude::*,
    sync::Arc,
    time::{
        msecs_to_jiffies,
        Delta,
        Instant,
        Monotonic, //
    },
    workqueue::{
        self,
        WorkItem, //
    },
};

/// Set when the host starts going down (reboot, power-off, halt, kexec): from then on
/// instances are only stopped, never started again.
static GOING_DOWN: AtomicBool = AtomicBool::new(false);

/// Set while the host suspends or hibernates (or restores a hibernation image), from the PM
/// notifier that let it go ahead until its end: starts are refused (`EBUSY`).
static SLEEPING: AtomicBool = AtomicBool::new(false);

/// Refuses starts (`on`) while the host sleeps, or allows them again.
pub(crate) fn set_sleeping(on: bool) {
    SLEEPING.store(on, Ordering::SeqCst);
}

/// Whether the host is going down (`ESHUTDOWN` for starts and stops from then on).
pub(crate) fn going_down() -> bool {
    GOING_DOWN.load(Ordering::Acquire)
}

/// The host starts going down: no instance starts from now on.
pub(crate) fn set_going_down() {
    GOING_DOWN.store(true, Ordering::Release);
}

/// Set once this kernel handed its instances to the next one (a host update): it leaves
/// them alone from then on (its reboot notifier does not stop them).
static HANDED_OVER: AtomicBool = AtomicBool::new(false);

/// Whether this kernel handed its instances over.
pub(crate) fn handed_over() -> bool {
    HANDED_OVER.load(Ordering::Acquire)
}

/// This kernel hands its instances over: nothing of it touches them any more.
pub(crate) fn set_handed_over() {
    HANDED_OVER.store(true, Ordering::Release);
}

/// A host update that was set up did not happen (`handover.rs`): instances may start again.
pub(crate) fn clear_going_down() {
    GOING_DOWN.store(false, Ordering::Release);
}

/// After a host update: the instance's work watches its kernel, as after a start.
pub(crate) fn watch_adopted(instance: &Arc<Instance>) {
    watch_later(instance, WATCH_MS);
}

/// Starts `instance`, whose life cycle `life` is locked.
pub(crate) fn start(instance: &Arc<Instance>, life: &mut Life) -> Result {
    let name = instance.name.as_str();
    if going_down() {
        warn(format_args!("start {name}: the host is going down"));
        return Err(ESHUTDOWN);
    }
    if SLEEPING.load(Ordering::SeqCst) {
        warn(format_args!(
            "start {name}: the host is suspending or hibernating"
        ));
        return Err(EBUSY);
    }
    let state = life.state();
    if !state.startable() {
        warn(format_args!(
            "start {name}: instance is {}, not loaded",
            state.as_str()
        ));
        return Err(EBUSY);
    }
    // A CPU that may still run the last kernel would write into the new image.
    if !life.cpus_out {
        verify_out(instance, life).inspect_err(|_| {
            warn(format_args!(
                "start {name}: its CPUs did not come back from the last run"
            ))
        })?;
    }
    let layout = {
        let mut guard = instance.image();
        let image = (*guard).as_mut().ok_or(EINVAL)?;
        if image.carried {
            warn(format_args!(
                "start {name}: its image did not survive the host update: load a kernel first"
            ));
            return Err(ENOEXEC);
        }
        // The kernel decompresses over its image: written afresh unless no run has been since
        // the load wrote it.
        if !image.fresh {
            image.write(instance.memory).inspect_err(|e| {
                warn(format_args!("start {name}: cannot write the image ({e:?})"))
            })?;
        }
        image.fresh = false;
        image.layout
    };
    // The other CPUs first: they wait in the park loop until the kernel starts them through
    // the wakeup record in the mailbox page. Then the first CPU enters the kernel.
    // Two copies of the map, in the two halves of the page-table pages: the first CPU's
    // kernel reworks the tables it is entered on, the parked CPUs keep running on theirs.
    let half = layout.pagetables.len / 2;
    let memory = (instance.memory.start, instance.memory.len);
    let build = |start: u64| {
        // SAFETY: The memory is this instance's (the pool allocator gave it to no one else),
        // and no CPU runs on a map of it: they are all back (`cpus_out`, checked above).
        unsafe { spawn::IdentityMap::build(memory, (start, half), layout.park.start) }.inspect_err(
            |e| {
                warn(format_args!(
                    "start {name}: cannot build the entry map ({e:?})"
                ))
            },
        )
    };
    let map = build(layout.pagetables.start)?;
    let park_map = build(layout.pagetables.start + half)?;
    let wakeup = layout.mailbox.start + spawn::WAKEUP_OFFSET;
    let (first, others) = instance.cpus.split_first().ok_or(EINVAL)?;
    // A fresh channel for this run; doorbells go to the instance's first CPU.
    instance.endpoint.close();
    let first_apic = spawn::apic_id(CpuId::from_u32(*first).ok_or(EINVAL)?);
    // Its network link first (it needs nothing the channel has; nothing to undo if the
    // channel fails): in the same area, after the channel; carrier up on mkvID. Without one
    // the instance still starts (said once).
    let net_start = layout.channel.start + crate::base::wire::NET_OFFSET as u64;
    let net = instance.net_device().and_then(|dev| {
        crate::ikc::net::NetLink::host(net_start, first_apic, dev, None)
            .inspect_err(|e| warn(format_args!("start {name}: no network link ({e:?})")))
            .ok()
    });
    if net.is_none() {
        // What an earlier run (maybe another instance's) left there must not look like a link.
        crate::ikc::net::NetLink::none(net_start).inspect_err(|e| {
            warn(format_args!(
                "start {name}: cannot mark its network area unused ({e:?})"
            ))
        })?;
    }
    let channel = Channel::host(
        HostPlace {
            name,
            id: instance.id,
            start: layout.channel.start,
            mailbox: layout.mailbox.start,
            peer_apic: first_apic,
            console: instance.console.clone(),
            endpoint: &instance.endpoint,
        },
        None,
    )
    .inspect_err(|e| {
        warn(format_args!(
            "start {name}: cannot set up the channel ({e:?})"
        ))
    })?;
    if let Some(link) = net {
        // A fresh channel has none yet.
        let _ = channel.set_net(link);
    }
    instance.endpoint.set(Some(channel));
    let stop = || {
        reset_cpus(instance);
        instance.endpoint.close();
    };
    // From the first CPU armed on, one may run in the instance's memory: if this start fails
    // after it, the INIT of `stop` is not taken on trust either, the CPUs are verified out
    // before the memory is used again (`verify_out`, as after a kill).
    life.cpus_out = false;
    // Each CPU has a stack slot of its own in the park area: the first CPU 0, the others
    // 1 and up.
    for (slot, &cpu) in (1u32..).zip(others.iter()) {
        let id = CpuId::from_u32(cpu).ok_or(EINVAL)?;
        let apic_id = spawn::apic_id(id);
        enter(name, cpu, |id| {
            // SAFETY: `park.start` holds the park loop `ImageInfo::write` put there for this
            // start; the map and park area were built above and stay until the instance is
            // stopped; each CPU has its own slot.
            unsafe {
                spawn::arm(
                    id,
                    &park_map,
                    wakeup,
                    layout.park.start,
                    u64::from(apic_id),
                    slot,
                )
            }
        })
        .inspect_err(|_| stop())?;
    }
    enter(name, *first, |id| {
        // SAFETY: `entry` is the 64-bit entry of the kernel the load checked and `write` put
        // in the instance's memory; the map was built above; slot 0 is the first CPU's.
        unsafe { spawn::arm(id, &map, layout.boot_params.start, layout.entry, 0, 0) }
    })
    .inspect_err(|_| stop())?;
    life.dirty = true;
    // A stop the work had not followed up yet is overtaken by this start.
    life.stopped_from = None;
    instance.uptime_carried_ns.store(0, Ordering::Relaxed);
    instance.set_phase(
        life,
        Phase::Starting {
            since: Instant::<Monotonic>::now(),
        },
    );
    pr_info!(
        "start {name}: CPU {first} entered the instance kernel at {:#x}\n",
        layout.entry
    );
    // Its work watches the kernel from now on, until it stops.
    watch_later(instance, WATCH_MS);
    Ok(())
}

/// Has the instance's work look at it again in `ms` (if it is not queued already).
fn watch_later(instance: &Arc<Instance>, ms: u32) {
    let _ = workqueue::system_unbound()
        .enqueue_delayed::<Arc<Instance>, 0>(instance.clone(), msecs_to_jiffies(ms));
}

/// Sends `cpu` (offline, owned) in: `arm` it, let the host bring it up and take it down
/// again; on its way out it enters.
fn enter(name: &str, cpu: u32, arm: impl FnOnce(CpuId) -> Result) -> Result {
    let id = CpuId::from_u32(cpu).ok_or(EINVAL)?;
    arm(id).inspect_err(|e| warn(format_args!("start {name}: cannot arm CPU {cpu} ({e:?})")))?;
    if let Err(e) = cycle(id) {
        spawn::disarm(id);
        warn(format_args!(
            "start {name}: CPU {cpu} did not cycle through hotplug ({e:?})"
        ));
        return Err(e);
    }
    Ok(())
}

/// Brings owned, offline `cpu` up in the host and takes it down again: on its way into an
/// instance kernel (armed), or to make sure it left one. The host shows it only meanwhile; it
/// is left offline and hidden, also when the cycle fails.
fn cycle(id: CpuId) -> Result {
    let cpu = id.as_u32();
    cpus::set_transit(cpu, true);
    let through = spawn::show_cpu(id)
        .and_then(|()| cpu_hotplug::online(id))
        .and_then(|_| cpu_hotplug::offline(id));
    if through.is_err() {
        let _ = cpu_hotplug::offline(id);
    }
    cpus::set_transit(cpu, false);
    let _ = spawn::hide_cpu(id);
    through.map(|_| ())
}

/// INIT to every CPU of the instance: stops whatever they run.
pub(crate) fn reset_cpus(instance: &Instance) {
    for &cpu in instance.cpus.iter() {
        if let Some(id) = CpuId::from_u32(cpu) {
            spawn::disarm(id);
            spawn::reset_cpu(id);
        }
    }
}

/// Makes sure no CPU of `instance` runs its kernel any more (its life cycle `life` locked): INIT,
/// then each CPU is brought up in the host and taken down again. A CPU the host brought up
/// runs the host's code, so nothing of the instance's runs there; one that does not come up
/// (INIT is blocked in SMM or VMX operation) may still write into the instance's memory:
/// then the instance is `failed` and its memory stays out of every other use.
pub(crate) fn verify_out(instance: &Instance, life: &mut Life) -> Result {
    reset_cpus(instance);
    for &cpu in instance.cpus.iter() {
        let id = CpuId::from_u32(cpu).ok_or(EINVAL)?;
        if let Err(e) = cycle(id) {
            instance.set_stopped(life, Phase::Failed, StopReason::Failed);
            warn(format_args!(
                "{}: CPU {cpu} did not come back to the host ({e:?}): its memory stays out of use",
                instance.name.as_str()
            ));
            return Err(EIO);
        }
    }
    life.cpus_out = true;
    Ok(())
}

/// Stops `instance`'s kernel by force (its life cycle `life` locked): INIT to its CPUs.
pub(crate) fn kill(instance: &Instance, life: &mut Life) -> Result {
    kill_for(instance, life, StopReason::Kill)
}

fn kill_for(instance: &Instance, life: &mut Life, reason: StopReason) -> Result {
    let name = instance.name.as_str();
    let state = life.state();
    if !state.killable() {
        warn(format_args!(
            "kill {name}: instance is {}, nothing runs",
            state.as_str()
        ));
        return Err(EBUSY);
    }
    // What the work had yet to do after an earlier stop is overtaken by this one.
    life.stopped_from = None;
    // Senders and readers get an error from now on; no handler runs after this.
    instance.endpoint.close();
    // A stop in progress is over: the kill decides.
    verify_out(instance, life)?;
    instance.set_stopped(life, Phase::Stopped, reason);
    pr_info!("kill {name}: stopped ({})\n", reason.as_str());
    Ok(())
}

/// Asks `instance`'s kernel to shut down in order (its life cycle `life` locked): a message
/// on its stop port, state `stopping`; its work then sees it stop (`stopped`, `last_stop` =
/// `stop`) or kills it after `stop_timeout_ms`. With `restart`, the image is started again
/// once it stopped. `EBUSY` unless it is `running`; the channel's error if the request cannot
/// be sent (a full ring: the kernel does not take its messages; `kill` still works).
pub(crate) fn stop(instance: &Arc<Instance>, life: &mut Life, restart: bool) -> Result {
    if going_down() {
        return Err(ESHUTDOWN);
    }
    stop_request(instance, life, restart)
}

/// `stop` while the host goes down (`control.rs`): the same, without a restart.
pub(crate) fn stop_going_down(instance: &Arc<Instance>, life: &mut Life) -> Result {
    stop_request(instance, life, false)
}

fn stop_request(instance: &Arc<Instance>, life: &mut Life, restart: bool) -> Result {
    let name = instance.name.as_str();
    let what = if restart { "restart" } else { "stop" };
    let Phase::Running { since } = life.phase() else {
        warn(format_args!(
            "{what} {name}: instance is {}, not running",
            life.state().as_str()
        ));
        return Err(EBUSY);
    };
    let channel = instance.endpoint.channel().ok_or(ENOTCONN)?;
    let timeout = instance.stop_timeout_ms.load(Ordering::Relaxed);
    channel
        .send(crate::ikc::port::STOP, &[], false)
        .inspect_err(|e| {
            warn(format_args!(
                "{what} {name}: cannot ask its kernel to stop ({e:?}); kill stops it by force"
            ))
        })?;
    let deadline = Instant::<Monotonic>::now() + Delta::from_millis(i64::from(timeout));
    instance.set_phase(
        life,
        Phase::Stopping {
            since,
            deadline,
            restart,
        },
    );
    pr_info!("{what} {name}: asked its kernel to stop (timeout {timeout} ms)\n");
    watch_later(instance, WATCH_MS);
    Ok(())
}

/// Starts the loaded image again (its life cycle `life` locked): a graceful stop first if it
/// runs, a kill first if it is starting, failed or crashed; just a start if it is loaded or
/// stopped.
pub(crate) fn restart(instance: &Arc<Instance>, life: &mut Life) -> Result {
    if going_down() {
        return Err(ESHUTDOWN);
    }
    match life.state() {
        State::Running => stop(instance, life, true),
        State::Starting | State::Failed | State::Crashed => {
            kill(instance, life)?;
            start(instance, life)
        }
        _ => start(instance, life),
    }
}

/// The instance's work: looks at its kernel every [`WATCH_MS`] while it starts or stops and
/// every [`WATCH_RUNNING_MS`] while it runs, and moves the life cycle on for what happened
/// ([`observe`]), then does what follows from it ([`follow_up`]): the start of a `restart`, a
/// restart policy's. It stops looking once no kernel runs.
fn watch(instance: &Arc<Instance>) {
    let mut life = instance.life();
    if life.dying {
        return;
    }
    observe(instance, &mut life);
    if let Some(before) = life.stopped_from.take() {
        if going_down() || SLEEPING.load(Ordering::SeqCst) {
            // Held, not dropped: a host update that is refused after all, or the end of a
            // suspend, lets it go on.
            life.stopped_from = Some(before);
            watch_later(instance, WATCH_MS);
            return;
        }
        follow_up(instance, &mut life, before);
    }
    let next = match life.state() {
        State::Starting | State::Stopping => WATCH_MS,
        State::Running => WATCH_RUNNING_MS,
        _ => return,
    };
    watch_later(instance, next);
}

/// What the kernel did since the work last looked (its life cycle `life` locked): it said it
/// stops (its mailbox), it reported in, it ran out of time to report in or to stop, it stopped
/// beating. Operations call it first too, so they decide on what is, not on what the work saw
/// up to [`WATCH_RUNNING_MS`] ago. What follows from a stop it finds (a restart policy, the
/// start of a `restart`) is the work's, whoever found it: the phase before is kept in
/// `life.stopped_from` for it.
pub(crate) fn observe(instance: &Instance, life: &mut Life) {
    let before = life.phase();
    look(instance, life);
    if before.since().is_some() && life.phase().since().is_none() {
        life.stopped_from = Some(before);
    }
}

/// [`observe`]'s look at the kernel, which moves the phase on.
fn look(instance: &Instance, life: &mut Life) {
    let name = instance.name.as_str();
    let phase = life.phase();
    let Some(since) = phase.since() else {
        return;
    };
    let Some(layout) = instance.layout() else {
        return;
    };
    if let Some(reason) = instance.stop_word(&layout) {
        stopped_by_kernel(instance, life, reason);
        return;
    }
    if let Phase::Starting { .. } = phase {
        let elapsed = since.elapsed().as_millis();
        let timeout = instance.start_timeout_ms.load(Ordering::Relaxed);
        if instance.reported_in(&layout) {
            instance.set_phase(life, Phase::Running { since });
            pr_info!("{name}: running, reported in after {elapsed} ms\n");
        } else if elapsed > i64::from(timeout) {
            // Nobody will answer: senders get an error instead of waiting.
            if let Some(channel) = instance.endpoint.channel() {
                channel.close();
            }
            instance.set_stopped(life, Phase::Failed, StopReason::Failed);
            warn(format_args!(
                "{name}: failed: its kernel did not report in within {timeout} ms"
            ));
        }
        return;
    }
    // Running or stopping: the channel says whether it still beats (it logged why not).
    if let Some(channel) = instance.endpoint.channel() {
        if channel.state() == LinkState::PeerDead {
            channel.close();
            instance.set_stopped(life, Phase::Crashed, StopReason::NoHeartbeat);
            return;
        }
    }
    match phase {
        Phase::Running { since } if since.elapsed().as_millis() >= RESTART_RESET_MS => {
            life.auto_restarts = 0;
        }
        Phase::Stopping { deadline, .. } if deadline.elapsed().as_nanos() >= 0 => {
            warn(format_args!(
                "stop {name}: its kernel did not stop within {} ms: killing it",
                instance.stop_timeout_ms.load(Ordering::Relaxed)
            ));
            let _ = kill_for(instance, life, StopReason::StopTimeout);
        }
        _ => {}
    }
}

/// The kernel said it stops for `reason`: what it sent last (its panic message, say) is
/// taken in, its channel closes, and the instance is `stopped` (`crashed` after a panic);
/// `last_stop` is `stop` if it was asked to. Its CPUs halt: no INIT from here; they are
/// verified out before the memory is used again (a start, a load, `destroy`).
fn stopped_by_kernel(instance: &Instance, life: &mut Life, reason: StopReason) {
    let (phase, reason) = match reason {
        StopReason::Panic => (Phase::Crashed, reason),
        _ if life.state() == State::Stopping => (Phase::Stopped, StopReason::Stop),
        _ => (Phase::Stopped, reason),
    };
    if let Some(channel) = instance.endpoint.channel() {
        channel.finish();
    }
    instance.set_stopped(life, phase, reason);
    pr_info!(
        "{}: stopped by its kernel: {}\n",
        instance.name.as_str(),
        reason.as_str()
    );
}

/// What follows once the kernel stopped (its life cycle `life` locked; it was `before`): a
/// `restart` starts the image again; a restart policy does after a reboot
/// (`on_reboot=restart`) or a crash (`on_crash=restart`), at most [`MAX_AUTO_RESTARTS`] times
/// in a row. [`watch`] holds it back while the host is going down.
fn follow_up(instance: &Arc<Instance>, life: &mut Life, before: Phase) {
    let name = instance.name.as_str();
    let why = match (before, life.state()) {
        (Phase::Stopping { restart: true, .. }, State::Stopped) => {
            if let Err(e) = start(instance, life) {
                warn(format_args!("restart {name}: start failed ({e:?})"));
            }
            return;
        }
        // A stop was asked for: whatever ended it, no policy applies.
        (Phase::Stopping { .. }, _) => return,
        (_, State::Stopped)
            if life.last_stop() == StopReason::Reboot && instance.on_reboot == Policy::Restart =>
        {
            "rebooted"
        }
        (_, State::Crashed) if instance.on_crash == Policy::Restart => "crashed",
        _ => return,
    };
    let count = life.auto_restarts;
    if count >= MAX_AUTO_RESTARTS {
        warn(format_args!(
            "{name}: its kernel {why} after {count} automatic restarts in a row: it stays {}",
            life.state().as_str()
        ));
        return;
    }
    life.auto_restarts = count + 1;
    pr_info!(
        "{name}: its kernel {why}: restarting ({}/{MAX_AUTO_RESTARTS})\n",
        count + 1
    );
    // A crashed kernel's CPUs may still run: take them back, as a kill does, keeping the
    // crash as the stop reason.
    if life.state() == State::Crashed && kill_for(instance, life, life.last_stop()).is_err() {
        return;
    }
    if let Err(e) = start(instance, life) {
        warn(format_args!("{name}: automatic restart failed ({e:?})"));
    }
}

impl WorkItem<0> for Instance {
    type Pointer = Arc<Instance>;

    fn run(this: Arc<Instance>) {
        watch(&this);
    }
}
