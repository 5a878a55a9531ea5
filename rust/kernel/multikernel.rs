// SPDX-License-Identifier: GPL-2.0

//! The kernel-facing side of the multikernel subsystem, for its Rust core.
//!
//! - [`pool_region`]: the memory reserved at boot by `multikernel.pool=`.
//! - [`PoolMapping`]: a kernel mapping of part of that pool, to write kernel images into.
//! - [`kexec`]: `kexec_file_load(2)` with `KEXEC_FILE_MULTIKERNEL`, routed to the core.
//!
//! C header: [`include/linux/multikernel.h`](srctree/include/linux/multikernel.h).

use crate::{
    bindings,
    prelude::*, //
};
use core::ptr::NonNull;

/// The physical memory reserved at boot by `multikernel.pool=SIZE[@ADDR]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRegion {
    /// Physical address of the first byte; a multiple of 2 MiB.
    pub base: u64,
    /// Size in bytes; a multiple of 2 MiB, not zero.
    pub size: u64,
}

impl PoolRegion {
    /// Whether `start..start + len` lies inside the pool.
    pub fn contains(&self, start: u64, len: u64) -> bool {
        start >= self.base
            && start
                .checked_add(len)
                .is_some_and(|end| end <= self.base + self.size)
    }
}

/// The pool reserved at boot, or `None` when the kernel was booted without one (or reserving it
/// failed, which the boot log says).
pub fn pool_region() -> Option<PoolRegion> {
    let mut base: bindings::phys_addr_t = 0;
    let mut size: bindings::phys_addr_t = 0;
    // SAFETY: Both pointers are valid for writing; the function only reads a static resource that
    // is set once during early boot.
    if unsafe { bindings::multikernel_pool_region(&mut base, &mut size) } {
        Some(PoolRegion { base, size })
    } else {
        None
    }
}

/// A write-back kernel mapping of a piece of the pool, unmapped on drop.
///
/// Only pool memory can be mapped: the pool is reserved at boot and never used by the host
/// kernel, so writing to it cannot corrupt the host. Which instance a piece belongs to is the
/// caller's bookkeeping.
///
/// # Invariants
///
/// `virt` maps `len` bytes of pool memory, writable, until `self` is dropped.
pub struct PoolMapping {
    virt: NonNull<u8>,
    len: usize,
}

// SAFETY: The mapping is plain memory; `&mut self` is needed to write.
unsafe impl Send for PoolMapping {}

impl PoolMapping {
    /// Maps `start..start + len`, which must lie inside the pool (else `EINVAL`).
    pub fn new(start: u64, len: u64) -> Result<Self> {
        let pool = pool_region().ok_or(ENODEV)?;
        if len == 0 || !pool.contains(start, len) {
            return Err(EINVAL);
        }
        let len = usize::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: The range is RAM reserved for the pool (checked above); `memremap` with
        // `MEMREMAP_WB` returns its direct-map address or a new mapping, or NULL.
        let virt = unsafe { bindings::memremap(start, len, bindings::MEMREMAP_WB as c_ulong) };
        let virt = NonNull::new(virt.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: `memremap` succeeded for `len` bytes.
        Ok(Self { virt, len })
    }

    /// The address `offset` bytes in, if `len` bytes from there lie inside the mapping
    /// (else `EINVAL`).
    fn at(&self, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            // SAFETY: `offset <= self.len`: inside the mapping or one past its end.
            Some(end) if end <= self.len => Ok(unsafe { self.virt.as_ptr().add(offset) }),
            _ => Err(EINVAL),
        }
    }

    /// Copies `bytes` to `offset` bytes into the mapping; `EINVAL` if it does not fit.
    pub fn write(&mut self, offset: usize, bytes: &[u8]) -> Result {
        let dst = self.at(offset, bytes.len())?;
        // SAFETY: `dst..dst + bytes.len()` is inside the mapping (`at`), which nothing else in
        // this kernel references; `bytes` cannot overlap it (it is not in the pool's mapping
        // handed out as a slice anywhere).
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to zero; `EINVAL` if that does not fit.
    pub fn zero(&mut self, offset: usize, len: usize) -> Result {
        let dst = self.at(offset, len)?;
        // SAFETY: As in `write`.
        unsafe { core::ptr::write_bytes(dst, 0, len) };
        Ok(())
    }

    /// Copies `len` bytes from `offset` into `out`; `EINVAL` if that does not fit.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result {
        let src = self.at(offset, out.len())?;
        // SAFETY: As in `write`, reading.
        unsafe { core::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}

/// Gives the CPU to other tasks if one should run (`cond_resched()`): for long loops in
/// process context, such as scrubbing an instance's memory.
pub fn cond_resched() {
    // SAFETY: Called from process context by the subsystem's long loops; may sleep.
    unsafe { bindings::multikernel_cond_resched() }
}

impl Drop for PoolMapping {
    fn drop(&mut self) {
        // SAFETY: `virt` came from `memremap` (type invariants) and is unmapped once.
        unsafe { bindings::memunmap(self.virt.as_ptr().cast()) };
    }
}

pub mod spawn {
    //! Handing an offline CPU to an instance kernel (x86, experimental).
    //!
    //! [`arm`] prepares a CPU that is offline: the next time it goes through the hotplug core's
    //! `play_dead` (that is, after it is brought online and taken offline again), it does not
    //! halt but enters the kernel loaded in the instance's memory. The caller decides when.

    use super::pool_region;
    use crate::{
        bindings,
        cpu::CpuId,
        error::to_result,
        prelude::*, //
    };

    /// What an instance kernel writes at the start of its mailbox page once booted (followed
    /// by its instance id).
    pub const MAILBOX_MAGIC: u64 = bindings::MULTIKERNEL_MAILBOX_MAGIC;
    /// Where in the mailbox page the record the waiting CPUs are started through lies.
    pub const WAKEUP_OFFSET: u64 = bindings::MULTIKERNEL_WAKEUP_OFFSET as u64;
    /// Where in the mailbox page the instance kernel writes why it stops (a `u32`).
    pub const STOP_OFFSET: usize = bindings::MULTIKERNEL_STOP_OFFSET as usize;

    /// The reasons an instance kernel gives for stopping (`MULTIKERNEL_STOP_*`).
    pub mod stop {
        use crate::bindings;

        /// `poweroff`.
        pub const POWEROFF: u32 = bindings::MULTIKERNEL_STOP_POWEROFF;
        /// `reboot` (also an emergency restart).
        pub const REBOOT: u32 = bindings::MULTIKERNEL_STOP_REBOOT;
        /// `halt`.
        pub const HALT: u32 = bindings::MULTIKERNEL_STOP_HALT;
        /// `kexec -e`: it stops instead of entering another kernel.
        pub const KEXEC: u32 = bindings::MULTIKERNEL_STOP_KEXEC;
        /// A panic (a crash kernel is not entered).
        pub const PANIC: u32 = bindings::MULTIKERNEL_STOP_PANIC;
    }

    /// Wraps the architecture's `play_dead`; call once at init.
    pub fn init() -> Result {
        // SAFETY: Called once at init; only replaces a function pointer in `smp_ops`.
        to_result(unsafe { bindings::multikernel_spawn_init() })
    }

    /// An identity map of an instance's memory, built in pages of that memory, to enter it on.
    pub struct IdentityMap {
        pgd: u64,
        memory: (u64, u64),
        park: u64,
    }

    /// Bytes of the park area (`MULTIKERNEL_PARK_BYTES`): the park loop, and the GDT, IDT and
    /// stacks every CPU of the instance enters on.
    pub const PARK_BYTES: usize = bindings::MULTIKERNEL_PARK_BYTES as usize;

    impl IdentityMap {
        /// Builds the map of `memory` (`(start, len)`, inside the pool) in the pages `pagetables`
        /// (`(start, len)`, inside `memory`), with the park area at `park` (inside `memory`,
        /// [`PARK_BYTES`]) also at its direct-map address. Build it before arming any CPU with
        /// it, and not again while a CPU may run on it.
        pub fn build(memory: (u64, u64), pagetables: (u64, u64), park: u64) -> Result<Self> {
            let pool = pool_region().ok_or(ENODEV)?;
            let (start, len) = memory;
            let (pt_start, pt_len) = pagetables;
            let inside = |at: u64, n: u64| {
                at >= start && at.checked_add(n).is_some_and(|end| end <= start + len)
            };
            if !pool.contains(start, len)
                || !inside(pt_start, pt_len)
                || !inside(park, PARK_BYTES as u64)
            {
                return Err(EINVAL);
            }
            // SAFETY: The ranges are pool memory owned by the caller's instance (checked
            // above), which no kernel uses while it is being (re)started.
            let pgd = unsafe {
                bindings::multikernel_spawn_build_map(start, len, pt_start, pt_len, park)
            };
            if pgd == 0 {
                return Err(ENOMEM);
            }
            Ok(Self { pgd, memory, park })
        }
    }

    /// Arms `cpu` (offline) to enter `entry` on `map`, with RSI = `rsi` and RCX = `rcx`, on
    /// stack `slot` of the map's park area (one slot per CPU of the instance, below 64). Both
    /// addresses must lie inside the mapped memory (else `EINVAL`).
    ///
    /// # Safety
    ///
    /// The CPU will run whatever is at `entry`, in ring 0, with the map's page tables and park
    /// area, from its next trip through `play_dead` on. The caller guarantees that what is
    /// there is meant to run on that CPU (a kernel or park loop it wrote), that the page
    /// tables and park area of `map` stay as built until the CPU leaves them, and that `slot`
    /// is used by no other CPU at the same time.
    pub unsafe fn arm(
        cpu: CpuId,
        map: &IdentityMap,
        rsi: u64,
        entry: u64,
        rcx: u64,
        slot: u32,
    ) -> Result {
        let (start, len) = map.memory;
        let inside = |addr: u64| addr >= start && addr - start < len;
        if !inside(rsi) || !inside(entry) {
            return Err(EINVAL);
        }
        // SAFETY: The map and addresses are inside the instance's memory (checked above and
        // by `IdentityMap::build`); the C side checks the CPU is valid and offline, and the
        // slot; what the CPU will run is the caller's guarantee (# Safety).
        to_result(unsafe {
            bindings::multikernel_spawn_arm(cpu.as_u32(), map.pgd, rsi, entry, rcx, map.park, slot)
        })
    }

    /// Fills `area` with what goes into the park area at `park` (physical): the loop an
    /// instance's waiting CPUs run (position independent, entered with RSI = wakeup mailbox and
    /// ECX = the CPU's APIC id), and the GDT and IDT every CPU enters on. `EINVAL` unless
    /// `area` is [`PARK_BYTES`] long.
    pub fn park_prepare(area: &mut [u8], park: u64) -> Result {
        // SAFETY: `area` is valid for writing `area.len()` bytes; the C side checks the length.
        to_result(unsafe {
            bindings::multikernel_park_prepare(area.as_mut_ptr().cast(), area.len(), park)
        })
    }

    /// `(TSC kHz, LAPIC timer period per tick, APIC id of cpu)`.
    fn facts(cpu: u32) -> (u32, u32, u32) {
        let (mut tsc_khz, mut lapic_period, mut apic_id) = (0, 0, 0);
        // SAFETY: The pointers are valid for writing; any CPU id is accepted.
        unsafe {
            bindings::multikernel_host_facts(cpu, &mut tsc_khz, &mut lapic_period, &mut apic_id)
        };
        (tsc_khz, lapic_period, apic_id)
    }

    /// Whether this kernel runs with 5-level paging (`CR4.LA57`), the mode an instance kernel
    /// is entered in.
    pub fn host_la57() -> bool {
        // SAFETY: Reads a control register of this CPU; no preconditions.
        unsafe { bindings::multikernel_host_la57() }
    }

    /// This machine's timer facts an instance kernel takes over instead of calibrating:
    /// `(TSC frequency in kHz, LAPIC timer period per tick)`.
    pub fn host_timing() -> (u32, u32) {
        let (tsc_khz, lapic_period, _) = facts(0);
        (tsc_khz, lapic_period)
    }

    /// The APIC id of `cpu`, online or not.
    pub fn apic_id(cpu: CpuId) -> u32 {
        facts(cpu.as_u32()).2
    }

    /// Stops whatever runs on `cpu`, which must be offline in this kernel (else nothing
    /// happens): an INIT IPI leaves it waiting for a SIPI, which this kernel's next bring-up of
    /// the CPU sends.
    pub fn reset_cpu(cpu: CpuId) {
        // SAFETY: The C side checks the CPU is valid and offline in this kernel.
        unsafe { bindings::multikernel_cpu_reset(cpu.as_u32()) }
    }

    /// Disarms `cpu`: its next `play_dead` halts as usual.
    pub fn disarm(cpu: CpuId) {
        // SAFETY: Any CPU id is accepted; an unarmed CPU is left alone.
        unsafe { bindings::multikernel_spawn_disarm(cpu.as_u32()) }
    }
}

pub mod kexec {
    //! `kexec_file_load(2)` with `KEXEC_FILE_MULTIKERNEL`: loading a kernel into an instance.
    //!
    //! The syscall (in `kernel/kexec_file.c`) checks `CAP_SYS_BOOT` and the kexec load limits as
    //! for any load, then hands multikernel loads to [`multikernel_kexec_file_load`], here. This
    //! reads the files (with the LSM/IMA hooks of kexec), applies kexec's signature policy,
    //! copies the command line, and calls the [`Handler`] the core registered.

    use crate::{
        bindings,
        error::to_result,
        prelude::*,
        uaccess::{
            UserPtr,
            UserSlice, //
        },
    };
    use core::{
        ptr::NonNull,
        sync::atomic::{
            AtomicPtr,
            Ordering, //
        },
    };

    /// `KEXEC_FILE_MULTIKERNEL`: the load targets an instance.
    pub const FLAG_MULTIKERNEL: u64 = bindings::KEXEC_FILE_MULTIKERNEL as u64;
    const UNLOAD: u64 = bindings::KEXEC_FILE_UNLOAD as u64;
    const NO_INITRAMFS: u64 = bindings::KEXEC_FILE_NO_INITRAMFS as u64;
    const DEBUG: u64 = bindings::KEXEC_FILE_DEBUG as u64;
    /// Flags a multikernel load may carry besides the id.
    pub const ALLOWED_FLAGS: u64 =
        FLAG_MULTIKERNEL | UNLOAD | NO_INITRAMFS | DEBUG | (MAX_ID << ID_SHIFT);
    /// The instance id sits in bits 16-27.
    pub const ID_SHIFT: u32 = 16;
    /// Largest instance id the flags can carry.
    pub const MAX_ID: u64 = 0xfff;
    /// The longest command line accepted, NUL included.
    pub const MAX_CMDLINE: usize = 1 << 16;

    /// One load request, everything read and checked for form.
    pub struct Load<'a> {
        /// Target instance id (1-4095; 0 never exists).
        pub id: u32,
        /// The kernel image file.
        pub kernel: &'a [u8],
        /// The initrd file, unless `KEXEC_FILE_NO_INITRAMFS`.
        pub initrd: Option<&'a [u8]>,
        /// The command line, without its terminating NUL (which the syscall requires).
        pub cmdline: &'a [u8],
        /// `KEXEC_FILE_DEBUG` was given.
        pub debug: bool,
    }

    /// The core's side of multikernel kexec loads.
    pub struct Handler {
        /// Loads into an instance, replacing what it had; on error the old image stays.
        pub load: fn(&Load<'_>) -> Result,
        /// Unloads an instance's image (success if none is loaded).
        pub unload: fn(u32) -> Result,
    }

    static HANDLER: AtomicPtr<Handler> = AtomicPtr::new(core::ptr::null_mut());

    /// Routes multikernel loads to `handler` from now on.
    pub fn register(handler: &'static Handler) {
        HANDLER.store(core::ptr::from_ref(handler).cast_mut(), Ordering::Release);
    }

    fn handler() -> Option<&'static Handler> {
        // SAFETY: Only `&'static Handler`s are ever stored.
        unsafe { HANDLER.load(Ordering::Acquire).as_ref() }
    }

    /// A file read by `kernel_read_file_from_fd()`, freed on drop.
    struct FileBuf {
        ptr: NonNull<u8>,
        len: usize,
    }

    impl FileBuf {
        fn read(fd: c_int, id: bindings::kernel_read_file_id) -> Result<Self> {
            let mut buf: *mut c_void = core::ptr::null_mut();
            // SAFETY: `buf` is valid for writing a pointer; a NULL `file_size` is allowed.
            // At most `i32::MAX` bytes per file (kexec's own limit, `KEXEC_FILE_SIZE_MAX`, is
            // min(4 GiB, SSIZE_MAX); a bzImage or initrd for an instance is far below both).
            let ret = unsafe {
                bindings::kernel_read_file_from_fd(
                    fd,
                    0,
                    &mut buf,
                    i32::MAX as usize,
                    core::ptr::null_mut(),
                    id,
                )
            };
            if ret < 0 {
                return Err(Error::from_errno(ret as i32));
            }
            match NonNull::new(buf.cast::<u8>()) {
                Some(ptr) => Ok(Self {
                    ptr,
                    len: ret as usize,
                }),
                // An empty file may come back without a buffer.
                None => Err(ENOEXEC),
            }
        }

        fn as_slice(&self) -> &[u8] {
            // SAFETY: `kernel_read_file_from_fd` filled `len` bytes at `ptr`, ours until drop.
            unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
        }
    }

    impl Drop for FileBuf {
        fn drop(&mut self) {
            // SAFETY: The buffer was allocated by `kernel_read_file_from_fd` (vmalloc).
            unsafe { bindings::kvfree(self.ptr.as_ptr().cast()) };
        }
    }

    fn load(
        kernel_fd: c_int,
        initrd_fd: c_int,
        cmdline_len: usize,
        cmdline_ptr: usize,
        flags: u64,
    ) -> Result {
        if flags & !ALLOWED_FLAGS != 0 {
            return Err(EINVAL);
        }
        let id = ((flags >> ID_SHIFT) & MAX_ID) as u32;
        let handler = handler().ok_or(ENODEV)?;
        if flags & UNLOAD != 0 {
            return (handler.unload)(id);
        }
        let kernel = FileBuf::read(kernel_fd, bindings::kernel_read_file_id_READING_KEXEC_IMAGE)?;
        // SAFETY: `kernel` is a readable buffer of that length.
        to_result(unsafe {
            bindings::kexec_file_check_sig(kernel.ptr.as_ptr().cast(), kernel.len as c_ulong)
        })?;
        let initrd = if flags & NO_INITRAMFS == 0 {
            Some(FileBuf::read(
                initrd_fd,
                bindings::kernel_read_file_id_READING_KEXEC_INITRAMFS,
            )?)
        } else {
            None
        };
        if cmdline_len > MAX_CMDLINE {
            return Err(EINVAL);
        }
        let mut cmdline = KVec::new();
        if cmdline_len > 0 {
            UserSlice::new(UserPtr::from_addr(cmdline_ptr), cmdline_len)
                .read_all(&mut cmdline, GFP_KERNEL)?;
            // As for any kexec_file_load: the command line must end in NUL.
            if cmdline.pop() != Some(0) {
                return Err(EINVAL);
            }
        }
        (handler.load)(&Load {
            id,
            kernel: kernel.as_slice(),
            initrd: initrd.as_ref().map(FileBuf::as_slice),
            cmdline: &cmdline,
            debug: flags & DEBUG != 0,
        })
    }

    /// Called by `kexec_file_load(2)` for `KEXEC_FILE_MULTIKERNEL` loads, after the permission
    /// checks every kexec load gets.
    ///
    /// # Safety
    ///
    /// Called only from the syscall, with its arguments: `cmdline_ptr` is a user pointer.
    #[no_mangle]
    pub unsafe extern "C" fn multikernel_kexec_file_load(
        kernel_fd: c_int,
        initrd_fd: c_int,
        cmdline_len: c_ulong,
        cmdline_ptr: *const c_char,
        flags: c_ulong,
    ) -> c_long {
        match load(
            kernel_fd,
            initrd_fd,
            cmdline_len,
            cmdline_ptr as usize,
            flags as u64,
        ) {
            Ok(()) => 0,
            Err(e) => e.to_errno() as c_long,
        }
    }
}

pub mod ikc {
    //! The machine side of the inter-kernel channel (IKC): the memory two kernels share, the
    //! doorbell (an IPI on `X86_PLATFORM_IPI_VECTOR`, which this subsystem owns), the console
    //! an instance kernel sends its output through, and a message device for user space.
    //!
    //! The channel's logic (rings, ports, heartbeat) is the core's; this module only gives it
    //! safe access to what it needs.

    use super::pool_region;
    use crate::{
        bindings,
        error::to_result,
        fs::File,
        prelude::*,
        str::CString,
        sync::{
            poll::PollTable,
            Arc,
            ArcBorrow,
            SetOnce, //
        },
        types::{
            ForeignOwnable,
            Opaque, //
        },
        uaccess::{
            UserPtr,
            UserSlice,
            UserSliceReader,
            UserSliceWriter, //
        },
    };
    use core::{
        ptr::NonNull,
        sync::atomic::{
            AtomicU64,
            Ordering, //
        },
    };

    /// Memory shared with another kernel, mapped write-back, unmapped on drop.
    ///
    /// The other kernel writes it at any time: reads return whatever is there (the caller
    /// validates it), and no Rust reference to its bytes is ever handed out.
    ///
    /// # Invariants
    ///
    /// `virt` maps `len` bytes, 8-byte aligned, until `self` is dropped; nothing in this kernel
    /// but this mapping's owner uses that memory.
    pub struct SharedMem {
        virt: NonNull<u8>,
        len: usize,
    }

    // SAFETY: The mapping is plain memory, accessed only through raw pointers and atomics.
    unsafe impl Send for SharedMem {}
    // SAFETY: Every method takes `&self` and copies or uses atomics; concurrent writers are
    // expected (the other kernel is one).
    unsafe impl Sync for SharedMem {}

    impl SharedMem {
        /// Maps `start..start + len` of the pool (host side: a channel inside an instance's
        /// memory). `EINVAL` unless it lies inside the pool and is page aligned.
        pub fn map_pool(start: u64, len: u64) -> Result<Self> {
            let pool = pool_region().ok_or(ENODEV)?;
            if len == 0 || start % 4096 != 0 || !pool.contains(start, len) {
                return Err(EINVAL);
            }
            Self::map(start, len)
        }

        /// Maps the channel the host described on this kernel's command line
        /// (`multikernel.ikc=`), `len` bytes (instance side). `EINVAL` if that memory is RAM of
        /// this kernel (the host must have reserved it in our memory map).
        pub fn map_host_channel(len: u64) -> Result<Self> {
            let info = instance_info().ok_or(ENODEV)?;
            if len == 0 || info.channel == 0 || info.channel % 4096 != 0 {
                return Err(EINVAL);
            }
            // SAFETY: Only reads the resource tree.
            let overlap = unsafe {
                bindings::region_intersects(
                    info.channel,
                    len as usize,
                    bindings::IORESOURCE_SYSTEM_RAM as c_ulong,
                    bindings::IORES_DESC_NONE as c_ulong,
                )
            };
            if overlap != bindings::REGION_DISJOINT as c_int {
                return Err(EINVAL);
            }
            Self::map(info.channel, len)
        }

        fn map(start: u64, len: u64) -> Result<Self> {
            let len = usize::try_from(len).map_err(|_| EINVAL)?;
            // SAFETY: The callers checked the range is memory no allocator of this kernel hands
            // out (pool, or reserved by the host); `memremap` returns a mapping or NULL.
            let virt = unsafe { bindings::memremap(start, len, bindings::MEMREMAP_WB as c_ulong) };
            let virt = NonNull::new(virt.cast::<u8>()).ok_or(ENOMEM)?;
            // INVARIANT: `memremap` succeeded for `len` bytes, page aligned.
            Ok(Self { virt, len })
        }

        /// Size in bytes.
        pub fn len(&self) -> usize {
            self.len
        }

        /// Whether the mapping is empty (never: mappings are at least a byte).
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }

        fn inside(&self, off: usize, len: usize) -> bool {
            off.checked_add(len).is_some_and(|end| end <= self.len)
        }

        /// Copies bytes out from `off`; outside the mapping, `out` is zeroed instead.
        ///
        /// Volatile reads, a word at a time where `off` allows: the peer may be writing, and
        /// the compiler must not read the shared bytes again later instead of the copy (the
        /// caller checks the copy).
        pub fn read(&self, off: usize, out: &mut [u8]) {
            if !self.inside(off, out.len()) {
                out.fill(0);
                return;
            }
            // SAFETY: `off..off + out.len()` is inside the mapping (checked).
            let src = unsafe { self.virt.as_ptr().add(off) };
            let mut done = 0;
            if off % 8 == 0 {
                for chunk in out.chunks_exact_mut(8) {
                    // SAFETY: In bounds (above) and 8-byte aligned (`off` is, the mapping is
                    // page aligned, `done` is a multiple of 8); plain memory.
                    let word = unsafe { core::ptr::read_volatile(src.add(done).cast::<u64>()) };
                    chunk.copy_from_slice(&word.to_ne_bytes());
                    done += 8;
                }
            }
            for (i, byte) in out[done..].iter_mut().enumerate() {
                // SAFETY: In bounds (above).
                *byte = unsafe { core::ptr::read_volatile(src.add(done + i)) };
            }
        }

        /// Copies bytes out from `off` with a plain copy, for bytes the caller decides nothing on
        /// that memory safety depends on (a payload); outside the mapping, `out` is zeroed.
        pub fn read_bulk(&self, off: usize, out: &mut [u8]) {
            if !self.inside(off, out.len()) {
                out.fill(0);
                return;
            }
            // SAFETY: `off..off + out.len()` is inside the mapping (checked); the peer may be
            // writing it, so the bytes are only copied, and `out` is not in the mapping.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    self.virt.as_ptr().add(off),
                    out.as_mut_ptr(),
                    out.len(),
                )
            };
        }

        /// Copies `bytes` in at `off`; outside the mapping nothing is written.
        pub fn write(&self, off: usize, bytes: &[u8]) {
            if !self.inside(off, bytes.len()) {
                return;
            }
            // SAFETY: As in `read`, writing; `bytes` is not in the mapping (no reference to it
            // is ever handed out).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.virt.as_ptr().add(off),
                    bytes.len(),
                )
            };
        }

        fn word(&self, off: usize) -> Option<&AtomicU64> {
            if off % 8 != 0 || !self.inside(off, 8) {
                return None;
            }
            // SAFETY: In bounds and 8-byte aligned (the mapping is page aligned); the memory
            // lives as long as `self`, and is only ever accessed atomically at this offset by
            // the index protocol of both kernels.
            Some(unsafe { AtomicU64::from_ptr(self.virt.as_ptr().add(off).cast::<u64>()) })
        }

        /// Loads the 64-bit word at `off` (0 if not a word of the mapping): at least acquire
        /// ordering, and sequentially consistent with [`SharedMem::store_release`], so a store
        /// followed by a load of another word is never reordered (the doorbell flags need it).
        pub fn load_acquire(&self, off: usize) -> u64 {
            self.word(off).map_or(0, |w| w.load(Ordering::SeqCst))
        }

        /// Stores the 64-bit word at `off`, ordered after earlier accesses and before later
        /// loads (sequentially consistent); nothing if not a word of the mapping.
        pub fn store_release(&self, off: usize, value: u64) {
            if let Some(w) = self.word(off) {
                w.store(value, Ordering::SeqCst);
            }
        }
    }

    impl Drop for SharedMem {
        fn drop(&mut self) {
            // SAFETY: `virt` came from `memremap` (type invariants) and is unmapped once.
            unsafe { bindings::memunmap(self.virt.as_ptr().cast()) };
        }
    }

    /// What an instance kernel was told about itself on its command line.
    #[derive(Clone, Copy, Debug)]
    pub struct InstanceInfo {
        /// Its instance id (not 0).
        pub id: u32,
        /// Physical address of its channel to the host.
        pub channel: u64,
        /// APIC id of the host CPU that takes its doorbells.
        pub host_apic: u32,
    }

    /// `Some` when this kernel runs as an instance (`multikernel.instance=` was given).
    pub fn instance_info() -> Option<InstanceInfo> {
        let (mut id, mut channel, mut host_apic) = (0u32, 0u64, 0u32);
        // SAFETY: The pointers are valid for writing; the C side reads values set at boot.
        let is_instance =
            unsafe { bindings::multikernel_instance_info(&mut id, &mut channel, &mut host_apic) };
        is_instance.then_some(InstanceInfo {
            id,
            channel,
            host_apic,
        })
    }

    static DOORBELL: SetOnce<fn()> = SetOnce::new();
    static CONSOLE: SetOnce<fn(&[u8])> = SetOnce::new();

    /// Takes the IKC doorbell vector; `handler` runs in hard interrupt context on every
    /// doorbell this CPU receives. Once; `EBUSY` if the vector is taken.
    ///
    /// # Safety
    ///
    /// Call from built-in init code, before the kernel seals its read-only-after-init data
    /// (`mark_rodata_ro()`): the vector's hook lives there, and writing it later faults.
    pub unsafe fn take_doorbell(handler: fn()) -> Result {
        if !DOORBELL.populate(handler) {
            return Err(EBUSY);
        }
        // SAFETY: The caller runs before read-only-after-init data is sealed (# Safety).
        to_result(unsafe { bindings::multikernel_ikc_init() })
    }

    /// Drains the doorbell vector does per CPU per window of 2^20 ns; more are only counted.
    pub const DOORBELL_BUDGET: u32 = bindings::MULTIKERNEL_DOORBELL_BUDGET;

    /// Doorbells taken by this kernel since boot, and how many of them were over the budget
    /// (acknowledged, not drained): `(received, throttled)`.
    pub fn doorbell_stats() -> (u64, u64) {
        let (mut received, mut throttled) = (0, 0);
        // SAFETY: Both pointers are valid for writing.
        unsafe { bindings::multikernel_ikc_doorbell_stats(&mut received, &mut throttled) };
        (received, throttled)
    }

    /// Sends an NMI to the CPU with APIC id `apic_id` (fault injection: a CPU of an instance).
    pub fn send_nmi(apic_id: u32) {
        // SAFETY: Sends one NMI IPI; any id is accepted (a wrong one reaches nobody).
        unsafe { bindings::multikernel_send_nmi(apic_id) }
    }

    /// Rings the doorbell of the CPU with APIC id `apic_id` (a CPU of the other kernel).
    pub fn ring(apic_id: u32) {
        // SAFETY: Sends one fixed IPI; any id is accepted (a wrong one reaches nobody).
        unsafe { bindings::multikernel_ikc_ring(apic_id) }
    }

    /// Called by the doorbell vector.
    #[no_mangle]
    extern "C" fn multikernel_ikc_doorbell_irq() {
        if let Some(handler) = DOORBELL.as_ref() {
            handler();
        }
    }

    /// Registers a console that hands every line this kernel prints to `write` (any context,
    /// interrupts possibly off: `write` must not sleep and must not print). Once.
    pub fn register_console(write: fn(&[u8])) -> Result {
        if !CONSOLE.populate(write) {
            return Err(EBUSY);
        }
        // SAFETY: Registers a static console whose write calls `multikernel_ikc_console_write`.
        unsafe { bindings::multikernel_ikc_console_register() };
        Ok(())
    }

    /// Called by the console.
    ///
    /// # Safety
    ///
    /// `text` is readable for `len` bytes for the call.
    #[no_mangle]
    unsafe extern "C" fn multikernel_ikc_console_write(text: *const c_char, len: c_uint) {
        if let Some(write) = CONSOLE.as_ref() {
            // SAFETY: The console core passes `len` readable bytes.
            write(unsafe { core::slice::from_raw_parts(text.cast::<u8>(), len as usize) });
        }
    }

    /// Poll bits, as `poll(2)` has them.
    pub mod poll {
        /// Readable.
        pub const IN: u32 = 0x0001;
        /// Writable.
        pub const OUT: u32 = 0x0004;
        /// Error.
        pub const ERR: u32 = 0x0008;
        /// Hung up.
        pub const HUP: u32 = 0x0010;
        /// Readable, normal data.
        pub const RDNORM: u32 = 0x0040;
        /// Writable, normal data.
        pub const WRNORM: u32 = 0x0100;
    }

    /// A character device's side of the core: what each `open` gets.
    pub trait DeviceOps: Send + Sync + 'static {
        /// The state of one open file.
        type File: FileOps;
        /// A file of the device was opened.
        fn open(this: &Arc<Self>) -> Result<Arc<Self::File>>;
    }

    /// What an open file of a device does.
    pub trait FileOps: Send + Sync + 'static {
        /// Reads into `out` (its `len()` is the reader's buffer size).
        fn read(&self, out: &mut UserSliceWriter, nonblock: bool) -> Result<usize>;
        /// Writes `len` bytes read from `input`.
        fn write(&self, input: UserSliceReader, len: usize, nonblock: bool) -> Result<usize>;
        /// Registers `file` on the wait queues in `table` and returns the ready [`poll`] bits.
        fn poll(&self, file: &File, table: &PollTable<'_>) -> u32;
    }

    /// A misc character device, `/dev/NAME`, root's only, without offsets (a stream or
    /// datagram device: what a read or write means is `T`'s), with `poll` and `O_NONBLOCK`.
    /// Deregistered on drop; files still open keep their `T::File`.
    ///
    /// # Invariants
    ///
    /// `misc` is registered with `misc_register` from construction until drop, with its name
    /// pointing into `name` and its `fops` being `Self::FOPS`.
    #[pin_data(PinnedDrop)]
    pub struct MessageDevice<T: DeviceOps> {
        name: CString,
        data: Arc<T>,
        #[pin]
        misc: Opaque<bindings::miscdevice>,
    }

    // SAFETY: `misc_register`/`misc_deregister` may run on any thread; `T: Send + Sync`.
    unsafe impl<T: DeviceOps> Send for MessageDevice<T> {}
    // SAFETY: `&self` gives nothing but the name.
    unsafe impl<T: DeviceOps> Sync for MessageDevice<T> {}

    impl<T: DeviceOps> MessageDevice<T> {
        const FOPS: bindings::file_operations = {
            let mut fops: bindings::file_operations = pin_init::zeroed();
            fops.open = Some(Self::open);
            fops.release = Some(Self::release);
            fops.read = Some(Self::read);
            fops.write = Some(Self::write);
            fops.poll = Some(Self::poll);
            fops.llseek = Some(bindings::noop_llseek);
            fops
        };

        /// Registers `/dev/NAME` with permissions `mode` (`0o600` or `0o400`), whose files
        /// `data` opens.
        pub fn register(name: CString, mode: u16, data: Arc<T>) -> Result<Pin<KBox<Self>>> {
            if mode & !0o600 != 0 {
                return Err(EINVAL);
            }
            let name_ptr = name.as_char_ptr();
            KBox::try_pin_init(
                try_pin_init!(Self {
                    name,
                    data,
                    // Last: the device can be opened as soon as it is registered, and `open`
                    // reads `data`.
                    misc <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                        let mut raw: bindings::miscdevice = pin_init::zeroed();
                        raw.minor = bindings::MISC_DYNAMIC_MINOR as c_int;
                        // The string's buffer stays where it is when `name` moves into `Self`.
                        raw.name = name_ptr;
                        raw.fops = &Self::FOPS;
                        raw.mode = mode;
                        // SAFETY: `slot` is valid for writing and pinned; it stays registered
                        // until `drop` deregisters it.
                        unsafe { slot.write(raw) };
                        // SAFETY: `slot` holds a filled-in `struct miscdevice`.
                        to_result(unsafe { bindings::misc_register(slot) })
                    }),
                }),
                GFP_KERNEL,
            )
        }

        /// The file's `T::File`.
        ///
        /// # Safety
        ///
        /// `file` is a file of this device between `open` and `release`.
        unsafe fn data<'a>(file: *mut bindings::file) -> ArcBorrow<'a, T::File> {
            // SAFETY: `open` stored an `Arc<T::File>` in `private_data`, which `release` takes
            // back.
            unsafe { <Arc<T::File> as ForeignOwnable>::borrow((*file).private_data) }
        }

        /// # Safety
        ///
        /// Called by `misc_open` with `private_data` pointing to this device's `miscdevice`.
        unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
            // SAFETY: `misc_open` set `private_data` to the registered `miscdevice`, embedded in
            // a live `Self`, and holds the misc lock, so it cannot be deregistered meanwhile.
            let this = unsafe {
                let misc = (*file).private_data.cast::<bindings::miscdevice>();
                &*crate::container_of!(Opaque::cast_from(misc).cast_mut(), Self, misc)
            };
            // SAFETY: `inode` and `file` are the ones being opened.
            let ret = unsafe { bindings::stream_open(inode, file) };
            if ret != 0 {
                return ret;
            }
            let opened = match T::open(&this.data) {
                Ok(opened) => opened,
                Err(e) => return e.to_errno(),
            };
            // SAFETY: The open call owns `private_data`; `release` takes the `Arc` back.
            unsafe { (*file).private_data = opened.into_foreign() };
            0
        }

        /// # Safety
        ///
        /// Called once per file, after `open` succeeded.
        unsafe extern "C" fn release(
            _inode: *mut bindings::inode,
            file: *mut bindings::file,
        ) -> c_int {
            // SAFETY: `open` stored an `Arc<T::File>` there; this is the last use.
            drop(unsafe { <Arc<T::File> as ForeignOwnable>::from_foreign((*file).private_data) });
            0
        }

        fn nonblock(file: *mut bindings::file) -> bool {
            // SAFETY: `file` is a live open file of this device (the callers' contract).
            unsafe { (*file).f_flags & bindings::O_NONBLOCK != 0 }
        }

        /// # Safety
        ///
        /// A `read` of an open file of this device; `buf` is a user pointer.
        unsafe extern "C" fn read(
            file: *mut bindings::file,
            buf: *mut c_char,
            len: usize,
            _pos: *mut bindings::loff_t,
        ) -> isize {
            // SAFETY: Between `open` and `release`.
            let data = unsafe { Self::data(file) };
            let mut out = UserSlice::new(UserPtr::from_addr(buf as usize), len).writer();
            match data.read(&mut out, Self::nonblock(file)) {
                Ok(n) => n as isize,
                Err(e) => e.to_errno() as isize,
            }
        }

        /// # Safety
        ///
        /// A `write` of an open file of this device; `buf` is a user pointer.
        unsafe extern "C" fn write(
            file: *mut bindings::file,
            buf: *const c_char,
            len: usize,
            _pos: *mut bindings::loff_t,
        ) -> isize {
            // SAFETY: Between `open` and `release`.
            let data = unsafe { Self::data(file) };
            let input = UserSlice::new(UserPtr::from_addr(buf as usize), len).reader();
            match data.write(input, len, Self::nonblock(file)) {
                Ok(n) => n as isize,
                Err(e) => e.to_errno() as isize,
            }
        }

        /// # Safety
        ///
        /// A `poll` of an open file of this device.
        unsafe extern "C" fn poll(
            file: *mut bindings::file,
            table: *mut bindings::poll_table_struct,
        ) -> bindings::__poll_t {
            // SAFETY: Between `open` and `release`.
            let data = unsafe { Self::data(file) };
            // SAFETY: The poll core passes a valid (possibly NULL) table for this call.
            let table = unsafe { PollTable::from_raw(table) };
            // SAFETY: `file` is valid for the call; no `fdget_pos` region is active here.
            let f = unsafe { File::from_raw_file(file) };
            data.poll(f, &table)
        }
    }

    #[pinned_drop]
    impl<T: DeviceOps> PinnedDrop for MessageDevice<T> {
        fn drop(self: Pin<&mut Self>) {
            // SAFETY: Registered since construction (type invariants); deregistered once.
            unsafe { bindings::misc_deregister(self.misc.get()) };
        }
    }
}

pub mod baseline {
    //! What a same-kernel cross-CPU exchange costs on this machine, to compare the inter-kernel
    //! channel with (`/sys/kernel/multikernel/ikc_baseline`).

    use crate::{
        bindings,
        cpu::CpuId,
        error::to_result,
        prelude::*,
        time::{
            Delta,
            Instant,
            Monotonic, //
        },
    };

    extern "C" fn nothing(_info: *mut c_void) {}

    /// One round trip of an empty function call on `cpu`, waited for
    /// (`smp_call_function_single`): the IPI there and the completion back. `ENXIO` if `cpu`
    /// is offline.
    pub fn call_round_trip(cpu: CpuId) -> Result<Delta> {
        let start = Instant::<Monotonic>::now();
        // SAFETY: `nothing` ignores its argument; `wait` makes the call return after it ran.
        to_result(unsafe {
            bindings::smp_call_function_single(
                cpu.as_u32() as c_int,
                Some(nothing),
                core::ptr::null_mut(),
                true,
            )
        })?;
        Ok(start.elapsed())
    }
}

pub mod raw_lock {
    //! An interrupt-safe spinlock that stays a spinning lock everywhere (`raw_spinlock_t`), for
    //! the few places that must take a lock in hard interrupt context, such as the IKC doorbell.
    //! Critical sections must be short and must not sleep, allocate or take a `spinlock_t`.

    use crate::{
        bindings,
        prelude::*,
        sync::lock::{
            Backend,
            Lock, //
        },
    };

    /// A `raw_spinlock_t` taken with interrupts disabled (`raw_spin_lock_irqsave`).
    pub type RawSpinLockIrq<T> = Lock<T, RawSpinLockIrqBackend>;

    /// The backend of [`RawSpinLockIrq`].
    pub struct RawSpinLockIrqBackend;

    // SAFETY: The kernel's `raw_spinlock_t` ensures mutual exclusion; the guard keeps the saved
    // interrupt flags, restored on unlock; `relock` uses the default (lock again).
    unsafe impl Backend for RawSpinLockIrqBackend {
        type State = bindings::raw_spinlock_t;
        type GuardState = c_ulong;

        unsafe fn init(
            ptr: *mut Self::State,
            name: *const c_char,
            key: *mut bindings::lock_class_key,
        ) {
            // SAFETY: The caller passes a lock valid for writes and a name and key valid
            // forever.
            unsafe { bindings::multikernel_raw_spin_lock_init(ptr, name, key) }
        }

        unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
            // SAFETY: The caller passes an initialised lock.
            unsafe { bindings::multikernel_raw_spin_lock_irqsave(ptr) }
        }

        unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
            let mut flags: c_ulong = 0;
            // SAFETY: The caller passes an initialised lock; `flags` is valid for writing.
            let taken = unsafe { bindings::multikernel_raw_spin_trylock_irqsave(ptr, &mut flags) };
            taken.then_some(flags)
        }

        unsafe fn unlock(ptr: *mut Self::State, guard_state: &Self::GuardState) {
            // SAFETY: The caller owns the lock; `guard_state` holds the flags its lock saved.
            unsafe { bindings::multikernel_raw_spin_unlock_irqrestore(ptr, *guard_state) }
        }

        unsafe fn assert_is_held(ptr: *mut Self::State) {
            // SAFETY: The caller passes an initialised lock.
            unsafe { bindings::multikernel_raw_spin_assert_held(ptr) }
        }
    }
}
