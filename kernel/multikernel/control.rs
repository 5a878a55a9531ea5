// SPDX-License-Identifier: GPL-2.0

//! The control tree, `/sys/kernel/multikernel/`, and the registry of instances behind it.
//!
//! ```text
//! /sys/kernel/multikernel/
//! ├── version                 (0444) "MAJOR.MINOR.PATCH"
//! ├── create                  (0200) "NAME cpus=CPULIST memory=SIZE"
//! ├── destroy                 (0200) "NAME"
//! ├── pool/{total_bytes,free_bytes,largest_free_bytes}   (0444)
//! └── instances/NAME/{id,cpus,memory,state}               (0444)
//! ```
//!
//! # Locking
//!
//! One mutex, the registry's, serialises `create` and `destroy` (including the CPU hotplug they
//! do) and guards the pool. The `pool/` files take it too. Instance files never take it:
//! `destroy` removes an instance's directory while holding it, and removal waits for running
//! callbacks of that directory. The CPU hotplug gate reads only atomics (`cpus.rs`).

use crate::{
    base::{
        cpus,
        pool::{
            self,
            Pool, //
        },
        report::{
            admin,
            warn, //
        },
        spec, //
    },
    instance::{
        Instance,
        InstanceDir,
        State,
        MAX_ID, //
    },
    sys::{
        handover::Published,
        pool_map::{
            pool_region,
            PoolMapping, //
        },
        spawn::{
            hide_cpu,
            show_cpu, //
        },
        worker::Job,
    },
};
use core::fmt::Write;
use kernel::{
    cpu::{
        nr_cpu_ids,
        CpuId, //
    },
    prelude::*,
    sync::Arc,
    sysfs::{
        self,
        Dir,
        FileNotifier,
        KObject,
        ShowBuffer, //
    },
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
};

/// The subsystem version shown in `version`. The major number changes when the sysfs ABI
/// changes incompatibly.
pub(crate) const VERSION: &str = "0.6.0";

kernel::sync::global_lock! {
    // SAFETY: `init()` is called in `Control::new`, at module init, before any use.
    pub(crate) unsafe(uninit) static REGISTRY: Mutex<Registry> = Registry::new();
}

/// The registry of instances, locked.
pub(crate) fn registry() -> kernel::sync::lock::GlobalGuard<REGISTRY> {
    REGISTRY.lock()
}

/// What the registry mutex guards.
pub(crate) struct Registry {
    /// `None` when the kernel was booted without `multikernel.pool=`.
    pool: Option<Pool>,
    /// `instances/`, the parent of every instance directory.
    instances_dir: Option<Dir<sysfs::Empty>>,
    /// Each directory is the registry's alone (destroy removes it from sysfs at once); the
    /// instance in it may be shared with a kexec load that works without the registry lock,
    /// under the instance's `life` lock, and sees it `dying` once destroy took that lock.
    instances: KVec<Dir<InstanceDir>>,
    /// A host update set up by `kexec -e` and not yet committed or cancelled (`handover.rs`).
    pub(crate) handover: Option<Published>,
    /// After a host update, some instance could not be adopted: its kernel may still run
    /// somewhere in the pool, so `create` takes nothing from it until the machine reboots.
    quarantined: bool,
}

impl Registry {
    const fn new() -> Self {
        Self {
            pool: None,
            instances_dir: None,
            instances: KVec::new(),
            handover: None,
            quarantined: false,
        }
    }

    /// Every instance, shared.
    pub(crate) fn instances_arc(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.instances.iter().map(|i| &i.data().0)
    }

    /// The pool's range, if there is a pool.
    pub(crate) fn pool_range(&self) -> Option<pool::Range> {
        self.pool.as_ref().map(Pool::range)
    }

    /// After a host update: an instance could not be adopted (or the handover not read), so a
    /// kernel may still run somewhere in the pool: `create` takes nothing from it from now on.
    /// The adopted instances keep their memory; the pool is handed over at the next update.
    pub(crate) fn quarantine_pool(&mut self) {
        self.quarantined = true;
    }

    /// After a host update: takes in an instance the previous kernel had, its CPUs
    /// (`cpus`: held, offline, never brought up here) and `memory`, as `create` would, but
    /// taking nothing from the host. All or nothing; `EEXIST`, `EBUSY`, `EINVAL` (said once).
    pub(crate) fn adopt(
        &mut self,
        id: u32,
        name: spec::Name,
        cpus: KVec<u32>,
        memory: pool::Range,
        policies: (spec::Policy, spec::Policy),
        net: bool,
    ) -> Result<Arc<Instance>> {
        let label = name.as_str();
        if self.find(&name).is_some() || self.by_id(id).is_some() || id == 0 || id > MAX_ID {
            warn(format_args!(
                "host update: {label}: its name or id {id} is taken or out of range"
            ));
            return Err(EEXIST);
        }
        let Some(pool) = self.pool.as_mut() else {
            return Err(EINVAL);
        };
        if let Err(e) = pool.alloc_at(memory) {
            warn(format_args!(
                "host update: {label}: its memory {memory:?} is not free in the pool ({e:?})"
            ));
            return Err(e);
        }
        if let Err(e) = self
            .instances
            .reserve(1, GFP_KERNEL)
            .map_err(Error::from)
            .and_then(|()| cpus::adopt(&cpus))
        {
            // Its memory stays allocated: its kernel may run there.
            warn(format_args!(
                "host update: {label}: its CPUs are owned twice, or no memory ({e:?})"
            ));
            return Err(e);
        }
        hide_cpus(label, &cpus);
        let made = self.publish(id, name, cpus, memory, policies, net);
        if let Err(e) = &made {
            // Its CPUs stay owned and offline: its kernel may run there.
            warn(format_args!(
                "host update: {label}: cannot create its directory or devices ({e:?}): \
                 its CPUs and memory stay out of use"
            ));
        }
        made
    }

    /// Makes instance `id` with its devices and its directory under `instances/`, and adds it
    /// to the registry (the caller reserved room for it); on failure the caller undoes what it
    /// took for it.
    fn publish(
        &mut self,
        id: u32,
        name: spec::Name,
        cpus: KVec<u32>,
        memory: pool::Range,
        policies: (spec::Policy, spec::Policy),
        net: bool,
    ) -> Result<Arc<Instance>> {
        let parent = self
            .instances_dir
            .as_ref()
            .map(|dir| dir.kobject())
            .ok_or(ENODEV)?;
        let instance = Arc::pin_init(
            Instance::new(id, name, cpus, memory, policies, net),
            GFP_KERNEL,
        )?;
        let dir = Dir::new(parent, name.as_cstr(), InstanceDir(instance.clone()))?;
        // `poll(2)` on its `state` wakes when the state changes.
        dir.data()
            .notify_state_to(FileNotifier::new(dir.kobject(), c"state")?);
        self.instances
            .push_within_capacity(dir)
            .map_err(|_| ENOMEM)?;
        Ok(instance)
    }

    /// The instance with id `id`.
    pub(crate) fn by_id(&self, id: u32) -> Option<&Arc<Instance>> {
        self.instances
            .iter()
            .map(|i| &i.data().0)
            .find(|i| i.id == id)
    }

    /// Every instance.
    pub(crate) fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.iter().map(|i| &*i.data().0)
    }

    fn find(&self, name: &spec::Name) -> Option<usize> {
        self.instances.iter().position(|i| i.data().name == *name)
    }

    fn owner_of(&self, cpu: u32) -> Option<&Instance> {
        self.instances
            .iter()
            .map(|i| &*i.data().0)
            .find(|i| i.cpus.contains(&cpu))
    }

    fn free_id(&self) -> Option<u32> {
        (1..=MAX_ID).find(|id| !self.instances.iter().any(|i| i.data().id == *id))
    }

    /// Creates an instance: all or nothing.
    fn create(&mut self, spec: spec::Spec) -> Result {
        let name = spec.name.as_str();
        refuse_going_down("create", name)?;
        if self.find(&spec.name).is_some() {
            warn(format_args!(
                "create {name}: an instance of that name exists"
            ));
            return Err(EEXIST);
        }
        let Some(id) = self.free_id() else {
            warn(format_args!(
                "create {name}: all {MAX_ID} instance ids are in use"
            ));
            return Err(ENOSPC);
        };
        for &cpu in spec.cpus.iter() {
            if let Err(refusal) = cpus::check(cpu) {
                self.warn_cpu(name, cpu, refusal);
                return Err(refusal.errno());
            }
        }
        if self.quarantined {
            warn(format_args!(
                "create {name}: the pool may hold instances a host update could not adopt \
                 (the kernel log says which): it is out of use until the machine reboots"
            ));
            return Err(ENOMEM);
        }
        let Some(pool) = self.pool.as_mut() else {
            warn(format_args!(
                "create {name}: no memory pool (boot with multikernel.pool=SIZE)"
            ));
            return Err(ENOMEM);
        };
        let Some(bytes) = pool::round_up(spec.memory).filter(|&b| b <= pool.total_bytes()) else {
            warn(format_args!(
                "create {name}: memory={} is larger than the pool ({} bytes)",
                spec.memory,
                pool.total_bytes()
            ));
            return Err(ENOSPC);
        };
        let memory = match pool.alloc(bytes) {
            Ok(range) => range,
            Err(e) => {
                warn(format_args!(
                    "create {name}: no free {bytes}-byte range in the pool (largest free: {})",
                    pool.largest_free_bytes()
                ));
                return Err(e);
            }
        };
        // From here on, every failure gives back what was taken before it. Allocate what can
        // be allocated before touching any CPU.
        let mut taken = KVec::new();
        let prepared = self
            .instances
            .reserve(1, GFP_KERNEL)
            .and_then(|()| taken.extend_from_slice(&spec.cpus, GFP_KERNEL));
        if let Err(e) = prepared {
            self.undo_memory(memory);
            return Err(e.into());
        }
        if self.instances_dir.is_none() {
            self.undo_memory(memory);
            return Err(ENODEV);
        }
        // The CPUs go offline on a worker while the instance's devices and directory are made
        // here: an offline mostly waits (the stopper threads, grace periods). Meanwhile the
        // instance is `reserved` without an image, which nothing can start; should the
        // offline fail, it goes again before this returns.
        let hidden_as = spec.name;
        let taking = match Job::start(move || {
            let took = cpus::take(&taken);
            if took.is_ok() {
                hide_cpus(hidden_as.as_str(), &taken);
            }
            (taken, took)
        }) {
            Ok(job) => job,
            Err(e) => {
                self.undo_memory(memory);
                return Err(e);
            }
        };
        // Capacity for the push was reserved above; were it refused, the directory would be
        // dropped with the error and everything given back like any other failure.
        let made = self.publish(
            id,
            spec.name,
            spec.cpus,
            memory,
            (spec.on_reboot, spec.on_crash),
            spec.net,
        );
        let Some((taken, took)) = taking.join() else {
            // Never happens (a spawned work runs): nothing was taken.
            if made.is_ok() {
                self.unpublish();
            }
            self.undo_memory(memory);
            return Err(ENOMEM);
        };
        match (made, took) {
            (Ok(_), Ok(())) => Ok(()),
            (Err(e), took) => {
                warn(format_args!(
                    "create {name}: cannot create its sysfs directory or devices ({e:?})"
                ));
                match took {
                    Ok(()) => {
                        let _ = give_back(&taken);
                    }
                    Err((cpu, refusal)) => self.warn_cpu(name, cpu, refusal),
                }
                self.undo_memory(memory);
                Err(e)
            }
            (Ok(instance), Err((cpu, refusal))) => {
                drop(instance);
                self.unpublish();
                self.warn_cpu(name, cpu, refusal);
                self.undo_memory(memory);
                Err(refusal.errno())
            }
        }
    }

    /// Removes the instance `create` just published (its CPUs could not be taken): as
    /// `destroy` does, with nothing of it running.
    fn unpublish(&mut self) {
        let Some(dir) = self.instances.pop() else {
            return;
        };
        dir.data().life().dying = true;
        dir.data().endpoint.close();
        dir.data().remove_devices();
        drop(dir);
    }

    fn undo_memory(&mut self, memory: pool::Range) {
        if let Some(pool) = self.pool.as_mut() {
            if pool.free(memory).is_err() {
                warn(format_args!("pool: range {memory:?} could not be freed"));
            }
        }
    }

    fn warn_cpu(&self, name: &str, cpu: u32, refusal: cpus::Refusal) {
        match refusal {
            cpus::Refusal::NotPresent => {
                warn(format_args!("create {name}: CPU {cpu} is not present"))
            }
            cpus::Refusal::BootCpu => warn(format_args!(
                "create {name}: CPU {cpu} is the boot CPU and stays with the host"
            )),
            cpus::Refusal::Owned => {
                let owner = self.owner_of(cpu).map_or("?", |i| i.name.as_str());
                warn(format_args!(
                    "create {name}: CPU {cpu} belongs to instance {owner}"
                ))
            }
            cpus::Refusal::Offline => warn(format_args!(
                "create {name}: CPU {cpu} is offline in the host; bring it online first"
            )),
            cpus::Refusal::Hotplug(e) => warn(format_args!(
                "create {name}: CPU {cpu} could not be taken offline ({e:?})"
            )),
        }
    }

    /// Destroys an instance: removes its directory, then gives its CPUs and memory back.
    fn destroy(&mut self, name: &spec::Name) -> Result {
        refuse_going_down("destroy", name.as_str())?;
        let Some(index) = self.find(name) else {
            warn(format_args!("destroy {}: no such instance", name.as_str()));
            return Err(ENOENT);
        };
        {
            let instance = self.instances[index].data();
            let mut life = instance.life();
            crate::spawn::observe(instance, &mut life);
            let state = life.state();
            if !state.destroyable() {
                warn(format_args!(
                    "destroy {}: instance is {}",
                    name.as_str(),
                    state.as_str()
                ));
                return Err(EBUSY);
            }
            life.dying = true;
            // The image copy (megabytes) goes now, not with the last reference to the
            // instance, which its work may hold a little longer.
            instance.set_image(&mut life, None);
        }
        let dir = self.instances.remove(index).map_err(|_| EINVAL)?;
        dir.data().endpoint.close();
        // The network device goes on a worker while the CPUs come back; all devices are
        // unregistered before this returns (`devices_going` waits when dropped, on every
        // path). The worker frees the network device's memory later, after RCU callbacks.
        let devices_going = dir.data().remove_devices_beside();
        // Give the CPUs and memory back while the instance is still at hand (it is out of the
        // registry and `dying`, so nothing else reaches it), then remove its directory.
        // A CPU the host brought online runs the host's code: once all are back, nothing of
        // the instance runs and its memory can be scrubbed and given back.
        let memory = dir.data().memory;
        let given_back = give_back(&dir.data().cpus);
        devices_going.wait();
        if let Err((cpu, e)) = given_back {
            warn(format_args!(
                "destroy {}: CPU {cpu} could not be brought online ({e:?}); memory \
                 {:#x}-{:#x} stays out of the pool",
                name.as_str(),
                memory.start,
                memory.last()
            ));
            drop(dir);
            return Ok(());
        }
        let dirty = dir.data().life().dirty;
        drop(dir);
        // The next instance must not read this one's data (none if nothing was ever loaded:
        // reserving alone writes nothing there).
        if dirty {
            if let Err(e) = scrub(memory) {
                warn(format_args!(
                    "destroy {}: memory could not be scrubbed ({e:?}); it stays out of the pool",
                    name.as_str()
                ));
                return Ok(());
            }
        }
        self.undo_memory(memory);
        Ok(())
    }
}

/// Zeroes `memory` (instance memory going back to the pool), 2 MiB at a time, letting
/// other tasks run in between (an instance may have gigabytes).
fn scrub(memory: pool::Range) -> Result {
    const CHUNK: u64 = pool::GRANULE;
    let mut at = memory.start;
    while at < memory.end() {
        let len = CHUNK.min(memory.end() - at);
        PoolMapping::new(at, len)?.zero(0, len as usize)?;
        at += len;
        crate::sys::pool_map::cond_resched();
    }
    Ok(())
}

/// The data behind `/sys/kernel/multikernel/` itself: none; the state is global.
pub(crate) struct Root;

impl Root {
    fn show_version(_this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{VERSION}")?;
        Ok(())
    }

    /// Doorbells this kernel took, and how many were over the budget (only acknowledged).
    fn show_doorbells(_this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        use crate::sys::doorbell as ikc;
        let (received, throttled) = ikc::doorbell_stats();
        writeln!(buf, "received {received}")?;
        writeln!(buf, "throttled {throttled}")?;
        writeln!(
            buf,
            "budget {} per CPU per 1048576 ns",
            ikc::DOORBELL_BUDGET
        )?;
        Ok(())
    }

    fn store_create(_this: &Self, input: &[u8]) -> Result {
        admin("create")?;
        let nr_cpus = nr_cpu_ids().min(cpus::MAX_CPUS);
        let spec = spec::parse_create_inner(input, nr_cpus).inspect_err(|e| {
            warn(format_args!("create: {e}"));
        });
        let spec = spec.map_err(|e| e.errno())?;
        registry().create(spec)
    }

    fn store_destroy(_this: &Self, input: &[u8]) -> Result {
        admin("destroy")?;
        let name = spec::parse_destroy(input).inspect_err(|e| {
            warn(format_args!("destroy: {e}"));
        });
        let name = name.map_err(|e| e.errno())?;
        registry().destroy(&name)
    }

    /// What the same exchanges cost inside this kernel, to read IKC numbers against.
    fn show_ikc_baseline(_this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        admin("ikc_baseline")?;
        let b = crate::sys::baseline::measure()?;
        writeln!(buf, "cpu_call_round_trip_ns {}", b.call_ns)?;
        writeln!(buf, "memcpy_64_ns {}", b.memcpy_64_ns)?;
        writeln!(buf, "memcpy_4096_ns {}", b.memcpy_4096_ns)?;
        Ok(())
    }

    /// One cross-CPU call round trip to an idle CPU: the baseline `make bench` interleaves
    /// with pings (a doorbell wakes an idle instance CPU the same way).
    fn show_cpu_call(_this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        admin("cpu_call")?;
        let (cpu, ns) = crate::sys::baseline::idle_call_round_trip()?;
        writeln!(buf, "{ns} {cpu}")?;
        Ok(())
    }

    fn show_unpack(_this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{}", u8::from(crate::kexec::unpacks()))?;
        Ok(())
    }

    /// 1: loads unpack LZ4 kernels (the default); 0: every kernel decompresses itself.
    fn store_unpack(_this: &Self, input: &[u8]) -> Result {
        admin("unpack")?;
        let on = match core::str::from_utf8(input).map(str::trim) {
            Ok("1") => true,
            Ok("0") => false,
            _ => {
                warn(format_args!("unpack: write 0 or 1"));
                return Err(EINVAL);
            }
        };
        crate::kexec::set_unpack(on);
        Ok(())
    }

    fn show_pool(buf: &mut ShowBuffer<'_>, value: fn(&Pool) -> u64) -> Result {
        let bytes = registry().pool.as_ref().map_or(0, value);
        writeln!(buf, "{bytes}")?;
        Ok(())
    }

    fn show_total(_this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        Self::show_pool(buf, Pool::total_bytes)
    }

    fn show_free(_this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        Self::show_pool(buf, Pool::free_bytes)
    }

    fn show_largest(_this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        Self::show_pool(buf, Pool::largest_free_bytes)
    }
}

kernel::sysfs_attributes! {
    impl DirData for Root {
        group {
            version: read_only(Root::show_version),
            doorbells: read_only(Root::show_doorbells),
            create: write_only(Root::store_create),
            destroy: write_only(Root::store_destroy),
            ikc_baseline: read_only(Root::show_ikc_baseline) mode 0o400,
            cpu_call: read_only(Root::show_cpu_call) mode 0o400,
            unpack: read_write(Root::show_unpack, Root::store_unpack) mode 0o644,
        },
        group pool {
            total_bytes: read_only(Root::show_total),
            free_bytes: read_only(Root::show_free),
            largest_free_bytes: read_only(Root::show_largest),
        },
    }
}

/// The control tree. There is one, made at module init.
pub(crate) struct Control {
    _root: Dir<Root>,
}

impl Control {
    /// Creates the global state and `/sys/kernel/multikernel/` with what is in it.
    ///
    /// # Safety
    ///
    /// Called once, before anything else uses the registry (from module init).
    pub(crate) unsafe fn new() -> Result<Self> {
        // SAFETY: Called once, before anything can reach the lock (# Safety).
        unsafe { REGISTRY.init() };
        let pool = match pool_region() {
            Some(region) => Some(Pool::new(region.base, region.size)?),
            None => None,
        };
        let kernel_kobj = KObject::kernel().ok_or(ENODEV)?;
        let root = Dir::new(kernel_kobj, c"multikernel", Root)?;
        let instances = Dir::new(root.kobject(), c"instances", sysfs::Empty)?;
        let mut registry = registry();
        registry.pool = pool;
        registry.instances_dir = Some(instances);
        drop(registry);
        Ok(Self { _root: root })
    }

    /// Bytes in the pool (0 without one), for the boot message.
    pub(crate) fn pool_bytes(&self) -> u64 {
        registry().pool.as_ref().map_or(0, Pool::total_bytes)
    }
}

/// `ESHUTDOWN` (said) once the host is going down or handing its instances to the next kernel:
/// CPUs and memory stay as they are until then.
pub(crate) fn refuse_going_down(what: &str, name: &str) -> Result {
    if crate::spawn::going_down() {
        warn(format_args!(
            "{what} {name}: the host is going down (or hands its instances over)"
        ));
        return Err(ESHUTDOWN);
    }
    Ok(())
}

/// Takes `cpus`, just taken from the host, out of its view (`sys::spawn::hide_cpu`): tools
/// that walk every CPU then see the host's only. One that cannot be hidden stays visible,
/// offline and owned (said once).
fn hide_cpus(name: &str, cpus: &[u32]) {
    for &cpu in cpus {
        let hidden = CpuId::from_u32(cpu).ok_or(EINVAL).and_then(hide_cpu);
        if let Err(e) = hidden {
            warn(format_args!(
                "create {name}: CPU {cpu} stays visible to the host ({e:?})"
            ));
        }
    }
}

/// Gives `cpus` back to the host: shown again, then brought online ([`cpus::give_back`]; a
/// CPU that could not be shown fails there, `ENODEV`).
fn give_back(cpus: &[u32]) -> core::result::Result<(), (u32, Error)> {
    for &cpu in cpus {
        if let Some(id) = CpuId::from_u32(cpu) {
            let _ = show_cpu(id);
        }
    }
    cpus::give_back(cpus)
}

/// How long a host reboot, power-off or halt waits for its instances to stop in order.
pub(crate) const HOST_DOWN_STOP_MS: i64 = 10_000;

/// Called by the host's reboot notifier (`sys::spawn::watch_shutdown`) before it reboots,
/// powers off or halts: every running instance is asked to stop (`control stop`), the host
/// waits until none is `stopping` or [`HOST_DOWN_STOP_MS`] passed, then kills what may still
/// run. Its kernel log says what happened to each.
#[no_mangle]
extern "C" fn multikernel_host_going_down() {
    // A kexec that hands the instances over leaves them running.
    if crate::spawn::handed_over() {
        return;
    }
    // Instances a host update could not adopt still run on held CPUs: stopped, or they would
    // run into the next kernel's memory.
    crate::sys::handover::stop_held();
    let mut instances = KVec::new();
    {
        let registry = registry();
        // Under the registry lock: no start after this (`start` refuses).
        crate::spawn::set_going_down();
        if instances
            .reserve(registry.instances.len(), GFP_KERNEL)
            .is_err()
        {
            pr_err!("host going down: out of memory: instances are not stopped\n");
            return;
        }
        for instance in registry.instances.iter() {
            // Capacity reserved above.
            let _ = instances.push_within_capacity(instance.data().0.clone());
        }
    }
    let mut asked = 0;
    for instance in instances.iter() {
        let mut life = instance.life();
        crate::spawn::observe(instance, &mut life);
        if life.state() == State::Running
            && crate::spawn::stop_going_down(instance, &mut life).is_ok()
        {
            asked += 1;
        }
    }
    if asked > 0 {
        pr_info!("host going down: {asked} instance(s) asked to stop\n");
    }
    let deadline = Instant::<Monotonic>::now() + Delta::from_millis(HOST_DOWN_STOP_MS);
    while instances.iter().any(|i| i.state() == State::Stopping)
        && deadline.elapsed().as_nanos() < 0
    {
        fsleep(Delta::from_millis(100));
    }
    for instance in instances.iter() {
        let mut life = instance.life();
        crate::spawn::observe(instance, &mut life);
        if life.state().killable() {
            let _ = crate::spawn::kill(instance, &mut life);
        }
        // A kernel that stopped by itself halted the CPUs it had online; one it took offline
        // (or never started) still waits in a park loop in the pool: take them all back, so
        // the next kernel (a kexec) gets CPUs that run nothing.
        if !life.cpus_out {
            let _ = crate::spawn::verify_out(instance, &mut life);
        }
        pr_info!(
            "host going down: {} is {} ({})\n",
            instance.name.as_str(),
            life.state().as_str(),
            life.last_stop().as_str()
        );
    }
}

/// Whether `what` (a kexec reboot, a suspend) must be refused because instances may run
/// (`starting`, `running`, `stopping`, `failed`, `crashed`): then one message names them and
/// says `why`.
pub(crate) fn refused_while_running(what: &str, why: &str) -> bool {
    let registry = registry();
    let mut names = KVec::new();
    let mut out = spec::VecWriter(&mut names);
    let mut busy = 0;
    for instance in registry.instances() {
        let mut life = instance.life();
        crate::spawn::observe(instance, &mut life);
        if !life.state().killable() {
            continue;
        }
        busy += 1;
        let _ = write!(out, " {}", instance.name.as_str());
    }
    if busy == 0 {
        return false;
    }
    let names = core::str::from_utf8(&names).unwrap_or("");
    warn(format_args!(
        "{what} refused: {busy} instance(s) run:{names} (stop or kill them first: {why})"
    ));
    true
}

/// Called by the PM notifier (`sys::spawn::watch_shutdown`) before the system suspends
/// (`suspend`) or hibernates or restores a hibernation image: refused (EBUSY) while instances
/// run, whose CPUs and memory would stop under them, and always in an instance kernel, which
/// has no firmware to wake it.
#[no_mangle]
extern "C" fn multikernel_sleep_refused(suspend: bool) -> bool {
    let what = if suspend { "suspend" } else { "hibernation" };
    if crate::sys::shared::instance_info().is_some() {
        warn(format_args!(
            "{what} refused: this kernel is a multikernel instance (nothing would wake it)"
        ));
        return true;
    }
    // Starts are refused first, then the instances looked at: a start that began before is
    // seen running, one after finds the flag (`spawn::start`).
    crate::spawn::set_sleeping(true);
    if refused_while_running(what, "their CPUs and memory would stop under them") {
        crate::spawn::set_sleeping(false);
        return true;
    }
    false
}

/// Called by the PM notifier once a sleep that [`multikernel_sleep_refused`] let go ahead
/// ended (resumed, or refused by another notifier): instances may start again.
#[no_mangle]
extern "C" fn multikernel_sleep_done() {
    crate::spawn::set_sleeping(false);
}

impl Drop for Control {
    fn drop(&mut self) {
        // Children before their parent: every instance (giving its resources back), then
        // `instances/`; the root directory itself goes after this.
        let mut registry = registry();
        while let Some(name) = registry.instances.last().map(|dir| dir.data().name) {
            if registry.destroy(&name).is_err() {
                registry.instances.pop();
            }
        }
        registry.instances_dir = None;
    }
}

#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
#[kunit_tests(multikernel_control)]
mod tests {
    use super::*;
    use kernel::page::PAGE_SIZE;

    /// `version` is exactly one line, "MAJOR.MINOR.PATCH", three decimal numbers.
    #[test]
    fn version_is_semver_line() -> Result {
        let mut page = KBox::new([0u8; PAGE_SIZE], GFP_KERNEL)?;
        let mut buf = ShowBuffer::new(&mut page);
        writeln!(buf, "{VERSION}")?;
        let text = core::str::from_utf8(buf.as_bytes()).map_err(|_| EINVAL)?;
        let line = text.strip_suffix('\n').ok_or(EINVAL)?;
        assert!(!line.contains('\n'));
        let mut parts = 0;
        for part in line.split('.') {
            assert!(!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
            parts += 1;
        }
        assert_eq!(parts, 3);
        Ok(())
    }

    /// A directory removed at runtime can be created again under the same name: dropping a
    /// `Dir` really removes it from sysfs, and its children with it.
    #[test]
    fn dir_create_remove_create() -> Result {
        let parent = KObject::kernel().ok_or(ENODEV)?;
        for _ in 0..3 {
            let dir = Dir::new(parent, c"multikernel_kunit", sysfs::Empty)?;
            assert_eq!(dir.kobject().name(), Some(c"multikernel_kunit"));
            let child = Dir::new(dir.kobject(), c"child", sysfs::Empty)?;
            assert_eq!(child.kobject().name(), Some(c"child"));
            drop(child);
            drop(dir);
        }
        Ok(())
    }
}
