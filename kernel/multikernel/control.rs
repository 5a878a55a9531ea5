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
    cpus,
    instance::{
        Instance,
        MAX_ID, //
    },
    pool::{
        self,
        Pool, //
    },
    spec,
};
use core::fmt::{
    self,
    Write, //
};
use kernel::{
    capability::{
        capable,
        Capability, //
    },
    cpu::nr_cpu_ids,
    multikernel::pool_region,
    new_mutex,
    new_spinlock,
    prelude::*,
    sync::{
        Mutex,
        SpinLock, //
    },
    sysfs::{
        self,
        Dir,
        KObject,
        ShowBuffer, //
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
};

/// The subsystem version shown in `version`. The major number changes when the sysfs ABI
/// changes incompatibly.
pub(crate) const VERSION: &str = "0.2.0";

/// Error messages: at most [`Log::BURST`] per [`Log::WINDOW_MS`], then a count of the dropped.
#[pin_data]
pub(crate) struct Log {
    #[pin]
    state: SpinLock<LogState>,
}

struct LogState {
    window_start: Option<Instant<Monotonic>>,
    printed: u32,
    dropped: u32,
}

impl Log {
    const BURST: u32 = 10;
    const WINDOW_MS: i64 = 5000;

    fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            state <- new_spinlock!(LogState {
                window_start: None,
                printed: 0,
                dropped: 0,
            }, "multikernel::Log"),
        })
    }

    /// Prints `args` as a warning unless over the limit.
    pub(crate) fn warn(&self, args: fmt::Arguments<'_>) {
        let now = Instant::<Monotonic>::now();
        let (print, dropped) = {
            let mut state = self.state.lock();
            let expired = state
                .window_start
                .is_none_or(|start| now - start > Delta::from_millis(Self::WINDOW_MS));
            let mut dropped = 0;
            if expired {
                dropped = state.dropped;
                *state = LogState {
                    window_start: Some(now),
                    printed: 0,
                    dropped: 0,
                };
            }
            if state.printed < Self::BURST {
                state.printed += 1;
                (true, dropped)
            } else {
                state.dropped += 1;
                (false, dropped)
            }
        };
        if dropped > 0 {
            pr_warn!("{dropped} messages suppressed\n");
        }
        if print {
            pr_warn!("{args}\n");
        }
    }
}

/// What the registry mutex guards.
struct Registry {
    /// `None` when the kernel was booted without `multikernel.pool=`.
    pool: Option<Pool>,
    /// `instances/`, the parent of every instance directory.
    instances_dir: Option<Dir<sysfs::Empty>>,
    instances: KVec<Dir<Instance>>,
}

impl Registry {
    fn find(&self, name: &spec::Name) -> Option<usize> {
        self.instances.iter().position(|i| i.data().name == *name)
    }

    fn owner_of(&self, cpu: u32) -> Option<&Instance> {
        self.instances
            .iter()
            .map(|i| i.data())
            .find(|i| i.cpus.contains(&cpu))
    }

    fn free_id(&self) -> Option<u32> {
        (1..=MAX_ID).find(|id| !self.instances.iter().any(|i| i.data().id == *id))
    }

    /// Creates an instance: all or nothing.
    fn create(&mut self, log: &Log, spec: spec::Spec) -> Result {
        let name = spec.name.as_str();
        if self.find(&spec.name).is_some() {
            log.warn(format_args!("create {name}: an instance of that name exists"));
            return Err(EEXIST);
        }
        let Some(id) = self.free_id() else {
            log.warn(format_args!("create {name}: all {MAX_ID} instance ids are in use"));
            return Err(ENOSPC);
        };
        for &cpu in spec.cpus.iter() {
            if let Err(refusal) = cpus::check(cpu) {
                self.warn_cpu(log, name, cpu, refusal);
                return Err(refusal.errno());
            }
        }
        let Some(pool) = self.pool.as_mut() else {
            log.warn(format_args!(
                "create {name}: no memory pool (boot with multikernel.pool=SIZE)"
            ));
            return Err(ENOMEM);
        };
        let Some(bytes) = pool::round_up(spec.memory).filter(|&b| b <= pool.total_bytes()) else {
            log.warn(format_args!(
                "create {name}: memory={} is larger than the pool ({} bytes)",
                spec.memory,
                pool.total_bytes()
            ));
            return Err(ENOSPC);
        };
        let memory = match pool.alloc(bytes) {
            Ok(range) => range,
            Err(e) => {
                log.warn(format_args!(
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
            self.undo_memory(log, memory);
            return Err(e.into());
        }
        let Some(parent) = self.instances_dir.as_ref().map(|dir| dir.kobject()) else {
            self.undo_memory(log, memory);
            return Err(ENODEV);
        };
        if let Err((cpu, refusal)) = cpus::take(&taken) {
            self.warn_cpu(log, name, cpu, refusal);
            self.undo_memory(log, memory);
            return Err(refusal.errno());
        }
        let dir = Dir::new(
            parent,
            spec.name.as_cstr(),
            Instance::new(id, spec.name, spec.cpus, memory),
        );
        match dir {
            Ok(dir) => {
                // Capacity was reserved above.
                if let Err(e) = self.instances.push_within_capacity(dir) {
                    drop(e);
                    return Err(ENOMEM);
                }
                Ok(())
            }
            Err(e) => {
                log.warn(format_args!("create {name}: cannot create its sysfs directory ({e:?})"));
                let _ = cpus::give_back(&taken);
                self.undo_memory(log, memory);
                Err(e)
            }
        }
    }

    fn undo_memory(&mut self, log: &Log, memory: pool::Range) {
        if let Some(pool) = self.pool.as_mut() {
            if pool.free(memory).is_err() {
                log.warn(format_args!("pool: range {memory:?} could not be freed"));
            }
        }
    }

    fn warn_cpu(&self, log: &Log, name: &str, cpu: u32, refusal: cpus::Refusal) {
        match refusal {
            cpus::Refusal::NotPresent => {
                log.warn(format_args!("create {name}: CPU {cpu} is not present"))
            }
            cpus::Refusal::BootCpu => log.warn(format_args!(
                "create {name}: CPU {cpu} is the boot CPU and stays with the host"
            )),
            cpus::Refusal::Owned => {
                let owner = self.owner_of(cpu).map_or("?", |i| i.name.as_str());
                log.warn(format_args!("create {name}: CPU {cpu} belongs to instance {owner}"))
            }
            cpus::Refusal::Offline => log.warn(format_args!(
                "create {name}: CPU {cpu} is offline in the host; bring it online first"
            )),
            cpus::Refusal::Hotplug(e) => log.warn(format_args!(
                "create {name}: CPU {cpu} could not be taken offline ({e:?})"
            )),
        }
    }

    /// Destroys an instance: removes its directory, then gives its CPUs and memory back.
    fn destroy(&mut self, log: &Log, name: &spec::Name) -> Result {
        let Some(index) = self.find(name) else {
            log.warn(format_args!("destroy {}: no such instance", name.as_str()));
            return Err(ENOENT);
        };
        let state = self.instances[index].data().state();
        if !state.destroyable() {
            log.warn(format_args!(
                "destroy {}: instance is {}",
                name.as_str(),
                state.as_str()
            ));
            return Err(EBUSY);
        }
        let dir = self.instances.remove(index).map_err(|_| EINVAL)?;
        // Copy what must be given back before the directory (and the instance) goes: freeing
        // must not depend on an allocation.
        let memory = dir.data().memory;
        let mut cpu_words = [0u64; (cpus::MAX_CPUS / 64) as usize];
        for &cpu in dir.data().cpus.iter() {
            cpu_words[(cpu / 64) as usize] |= 1 << (cpu % 64);
        }
        drop(dir);
        for (w, &word) in cpu_words.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let cpu = w as u32 * 64 + bits.trailing_zeros();
                bits &= bits - 1;
                if let Err((cpu, e)) = cpus::give_back(&[cpu]) {
                    log.warn(format_args!(
                        "destroy {}: CPU {cpu} could not be brought online ({e:?})",
                        name.as_str()
                    ));
                }
            }
        }
        self.undo_memory(log, memory);
        Ok(())
    }
}

/// The data behind `/sys/kernel/multikernel/` itself.
#[pin_data]
pub(crate) struct Root {
    #[pin]
    registry: Mutex<Registry>,
    #[pin]
    log: Log,
}

impl Root {
    fn new(pool: Option<Pool>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            registry <- new_mutex!(Registry {
                pool,
                instances_dir: None,
                instances: KVec::new(),
            }, "multikernel::Registry"),
            log <- Log::new(),
        })
    }

    fn show_version(_this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{VERSION}")?;
        Ok(())
    }

    /// Checks the writer may control instances; says so once (rate-limited) if not.
    fn admin(&self, what: &str) -> Result {
        if capable(Capability::SysAdmin) {
            Ok(())
        } else {
            self.log.warn(format_args!("{what}: needs CAP_SYS_ADMIN"));
            Err(EPERM)
        }
    }

    fn store_create(this: &Self, input: &[u8]) -> Result {
        this.admin("create")?;
        let nr_cpus = nr_cpu_ids().min(cpus::MAX_CPUS);
        let spec = spec::parse_create_inner(input, nr_cpus).inspect_err(|e| {
            this.log.warn(format_args!("create: {e}"));
        });
        let spec = spec.map_err(|e| e.errno())?;
        this.registry.lock().create(&this.log, spec)
    }

    fn store_destroy(this: &Self, input: &[u8]) -> Result {
        this.admin("destroy")?;
        let name = spec::parse_destroy(input).inspect_err(|e| {
            this.log.warn(format_args!("destroy: {e}"));
        });
        let name = name.map_err(|e| e.errno())?;
        this.registry.lock().destroy(&this.log, &name)
    }

    fn show_pool(this: &Self, buf: &mut ShowBuffer<'_>, value: fn(&Pool) -> u64) -> Result {
        let bytes = this.registry.lock().pool.as_ref().map_or(0, value);
        writeln!(buf, "{bytes}")?;
        Ok(())
    }

    fn show_total(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        Self::show_pool(this, buf, Pool::total_bytes)
    }

    fn show_free(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        Self::show_pool(this, buf, Pool::free_bytes)
    }

    fn show_largest(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        Self::show_pool(this, buf, Pool::largest_free_bytes)
    }
}

kernel::sysfs_attributes! {
    impl DirData for Root {
        group {
            version: read_only(Root::show_version),
            create: write_only(Root::store_create),
            destroy: write_only(Root::store_destroy),
        },
        group pool {
            total_bytes: read_only(Root::show_total),
            free_bytes: read_only(Root::show_free),
            largest_free_bytes: read_only(Root::show_largest),
        },
    }
}

/// The control tree.
pub(crate) struct Control {
    root: Dir<Root>,
}

impl Control {
    /// Creates `/sys/kernel/multikernel/` and what is in it.
    pub(crate) fn new() -> Result<Self> {
        let pool = match pool_region() {
            Some(region) => Some(Pool::new(region.base, region.size)?),
            None => None,
        };
        let kernel_kobj = KObject::kernel().ok_or(ENODEV)?;
        let root = Dir::new(kernel_kobj, c"multikernel", Root::new(pool))?;
        let instances = Dir::new(root.kobject(), c"instances", sysfs::Empty)?;
        root.data().registry.lock().instances_dir = Some(instances);
        Ok(Self { root })
    }

    /// Bytes in the pool (0 without one), for the boot message.
    pub(crate) fn pool_bytes(&self) -> u64 {
        self.root
            .data()
            .registry
            .lock()
            .pool
            .as_ref()
            .map_or(0, Pool::total_bytes)
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        // Children before their parent: every instance (giving its resources back), then
        // `instances/`; `root` itself goes after this.
        let data = self.root.data();
        let mut registry = data.registry.lock();
        while let Some(name) = registry.instances.last().map(|dir| dir.data().name) {
            if registry.destroy(&data.log, &name).is_err() {
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

    /// The rate limit lets a burst through, then drops, without blocking.
    #[test]
    fn log_rate_limit() -> Result {
        let log = KBox::pin_init(Log::new(), GFP_KERNEL)?;
        for i in 0..(Log::BURST + 5) {
            log.warn(format_args!("multikernel_control KUnit: rate limit message {i}"));
        }
        let state = log.state.lock();
        assert_eq!(state.printed, Log::BURST);
        assert_eq!(state.dropped, 5);
        Ok(())
    }
}
