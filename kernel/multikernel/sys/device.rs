// SPDX-License-Identifier: GPL-2.0

//! A misc character device with an owned name, per-file state and `poll`: `/dev/mk-NAME` on the
//! host, `/dev/mk-host` in an instance, and the live consoles. The mainline
//! `kernel::miscdevice` has neither runtime names nor `poll` in 7.3.

use kernel::{
    bindings,
    error::to_result,
    fs::File,
    mm::virt::VmaNew,
    module::this_module,
    prelude::*,
    str::CString,
    sync::{
        poll::PollTable,
        Arc,
        ArcBorrow, //
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

/// Poll bits, as `poll(2)` has them.
pub(crate) mod poll {
    /// Readable.
    pub(crate) const IN: u32 = 0x0001;
    /// Writable.
    pub(crate) const OUT: u32 = 0x0004;
    /// Error.
    pub(crate) const ERR: u32 = 0x0008;
    /// Hung up.
    pub(crate) const HUP: u32 = 0x0010;
    /// Readable, normal data.
    pub(crate) const RDNORM: u32 = 0x0040;
    /// Writable, normal data.
    pub(crate) const WRNORM: u32 = 0x0100;
}

/// A character device's side of the core: what each `open` gets.
pub(crate) trait DeviceOps: Send + Sync + 'static {
    /// The state of one open file.
    type File: FileOps;
    /// A file of the device was opened.
    fn open(this: &Arc<Self>) -> Result<Arc<Self::File>>;
}

/// What an open file of a device does.
pub(crate) trait FileOps: Send + Sync + 'static {
    /// Reads into `out` (its `len()` is the reader's buffer size).
    fn read(&self, out: &mut UserSliceWriter, nonblock: bool) -> Result<usize>;
    /// Writes `len` bytes read from `input`.
    fn write(&self, input: UserSliceReader, len: usize, nonblock: bool) -> Result<usize>;
    /// Registers `file` on the wait queues in `table` and returns the ready [`poll`] bits.
    fn poll(&self, file: &File, table: &PollTable<'_>) -> u32;
    /// Runs ioctl `cmd` with its argument `arg` (a user address for the ones there are);
    /// `ENOTTY` for a command the device does not have.
    fn ioctl(&self, _cmd: u32, _arg: usize, _nonblock: bool) -> Result<isize> {
        Err(ENOTTY)
    }
    /// Sets up `mmap` of the file; `ENODEV` for a device that maps nothing.
    fn mmap(&self, _vma: &VmaNew) -> Result {
        Err(ENODEV)
    }
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
pub(crate) struct MessageDevice<T: DeviceOps> {
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
        fops.unlocked_ioctl = Some(Self::ioctl);
        fops.mmap = Some(Self::mmap);
        // The commands' arguments are user addresses of structures laid out alike for
        // 32-bit processes.
        #[cfg(CONFIG_COMPAT)]
        {
            fops.compat_ioctl = Some(bindings::compat_ptr_ioctl);
        }
        fops.llseek = Some(bindings::noop_llseek);
        // The module the callbacks live in: the VFS holds it while a file is open (NULL when
        // built in, as this driver is).
        fops.owner = this_module::<crate::LocalModule>().as_ptr();
        fops
    };

    /// Registers `/dev/NAME` with permissions `mode` (`0o600` or `0o400`), whose files
    /// `data` opens.
    pub(crate) fn register(name: CString, mode: u16, data: Arc<T>) -> Result<Pin<KBox<Self>>> {
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
            &*kernel::container_of!(Opaque::cast_from(misc).cast_mut(), Self, misc)
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
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: `open` stored an `Arc<T::File>` there; this is the last use.
        drop(unsafe { <Arc<T::File> as ForeignOwnable>::from_foreign((*file).private_data) });
        0
    }

    /// # Safety
    ///
    /// `file` is a live open file (during one of its file operations).
    unsafe fn nonblock(file: *mut bindings::file) -> bool {
        // SAFETY: `file` is a live open file (# Safety).
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
        // SAFETY: Called during the file's `read`.
        let nonblock = unsafe { Self::nonblock(file) };
        match data.read(&mut out, nonblock) {
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
        // SAFETY: Called during the file's `write`.
        let nonblock = unsafe { Self::nonblock(file) };
        match data.write(input, len, nonblock) {
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

impl<T: DeviceOps> MessageDevice<T> {
    /// # Safety
    ///
    /// An `ioctl` of an open file of this device.
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: Between `open` and `release`.
        let data = unsafe { Self::data(file) };
        // SAFETY: Called during the file's `ioctl`.
        let nonblock = unsafe { Self::nonblock(file) };
        match data.ioctl(cmd, arg, nonblock) {
            Ok(n) => n as c_long,
            Err(e) => e.to_errno() as c_long,
        }
    }
}

impl<T: DeviceOps> MessageDevice<T> {
    /// # Safety
    ///
    /// An `mmap` of an open file of this device, `vma` the area being set up.
    unsafe extern "C" fn mmap(
        file: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: Between `open` and `release`.
        let data = unsafe { Self::data(file) };
        // SAFETY: `vma` is being set up by this `mmap` for the duration of the call.
        let vma = unsafe { VmaNew::from_raw(vma) };
        match data.mmap(vma) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }
}

#[pinned_drop]
impl<T: DeviceOps> PinnedDrop for MessageDevice<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered since construction (type invariants); deregistered once.
        unsafe { bindings::misc_deregister(self.misc.get()) };
    }
}
