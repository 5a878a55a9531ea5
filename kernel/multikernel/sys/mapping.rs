// SPDX-License-Identifier: GPL-2.0

//! Memory shared with another kernel, mapped into processes, and taken away from them again:
//! the IKC stream area behind `mmap(2)` of a message device.
//!
//! The memory belongs to an instance run: once the instance stops, the pool may give it to the
//! next run or to another instance, and a process must not keep reaching it. So the mappings
//! are not set up at `mmap` but filled in at the first fault, from the target of the moment,
//! and [`PfnMapping::set`] zaps them when the target changes: a later access faults again and
//! gets the new target, or `SIGBUS` when there is none. A mapping of a file is in the
//! `address_space` of the file's inode (the device node, `/dev/mk-NAME`); the inodes through
//! which the device was ever mapped are kept (a reference each), and all their mappings are
//! zapped.

use kernel::{
    bindings,
    mm::virt::{
        flags,
        VmaNew, //
    },
    new_mutex,
    prelude::*,
    sync::Mutex,
};

const PAGE: usize = kernel::page::PAGE_SIZE;

/// Where mappings point, and the inodes they were made through.
struct Target {
    /// The memory mappings get, if any.
    area: Option<Area>,
    /// Every inode a file of the device was mapped through, held (`ihold`) until drop.
    inodes: KVec<*mut bindings::inode>,
}

/// What mappings get: `len` bytes at physical `start` (page aligned), on behalf of `owner`
/// (an identity the owner alone uses, to take it back with [`PfnMapping::revoke`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Area {
    pub(crate) start: u64,
    pub(crate) len: usize,
    pub(crate) owner: usize,
}

/// Physical memory processes may map through the files of one device, and those mappings.
///
/// # Invariants
///
/// Each mapping set up by [`PfnMapping::mmap`] is in the address space of an inode of
/// `target.inodes`, each of which holds a reference; the pages mapped in it are those of
/// `target.area` when they were filled in, and are unmapped before [`PfnMapping::set`] or
/// [`PfnMapping::revoke`] changes `target.area` and returns.
#[pin_data(PinnedDrop)]
pub(crate) struct PfnMapping {
    #[pin]
    target: Mutex<Target>,
}

// SAFETY: The inode pointers are references held for the kernel's inodes, usable from any
// thread; everything is behind the mutex.
unsafe impl Send for PfnMapping {}
// SAFETY: As for `Send`: every use from `&self` goes through the mutex.
unsafe impl Sync for PfnMapping {}

impl PfnMapping {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            target <- new_mutex!(
                Target {
                    area: None,
                    inodes: KVec::new(),
                },
                "multikernel::PfnMapping::target"
            ),
        })
    }

    /// From now on mappings get `area`, or `SIGBUS` (`None`). What processes had mapped of
    /// the old one is unmapped before this returns.
    pub(crate) fn set(&self, area: Option<Area>) {
        let mut target = self.target.lock();
        if core::mem::replace(&mut target.area, area).is_some() {
            // A fault that filled in the old target is done (it held the lock); one that
            // comes later gets the new one. Unmap what the old one left in page tables,
            // still under the lock (no fault or `mmap` takes it while holding what
            // unmapping takes: `i_mmap_rwsem`, page table locks).
            Self::zap(&target);
        }
    }

    /// Takes `owner`'s area away, as `set(None)` does, unless another owner's is there by now.
    pub(crate) fn revoke(&self, owner: usize) {
        let mut target = self.target.lock();
        if target.area.is_some_and(|area| area.owner == owner) {
            target.area = None;
            Self::zap(&target);
        }
    }

    /// Unmaps whatever processes have mapped.
    fn zap(target: &Target) {
        for &inode in target.inodes.iter() {
            // SAFETY: `inode` is held (type invariants); its `i_mapping` is its address space.
            unsafe { bindings::unmap_mapping_range((*inode).i_mapping, 0, 0, 1) };
        }
    }

    /// `mmap` of a file of the device: `EINVAL` unless it is shared, of exactly `len` bytes
    /// at offset 0 and not executable. Nothing is mapped until the first access. The mapping
    /// is not inherited by `fork`.
    pub(crate) fn mmap(&self, vma: &VmaNew, len: usize) -> Result {
        // SAFETY: `vma` is being set up by this `mmap` (type invariant of `VmaNew`), for a
        // file (`vm_file` is set before a file's `mmap` runs), which holds its inode.
        let (pgoff, inode, own_space) = unsafe {
            let raw = vma.as_ptr();
            let file = (*raw).vm_file;
            let inode = (*file).f_inode;
            (
                (*raw).vm_pgoff,
                inode,
                (*file).f_mapping == (*inode).i_mapping,
            )
        };
        // The area goes into the tree of `f_mapping`; `zap` empties the inode's.
        if vma.flags() & flags::SHARED == 0
            || vma.end() - vma.start() != len
            || pgoff != 0
            || !own_space
        {
            return Err(EINVAL);
        }
        vma.try_clear_mayexec()?;
        {
            let mut target = self.target.lock();
            if !target.inodes.contains(&inode) {
                target.inodes.push(inode, GFP_KERNEL)?;
                // SAFETY: The file being mapped holds `inode`; the reference taken here is
                // dropped with `self`.
                unsafe { bindings::ihold(inode) };
            }
        }
        vma.set_io();
        vma.set_dontexpand();
        vma.set_dontcopy();
        vma.set_dontdump();
        let raw = vma.as_ptr();
        // SAFETY: The area is not yet visible to anyone else (it is being set up). `VM_PFNMAP`
        // with `VM_IO` and a shared mapping (not copy on write) is what `vmf_insert_pfn`
        // needs; `VM_MIXEDMAP` is never set here. `self` outlives the area: the area holds
        // its file, which holds the device state this mapping is part of.
        unsafe {
            (*raw).__bindgen_anon_2.vm_flags |= flags::PFNMAP;
            (*raw).vm_ops = &Self::VM_OPS;
            (*raw).vm_private_data = core::ptr::from_ref(self).cast_mut().cast();
        }
        Ok(())
    }

    const VM_OPS: bindings::vm_operations_struct = {
        let mut ops: bindings::vm_operations_struct = pin_init::zeroed();
        ops.fault = Some(Self::fault);
        ops
    };

    /// A fault in a mapping set up by [`PfnMapping::mmap`] (or a part of one left by
    /// `munmap`/`mremap`): fills in the whole area from the current target, or `SIGBUS`.
    ///
    /// # Safety
    ///
    /// Called by the fault handler with a live `vmf` of such an area.
    unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: `vmf` is live for the call; its area is one `mmap` set up, whose private
        // data is the `PfnMapping` that outlives it.
        let (vma, this) = unsafe {
            let vma = (*vmf).__bindgen_anon_1.vma;
            (vma, &*(*vma).vm_private_data.cast::<PfnMapping>())
        };
        let target = this.target.lock();
        let Some(Area { start, len, .. }) = target.area else {
            return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
        };
        // SAFETY: The area is live (the fault holds it).
        let (first, end, pgoff) = unsafe {
            (
                (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_start,
                (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_end,
                (*vma).vm_pgoff,
            )
        };
        for (i, addr) in (first..end).step_by(PAGE).enumerate() {
            let off = (pgoff + i) * PAGE;
            if off + PAGE > len {
                return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
            }
            let pfn = (start + off as u64) / PAGE as u64;
            // SAFETY: `addr` is a page of the area, which is `VM_PFNMAP` and shared (`mmap`);
            // the memory is the target's, unmapped by `set` before it changes (we hold the
            // lock `set` takes first). A page already there is left as it is.
            let ret = unsafe { bindings::vmf_insert_pfn(vma, addr, pfn as c_ulong) };
            if ret & bindings::vm_fault_reason_VM_FAULT_NOPAGE == 0 {
                return ret;
            }
        }
        bindings::vm_fault_reason_VM_FAULT_NOPAGE
    }
}

#[pinned_drop]
impl PinnedDrop for PfnMapping {
    fn drop(self: Pin<&mut Self>) {
        for &inode in self.target.lock().inodes.iter() {
            // SAFETY: Held since `mmap` (type invariants); no mapping of ours is left (each
            // holds its file, which holds the device state `self` is part of).
            unsafe { bindings::iput(inode) };
        }
    }
}
