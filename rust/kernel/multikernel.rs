// SPDX-License-Identifier: GPL-2.0

//! Boot-time facts of the multikernel subsystem, for its Rust core.
//!
//! C header: [`include/linux/multikernel.h`](srctree/include/linux/multikernel.h).

use crate::bindings;

/// The physical memory reserved at boot by `multikernel.pool=SIZE[@ADDR]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRegion {
    /// Physical address of the first byte; a multiple of 2 MiB.
    pub base: u64,
    /// Size in bytes; a multiple of 2 MiB, not zero.
    pub size: u64,
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
