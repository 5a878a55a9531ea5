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

    /// Copies `bytes` to `offset` bytes into the mapping; `EINVAL` if it does not fit.
    pub fn write(&mut self, offset: usize, bytes: &[u8]) -> Result {
        let end = offset.checked_add(bytes.len()).ok_or(EINVAL)?;
        if end > self.len {
            return Err(EINVAL);
        }
        // SAFETY: `offset..end` is inside the mapping (type invariants), which nothing else in
        // this kernel references; `bytes` cannot overlap it (it is not in the pool's mapping
        // handed out as a slice anywhere).
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.virt.as_ptr().add(offset), bytes.len())
        };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to zero; `EINVAL` if that does not fit.
    pub fn zero(&mut self, offset: usize, len: usize) -> Result {
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        if end > self.len {
            return Err(EINVAL);
        }
        // SAFETY: As in `write`.
        unsafe { core::ptr::write_bytes(self.virt.as_ptr().add(offset), 0, len) };
        Ok(())
    }

    /// Copies `len` bytes from `offset` into `out`; `EINVAL` if that does not fit.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result {
        let end = offset.checked_add(out.len()).ok_or(EINVAL)?;
        if end > self.len {
            return Err(EINVAL);
        }
        // SAFETY: As in `write`, reading.
        unsafe {
            core::ptr::copy_nonoverlapping(self.virt.as_ptr().add(offset), out.as_mut_ptr(), out.len())
        };
        Ok(())
    }
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

    /// Wraps the architecture's `play_dead`; call once at init.
    pub fn init() -> Result {
        // SAFETY: Called once at init; only replaces a function pointer in `smp_ops`.
        to_result(unsafe { bindings::multikernel_spawn_init() })
    }

    /// An identity map of an instance's memory, built in pages of that memory, to enter it on.
    pub struct IdentityMap {
        pgd: u64,
        memory: (u64, u64),
    }

    impl IdentityMap {
        /// Builds the map of `memory` (`(start, len)`, inside the pool) in the pages `pagetables`
        /// (`(start, len)`, inside `memory`). Build it before arming any CPU with it, and not
        /// again while a CPU may run on it.
        pub fn build(memory: (u64, u64), pagetables: (u64, u64)) -> Result<Self> {
            let pool = pool_region().ok_or(ENODEV)?;
            let (start, len) = memory;
            let (pt_start, pt_len) = pagetables;
            let inside = pt_start >= start
                && pt_start.checked_add(pt_len).is_some_and(|end| end <= start + len);
            if !pool.contains(start, len) || !inside {
                return Err(EINVAL);
            }
            // SAFETY: Both ranges are pool memory owned by the caller's instance (checked
            // above), which no kernel uses while it is being (re)started.
            let pgd =
                unsafe { bindings::multikernel_spawn_build_map(start, len, pt_start, pt_len) };
            if pgd == 0 {
                return Err(ENOMEM);
            }
            Ok(Self { pgd, memory })
        }
    }

    /// Arms `cpu` (offline) to enter `entry` on `map`, with RSI = `rsi` and RCX = `rcx`. Both
    /// addresses must lie inside the mapped memory.
    pub fn arm(cpu: CpuId, map: &IdentityMap, rsi: u64, entry: u64, rcx: u64) -> Result {
        let (start, len) = map.memory;
        let inside = |addr: u64| addr >= start && addr - start < len;
        if !inside(rsi) || !inside(entry) {
            return Err(EINVAL);
        }
        // SAFETY: The map and addresses are inside the instance's memory (checked above and
        // by `IdentityMap::build`); the C side checks the CPU is valid and offline.
        to_result(unsafe { bindings::multikernel_spawn_arm(cpu.as_u32(), map.pgd, rsi, entry, rcx) })
    }

    /// The code an instance's waiting CPUs run, to copy into its memory: position independent,
    /// entered with RSI = wakeup mailbox and ECX = the CPU's APIC id.
    pub fn park_code() -> &'static [u8] {
        let mut code: *const c_void = core::ptr::null();
        let mut len: usize = 0;
        // SAFETY: Both pointers are valid for writing.
        unsafe { bindings::multikernel_park_code(&mut code, &mut len) };
        // SAFETY: The C side returns a range of this kernel's text, which lives forever.
        unsafe { core::slice::from_raw_parts(code.cast::<u8>(), len) }
    }

    /// This machine's timer facts an instance kernel takes over instead of calibrating:
    /// `(TSC frequency in kHz, LAPIC timer period per tick)`.
    pub fn host_timing() -> (u32, u32) {
        let (mut tsc_khz, mut lapic_period, mut apic_id) = (0, 0, 0);
        // SAFETY: The pointers are valid for writing; any CPU id is accepted.
        unsafe {
            bindings::multikernel_host_facts(0, &mut tsc_khz, &mut lapic_period, &mut apic_id)
        };
        (tsc_khz, lapic_period)
    }

    /// The APIC id of `cpu`, online or not.
    pub fn apic_id(cpu: CpuId) -> u32 {
        let (mut tsc_khz, mut lapic_period, mut apic_id) = (0, 0, 0);
        // SAFETY: The pointers are valid for writing; any CPU id is accepted.
        unsafe {
            bindings::multikernel_host_facts(cpu.as_u32(), &mut tsc_khz, &mut lapic_period, &mut apic_id)
        };
        apic_id
    }

    /// Stops whatever runs on `cpu`, which must be offline in this kernel (else nothing
    /// happens): an INIT IPI leaves it waiting for a SIPI, which this kernel's next bring-up of
    /// the CPU sends.
    pub fn reset_cpu(cpu: CpuId) {
        // SAFETY: The C side checks the CPU is valid and offline in this kernel.
        unsafe { bindings::multikernel_cpu_reset(cpu.as_u32()) }
    }

    /// Disarms `cpu` and frees its identity map.
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
    pub const ALLOWED_FLAGS: u64 = FLAG_MULTIKERNEL | UNLOAD | NO_INITRAMFS | DEBUG | (MAX_ID << ID_SHIFT);
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
            // `i32::MAX` is kexec's own `KEXEC_FILE_SIZE_MAX`.
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
