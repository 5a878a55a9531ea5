// SPDX-License-Identifier: GPL-2.0

//! The control tree, `/sys/kernel/multikernel/`.
//!
//! ```text
//! /sys/kernel/multikernel/
//! ├── version      (0444) subsystem version, "MAJOR.MINOR.PATCH\n"
//! └── instances/   one directory per instance (none yet)
//! ```

use core::fmt::Write;
use kernel::{
    prelude::*,
    sysfs::{
        self,
        Dir,
        KObject,
        ShowBuffer, //
    }, //
};

/// The subsystem version shown in `version`. The major number changes when the sysfs ABI
/// changes incompatibly.
pub(crate) const VERSION: &str = "0.1.0";

/// The data behind `/sys/kernel/multikernel/` itself.
pub(crate) struct Root;

impl Root {
    fn show_version(_this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
        writeln!(buf, "{VERSION}")?;
        Ok(())
    }
}

kernel::sysfs_attributes! {
    impl DirData for Root {
        group {
            version: read_only(Root::show_version),
        },
    }
}

/// The control tree. Fields drop in order: children before their parent.
pub(crate) struct Control {
    _instances: Dir<sysfs::Empty>,
    _root: Dir<Root>,
}

impl Control {
    /// Creates `/sys/kernel/multikernel/` and what is in it.
    pub(crate) fn new() -> Result<Self> {
        let kernel_kobj = KObject::kernel().ok_or(ENODEV)?;
        let root = Dir::new(kernel_kobj, c"multikernel", Root)?;
        let instances = Dir::new(root.kobject(), c"instances", sysfs::Empty)?;
        Ok(Self {
            _instances: instances,
            _root: root,
        })
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
        Root::show_version(&Root, &mut buf)?;
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
            let dir = Dir::new(parent, c"multikernel_kunit", Root)?;
            assert_eq!(dir.kobject().name(), Some(c"multikernel_kunit"));
            let child = Dir::new(dir.kobject(), c"child", sysfs::Empty)?;
            assert_eq!(child.kobject().name(), Some(c"child"));
            drop(child);
            drop(dir);
        }
        Ok(())
    }
}
