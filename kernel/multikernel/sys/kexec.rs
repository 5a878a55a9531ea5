// SPDX-License-Identifier: GPL-2.0

//! `kexec_file_load(2)` with `KEXEC_FILE_MULTIKERNEL`: reading a load request.
//!
//! The syscall (in `kernel/kexec_file.c`) checks `CAP_SYS_BOOT` and the kexec load limits as
//! for any load, then hands multikernel loads to `multikernel_kexec_file_load` (the driver's
//! `kexec.rs`), which calls [`serve`]: this reads the files (with the LSM/IMA hooks of kexec),
//! applies kexec's signature policy, copies the command line, and hands the request to the
//! caller's load or unload.

use core::ptr::NonNull;
use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

/// `KEXEC_FILE_MULTIKERNEL`: the load targets an instance.
pub(crate) const FLAG_MULTIKERNEL: u64 = bindings::KEXEC_FILE_MULTIKERNEL as u64;
const UNLOAD: u64 = bindings::KEXEC_FILE_UNLOAD as u64;
const NO_INITRAMFS: u64 = bindings::KEXEC_FILE_NO_INITRAMFS as u64;
const DEBUG: u64 = bindings::KEXEC_FILE_DEBUG as u64;
/// Flags a multikernel load may carry besides the id.
pub(crate) const ALLOWED_FLAGS: u64 =
    FLAG_MULTIKERNEL | UNLOAD | NO_INITRAMFS | DEBUG | (MAX_ID << ID_SHIFT);
/// The instance id sits in bits 16-27.
pub(crate) const ID_SHIFT: u32 = 16;
/// Largest instance id the flags can carry.
pub(crate) const MAX_ID: u64 = 0xfff;
/// The longest command line accepted, NUL included.
pub(crate) const MAX_CMDLINE: usize = 1 << 16;

/// One load request, everything read and checked for form.
pub(crate) struct Load<'a> {
    /// Target instance id (1-4095; 0 never exists).
    pub(crate) id: u32,
    /// The kernel image file.
    pub(crate) kernel: &'a [u8],
    /// The initrd file, unless `KEXEC_FILE_NO_INITRAMFS`.
    pub(crate) initrd: Option<&'a [u8]>,
    /// The command line, without its terminating NUL (which the syscall requires).
    pub(crate) cmdline: &'a [u8],
    /// `KEXEC_FILE_DEBUG` was given.
    pub(crate) debug: bool,
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

/// Reads the request the syscall's arguments describe and hands it to `load`, or the instance id
/// to `unload` for `KEXEC_FILE_UNLOAD`. `cmdline_ptr` is a user address. `EINVAL` for flags
/// other than [`ALLOWED_FLAGS`] or a command line longer than [`MAX_CMDLINE`] or not ending in
/// NUL; errors of reading the files and of the signature check as for any kexec load.
pub(crate) fn serve(
    kernel_fd: c_int,
    initrd_fd: c_int,
    cmdline_len: usize,
    cmdline_ptr: usize,
    flags: u64,
    load: impl FnOnce(&Load<'_>) -> Result,
    unload: impl FnOnce(u32) -> Result,
) -> Result {
    if flags & !ALLOWED_FLAGS != 0 {
        return Err(EINVAL);
    }
    let id = ((flags >> ID_SHIFT) & MAX_ID) as u32;
    if flags & UNLOAD != 0 {
        return unload(id);
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
    load(&Load {
        id,
        kernel: kernel.as_slice(),
        initrd: initrd.as_ref().map(FileBuf::as_slice),
        cmdline: &cmdline,
        debug: flags & DEBUG != 0,
    })
}
