// SPDX-License-Identifier: GPL-2.0

//! Capabilities: whether the current task may perform a privileged operation.
//!
//! C header: [`include/linux/capability.h`](srctree/include/linux/capability.h).

use crate::bindings;

/// A capability, as in `capabilities(7)`. Only the ones Rust code checks so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Capability {
    /// `CAP_SYS_ADMIN`: system administration.
    SysAdmin = bindings::CAP_SYS_ADMIN,
    /// `CAP_SYS_BOOT`: loading kernels for later execution, rebooting.
    SysBoot = bindings::CAP_SYS_BOOT,
}

/// Whether the current task has `cap` in the initial user namespace (`capable()` in C).
///
/// Like `capable()`, a successful check marks the task as having used the capability (audit,
/// `PF_SUPERPRIV`). Call it from process context, where "the current task" is the caller.
///
/// # Examples
///
/// ```
/// use kernel::capability::{capable, Capability};
///
/// // KUnit runs doctests in a kernel thread, which has every capability.
/// assert!(capable(Capability::SysAdmin));
/// ```
pub fn capable(cap: Capability) -> bool {
    // SAFETY: `capable()` can be called from any process context with any capability number;
    // the enum only holds valid ones.
    unsafe { bindings::capable(cap as i32) }
}
