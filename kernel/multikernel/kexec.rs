// SPDX-License-Identifier: GPL-2.0

//! `kexec_file_load(2)` with `KEXEC_FILE_MULTIKERNEL`: loading a kernel into an instance.
//!
//! The syscall side (permissions, reading the files, the signature policy, the command line) is
//! `kernel::multikernel::kexec`; this is the instance side. A load is planned completely
//! (`loader.rs`) before anything is written, so a refused load leaves the previous image, if
//! any, as it was.

use crate::{
    control::{
        registry,
        warn, //
    },
    instance::ImageInfo,
    loader::{
        self,
        BzImage,
        Layout,
        LoadError, //
    },
};
use kernel::{
    multikernel::{
        kexec::{
            Handler,
            Load, //
        },
        PoolMapping,
    },
    prelude::*,
};

/// What the syscall calls for multikernel loads.
pub(crate) static HANDLER: Handler = Handler { load, unload };

fn load(req: &Load<'_>) -> Result {
    let registry = registry();
    let Some(instance) = registry.by_id(req.id) else {
        warn(format_args!("kexec load: no instance with id {}", req.id));
        return Err(ENOENT);
    };
    let name = instance.name.as_str();
    let state = instance.state();
    if !state.loadable() {
        warn(format_args!("kexec load {name}: instance is {}", state.as_str()));
        return Err(EBUSY);
    }
    let memory = instance.memory;
    let refused = |e: LoadError| {
        match e {
            LoadError::NotKernel(why) => {
                warn(format_args!("kexec load {name}: not a kernel this loader can start: {why}"))
            }
            LoadError::CmdlineTooLong(max) => warn(format_args!(
                "kexec load {name}: command line longer than the kernel's {max} bytes"
            )),
            LoadError::TooBig(needed) => warn(format_args!(
                "kexec load {name}: needs {needed} bytes of memory, the instance has {}",
                memory.len
            )),
        }
        e.errno()
    };
    let image = BzImage::parse(req.kernel).map_err(refused)?;
    let initrd = req.initrd.filter(|initrd| !initrd.is_empty());
    let layout = Layout::plan(
        memory,
        &image,
        initrd.map(|i| i.len() as u64),
        req.cmdline.len() as u64,
    )
    .map_err(refused)?;
    let zero_page = loader::boot_params(&image, &layout, memory)?;
    let mut cmdline = KVec::new();
    cmdline.extend_from_slice(req.cmdline, GFP_KERNEL)?;
    let info = KBox::new(
        ImageInfo {
            kernel_size: req.kernel.len() as u64,
            initrd_size: initrd.map_or(0, |i| i.len() as u64),
            cmdline,
            layout,
        },
        GFP_KERNEL,
    )?;
    let mut map = PoolMapping::new(memory.start, memory.len)?;

    // Everything is checked and allocated: write. The offsets come from `layout`, which lies
    // inside `memory`, so these cannot fail; if one did, no stale image is left claiming to be
    // loaded.
    let offset = |addr: u64| (addr - memory.start) as usize;
    let written = map
        .write(offset(layout.kernel.start), image.payload)
        .and_then(|()| map.write(offset(layout.boot_params.start), &zero_page[..]))
        .and_then(|()| map.write(offset(layout.cmdline.start), req.cmdline))
        .and_then(|()| map.zero(offset(layout.cmdline.start) + req.cmdline.len(), 1))
        .and_then(|()| match (initrd, layout.initrd) {
            (Some(bytes), Some(range)) => map.write(offset(range.start), bytes),
            _ => Ok(()),
        });
    if let Err(e) = written {
        instance.set_image(None);
        warn(format_args!("kexec load {name}: writing the image failed ({e:?})"));
        return Err(e);
    }
    if req.debug {
        pr_info!(
            "kexec load {name}: kernel {:#x}, boot_params {:#x}, cmdline {:#x}, entry {:#x}\n",
            layout.kernel.start,
            layout.boot_params.start,
            layout.cmdline.start,
            layout.entry
        );
    }
    instance.set_image(Some(info));
    Ok(())
}

fn unload(id: u32) -> Result {
    let registry = registry();
    let Some(instance) = registry.by_id(id) else {
        warn(format_args!("kexec unload: no instance with id {id}"));
        return Err(ENOENT);
    };
    let state = instance.state();
    if !state.loadable() {
        warn(format_args!(
            "kexec unload {}: instance is {}",
            instance.name.as_str(),
            state.as_str()
        ));
        return Err(EBUSY);
    }
    instance.set_image(None);
    Ok(())
}
