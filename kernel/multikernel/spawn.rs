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
    ikc::Channel,
    instance::{
        Instance,
        State,
        StopReason,
        StopRequest,
        MAX_AUTO_RESTARTS,
        POLICY_POLL_MS,
        RESTART_RESET_MS,
        STOP_POLL_MS, //
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

/// Whether the host is going down (`ESHUTDOWN` for starts and stops from then on).
pub(crate) fn going_down() -> bool {
    GOING_DOWN.load(Ordering::Acquire)
}

/// The host starts going down: no instance starts from now on.
pub(crate) fn set_going_down() {
    GOING_DOWN.store(true, Ordering::Release);
}

/// Starts `instance` (with its `ops` lock held).
pub(crate) fn start(instance: &Arc<Instance>) -> Result {
    let name = instance.name.as_str();
    if going_down() {
        warn(format_args!("start {name}: the host is going down"));
        return Err(ESHUTDOWN);
    }
    let state = instance.state();
    if !state.startable() {
        warn(format_args!(
            "start {name}: instance is {}, not loaded",
            state.as_str()
        ));
        return Err(EBUSY);
    }
    // Readers that saw the last run cannot move this one on.
    instance.begin_run();
    // A CPU that may still run the last kernel would write into the new image.
    if !instance.cpus_out() {
        verify_out(instance).inspect_err(|_| {
            warn(format_args!(
                "start {name}: its CPUs did not come back from the last run"
            ))
        })?;
    }
    let layout = {
        let mut guard = instance.image();
        let image = (*guard).as_mut().ok_or(EINVAL)?;
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
    let channel = Channel::host(
        name,
        instance.id,
        layout.channel.start,
        layout.mailbox.start,
        first_apic,
        instance.console.clone(),
        &instance.endpoint,
    )
    .inspect_err(|e| {
        warn(format_args!(
            "start {name}: cannot set up the channel ({e:?})"
        ))
    })?;
    instance.endpoint.set(Some(channel));
    let stop = || {
        reset_cpus(instance);
        instance.endpoint.close();
    };
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
    instance.set_started();
    pr_info!(
        "start {name}: CPU {first} entered the instance kernel at {:#x}\n",
        layout.entry
    );
    // A restart policy: watch this run until it ends.
    if instance.has_policy() {
        watch_later(instance, POLICY_POLL_MS);
    }
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
    cpus::set_transit(cpu, true);
    let through = cpu_hotplug::online(id).and_then(|_| cpu_hotplug::offline(id));
    cpus::set_transit(cpu, false);
    if let Err(e) = through {
        spawn::disarm(id);
        // Leave the CPU as it was: offline and owned.
        let _ = cpu_hotplug::offline(id);
        warn(format_args!(
            "start {name}: CPU {cpu} did not cycle through hotplug ({e:?})"
        ));
        return Err(e);
    }
    Ok(())
}

/// INIT to every CPU of the instance: stops whatever they run.
fn reset_cpus(instance: &Instance) {
    for &cpu in instance.cpus.iter() {
        if let Some(id) = CpuId::from_u32(cpu) {
            spawn::disarm(id);
            spawn::reset_cpu(id);
        }
    }
}

/// Makes sure no CPU of `instance` runs its kernel any more (with its `ops` lock held): INIT,
/// then each CPU is brought up in the host and taken down again. A CPU the host brought up
/// runs the host's code, so nothing of the instance's runs there; one that does not come up
/// (INIT is blocked in SMM or VMX operation) may still write into the instance's memory:
/// then the instance is `failed` and its memory stays out of every other use.
pub(crate) fn verify_out(instance: &Instance) -> Result {
    reset_cpus(instance);
    for &cpu in instance.cpus.iter() {
        let id = CpuId::from_u32(cpu).ok_or(EINVAL)?;
        cpus::set_transit(cpu, true);
        let through = cpu_hotplug::online(id).and_then(|_| cpu_hotplug::offline(id));
        cpus::set_transit(cpu, false);
        if let Err(e) = through {
            let _ = cpu_hotplug::offline(id);
            instance.set_stopped(State::Failed, StopReason::Failed);
            warn(format_args!(
                "{}: CPU {cpu} did not come back to the host ({e:?}): its memory stays out of use",
                instance.name.as_str()
            ));
            return Err(EIO);
        }
    }
    instance.set_cpus_out(true);
    Ok(())
}

/// Stops `instance`'s kernel by force (with its `ops` lock held): INIT to its CPUs.
pub(crate) fn kill(instance: &Instance) -> Result {
    kill_for(instance, StopReason::Kill)
}

fn kill_for(instance: &Instance, reason: StopReason) -> Result {
    let name = instance.name.as_str();
    let state = instance.state();
    if !state.killable() {
        warn(format_args!(
            "kill {name}: instance is {}, nothing runs",
            state.as_str()
        ));
        return Err(EBUSY);
    }
    // A stop in progress is over: the kill decides.
    *instance.stopping.lock() = None;
    // Senders and readers get an error from now on; no handler runs after this.
    instance.endpoint.close();
    verify_out(instance)?;
    instance.set_stopped(State::Stopped, reason);
    pr_info!("kill {name}: stopped ({})\n", reason.as_str());
    Ok(())
}

/// Asks `instance`'s kernel to shut down in order (with its `ops` lock held): a message on its
/// stop port, state `stopping`; `stop_work` then sees it report (`stopped`, `last_stop` =
/// `stop`) or kills it after `stop_timeout_ms`. With `restart`, the image is started again
/// once it stopped. `EBUSY` unless it is `running`; the channel's error if the request cannot
/// be sent (a full ring: the kernel does not take its messages; `kill` still works).
pub(crate) fn stop(instance: &Arc<Instance>, restart: bool) -> Result {
    if going_down() {
        return Err(ESHUTDOWN);
    }
    stop_request(instance, restart)
}

/// `stop` while the host goes down (`control.rs`): the same, without a restart.
pub(crate) fn stop_going_down(instance: &Arc<Instance>) -> Result {
    stop_request(instance, false)
}

fn stop_request(instance: &Arc<Instance>, restart: bool) -> Result {
    let name = instance.name.as_str();
    let what = if restart { "restart" } else { "stop" };
    let state = instance.state();
    if state != State::Running {
        warn(format_args!(
            "{what} {name}: instance is {}, not running",
            state.as_str()
        ));
        return Err(EBUSY);
    }
    let channel = instance.endpoint.channel().ok_or(ENOTCONN)?;
    let timeout = instance.stop_timeout_ms.load(Ordering::Relaxed);
    *instance.stopping.lock() = Some(StopRequest {
        run: instance.run(),
        deadline: Instant::<Monotonic>::now() + Delta::from_millis(i64::from(timeout)),
        restart,
    });
    // Stopping before the request goes out, unless a reader saw the kernel stop or crash
    // meanwhile: then that is what happened.
    if !instance.change_state(State::Running, State::Stopping) {
        *instance.stopping.lock() = None;
        return Err(EBUSY);
    }
    if let Err(e) = channel.send(crate::ikc::port::STOP, &[], false) {
        *instance.stopping.lock() = None;
        instance.change_state(State::Stopping, State::Running);
        warn(format_args!(
            "{what} {name}: cannot ask its kernel to stop ({e:?}); kill stops it by force"
        ));
        return Err(e);
    }
    pr_info!("{what} {name}: asked its kernel to stop (timeout {timeout} ms)\n");
    watch_later(instance, STOP_POLL_MS);
    Ok(())
}

/// Starts the loaded image again (with its `ops` lock held): a graceful stop first if it runs,
/// a kill first if it is starting, failed or crashed; just a start if it is loaded or stopped.
pub(crate) fn restart(instance: &Arc<Instance>) -> Result {
    if going_down() {
        return Err(ESHUTDOWN);
    }
    let state = instance.state();
    match state {
        State::Running => stop(instance, true),
        State::Starting | State::Failed | State::Crashed => {
            kill(instance)?;
            start(instance)
        }
        _ => start(instance),
    }
}

/// The instance's work: a `stop` in progress, else its restart policy.
fn watch(instance: &Arc<Instance>) {
    let _ops = instance.ops.lock();
    if instance.is_dying() {
        return;
    }
    if instance.stopping.lock().is_some() {
        watch_stop(instance);
    } else if instance.has_policy() {
        watch_policy(instance);
    }
}

/// A running instance with a restart policy (with its `ops` lock held): its kernel
/// rebooted (`on_reboot=restart`) or crashed (`on_crash=restart`), then it is started again,
/// at most [`MAX_AUTO_RESTARTS`] times in a row.
fn watch_policy(instance: &Arc<Instance>) {
    let name = instance.name.as_str();
    // Reading the state moves it on when the kernel reported or stopped beating.
    let state = instance.state();
    let why = match state {
        State::Starting | State::Running => {
            let long = instance
                .started_at()
                .is_some_and(|at| at.elapsed().as_millis() >= RESTART_RESET_MS);
            if long {
                instance.auto_restarts.store(0, Ordering::Relaxed);
            }
            watch_later(instance, POLICY_POLL_MS);
            return;
        }
        State::Stopped
            if instance.last_stop() == StopReason::Reboot
                && instance.on_reboot == Policy::Restart =>
        {
            "rebooted"
        }
        State::Crashed if instance.on_crash == Policy::Restart => "crashed",
        // Stopped, killed, failed, or a policy that says stop: nothing to do.
        _ => return,
    };
    if going_down() {
        return;
    }
    let count = instance.auto_restarts.load(Ordering::Relaxed);
    if count >= MAX_AUTO_RESTARTS {
        warn(format_args!(
            "{name}: its kernel {why} after {count} automatic restarts in a row: it stays {}",
            state.as_str()
        ));
        return;
    }
    instance.auto_restarts.store(count + 1, Ordering::Relaxed);
    pr_info!(
        "{name}: its kernel {why}: restarting ({}/{MAX_AUTO_RESTARTS})\n",
        count + 1
    );
    // A crashed kernel's CPUs may still run: take them back, as a kill does, keeping the
    // crash as the stop reason.
    if state == State::Crashed && kill_for(instance, instance.last_stop()).is_err() {
        return;
    }
    if let Err(e) = start(instance) {
        warn(format_args!("{name}: automatic restart failed ({e:?})"));
    }
}

/// A `stop` in progress (with the instance's `ops` lock held).
fn watch_stop(instance: &Arc<Instance>) {
    let Some(request) = *instance.stopping.lock() else {
        return;
    };
    let name = instance.name.as_str();
    if request.run != instance.run() {
        *instance.stopping.lock() = None;
        return;
    }
    // Reading the state moves it on when the kernel reported.
    match instance.state() {
        State::Stopping if request.deadline.elapsed().as_nanos() < 0 => {
            watch_later(instance, STOP_POLL_MS);
            return;
        }
        State::Stopping => {
            warn(format_args!(
                "stop {name}: its kernel did not stop within {} ms: killing it",
                instance.stop_timeout_ms.load(Ordering::Relaxed)
            ));
            if kill_for(instance, StopReason::StopTimeout).is_err() {
                return;
            }
        }
        State::Stopped => pr_info!("stop {name}: its kernel stopped\n"),
        // Crashed while stopping, or something else decided: no restart.
        _ => {
            *instance.stopping.lock() = None;
            return;
        }
    }
    *instance.stopping.lock() = None;
    // Not once the host is going down: it stops instances, it does not start them.
    if request.restart && !going_down() {
        if let Err(e) = start(instance) {
            warn(format_args!("restart {name}: start failed ({e:?})"));
        }
    }
}

impl WorkItem<0> for Instance {
    type Pointer = Arc<Instance>;

    fn run(this: Arc<Instance>) {
        watch(&this);
    }
}
