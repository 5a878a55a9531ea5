// SPDX-License-Identifier: GPL-2.0

//! sysfs directories and attribute files, backed by kobjects.
//!
//! A [`Dir<T>`] is a directory in sysfs that owns a `T`. Its files are described once, statically,
//! by implementing [`DirData`] for `T` (most easily with [`sysfs_attributes!`]): each file is an
//! [`Attribute<T>`] with a `show` callback (read), a `store` callback (write), or both. Files can
//! be grouped into named subdirectories ([`AttributeGroup`]), which appear and disappear together
//! with the directory.
//!
//! Directories can be created and removed at any time after the driver core is up: a
//! [`Dir`] appears in sysfs when it is created and disappears when it is dropped. Dropping waits
//! for `show`/`store` calls that are still running on its files, so a callback never sees its data
//! freed under it. A consequence is that a callback must not drop the [`Dir`] it was called for
//! (that would wait for itself); removing *another* directory, such as a child, is fine.
//!
//! Dropping also waits until the kobject core has let go of the directory's kobject (a
//! subdirectory holds its parent's: drop children first), so a loadable module can own
//! directories: none of its code or data is reached after the drop returns.
//!
//! C headers: [`include/linux/kobject.h`](srctree/include/linux/kobject.h),
//! [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h).
//!
//! # Examples
//!
//! ```
//! use core::fmt::Write;
//! use core::sync::atomic::{AtomicU32, Ordering};
//! use kernel::sysfs::{self, Dir, KObject, ShowBuffer};
//!
//! struct Counter {
//!     value: AtomicU32,
//! }
//!
//! impl Counter {
//!     fn show_value(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
//!         writeln!(buf, "{}", this.value.load(Ordering::Relaxed))?;
//!         Ok(())
//!     }
//!
//!     fn store_value(this: &Self, input: &[u8]) -> Result {
//!         let text = core::str::from_utf8(input).map_err(|_| EINVAL)?;
//!         let value = text.trim().parse::<u32>().map_err(|_| EINVAL)?;
//!         this.value.store(value, Ordering::Relaxed);
//!         Ok(())
//!     }
//!
//!     fn show_twice(this: &Self, buf: &mut ShowBuffer<'_>) -> Result {
//!         writeln!(buf, "{}", 2 * u64::from(this.value.load(Ordering::Relaxed)))?;
//!         Ok(())
//!     }
//! }
//!
//! kernel::sysfs_attributes! {
//!     impl DirData for Counter {
//!         // `/sys/kernel/rust_sysfs_doctest/value`
//!         group {
//!             value: read_write(Counter::show_value, Counter::store_value),
//!         },
//!         // `/sys/kernel/rust_sysfs_doctest/derived/twice`
//!         group derived {
//!             twice: read_only(Counter::show_twice),
//!         },
//!     }
//! }
//!
//! let parent = KObject::kernel().ok_or(ENODEV)?;
//! let dir = Dir::new(parent, c"rust_sysfs_doctest", Counter { value: AtomicU32::new(7) })?;
//! assert_eq!(dir.data().value.load(Ordering::Relaxed), 7);
//! assert_eq!(dir.kobject().name(), Some(c"rust_sysfs_doctest"));
//!
//! // Directories can hold directories; children go before their parent.
//! let child = Dir::new(dir.kobject(), c"child", sysfs::Empty)?;
//! drop(child);
//! drop(dir);
//! # Ok::<(), Error>(())
//! ```

use crate::{
    alloc::{
        flags,
        KBox, //
    },
    bindings,
    error::to_result,
    page::PAGE_SIZE,
    prelude::*,
    str::CStr,
    sync::Completion,
    types::Opaque, //
};
use core::{
    fmt,
    marker::PhantomData,
    ptr::{
        self,
        NonNull, //
    },
};

/// Read permission for everyone: the mode of files with only a `show` callback.
pub const MODE_READ_ONLY: u16 = 0o444;
/// Write permission for the owner (root) only: the mode of files with only a `store` callback.
pub const MODE_WRITE_ONLY: u16 = 0o200;
/// Read for everyone, write for the owner (root): the mode of files with both callbacks.
pub const MODE_READ_WRITE: u16 = 0o644;

/// The buffer a `show` callback writes the file's contents into.
///
/// It holds at most `PAGE_SIZE - 1` bytes, the most sysfs passes on to a reader. Writes past that
/// fail with [`fmt::Error`] (or [`EFBIG`] from [`ShowBuffer::write_bytes`]), and what was written
/// before stays.
///
/// # Examples
///
/// ```
/// use core::fmt::Write;
/// use kernel::page::PAGE_SIZE;
/// use kernel::sysfs::ShowBuffer;
///
/// let mut page = KBox::new([0u8; PAGE_SIZE], GFP_KERNEL)?;
/// let mut buf = ShowBuffer::new(&mut page);
/// writeln!(buf, "{} {}", 0x10, c"ok".to_str()?)?;
/// assert_eq!(buf.as_bytes(), b"16 ok\n");
///
/// // Overflow is an error, not a truncation the caller could miss.
/// let big = [b'x'; PAGE_SIZE];
/// assert_eq!(buf.write_bytes(&big), Err(EFBIG));
/// assert_eq!(buf.len(), 6);
/// buf.write_bytes(&big[..PAGE_SIZE - 7])?;
/// assert_eq!(buf.len(), PAGE_SIZE - 1);
/// assert!(buf.write_str("y").is_err());
/// # Ok::<(), Error>(())
/// ```
pub struct ShowBuffer<'a> {
    page: &'a mut [u8; PAGE_SIZE],
    len: usize,
}

impl<'a> ShowBuffer<'a> {
    /// The largest number of bytes a `show` callback can return.
    pub const CAPACITY: usize = PAGE_SIZE - 1;

    /// Creates an empty buffer that writes into `page`.
    pub fn new(page: &'a mut [u8; PAGE_SIZE]) -> Self {
        Self { page, len: 0 }
    }

    /// Appends `bytes`, or fails with [`EFBIG`] (leaving the buffer as it was) if they do not fit.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result {
        let end = self
            .len
            .checked_add(bytes.len())
            .filter(|&end| end <= Self::CAPACITY)
            .ok_or(EFBIG)?;
        self.page[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.page[..self.len]
    }

    /// The number of bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Write for ShowBuffer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

/// The callback that produces a file's contents: it writes them into the buffer.
pub type ShowFn<T> = fn(&T, &mut ShowBuffer<'_>) -> Result;

/// The callback that takes a write to a file: the bytes written, as one call.
///
/// A `write(2)` reaches the callback as one call with all its bytes, at most
/// [`STORE_MAX`] of them. Longer writes fail with `E2BIG` without reaching the callback (sysfs
/// itself would cut them at `PAGE_SIZE` and report a short write, which would hand the rest to
/// a second call as if it were a separate command). An error returned here is the errno
/// `write(2)` returns.
pub type StoreFn<T> = fn(&T, &[u8]) -> Result;

/// The longest write a `store` callback receives: `PAGE_SIZE - 1` bytes.
pub const STORE_MAX: usize = PAGE_SIZE - 1;

/// One file in a sysfs directory whose data is a `T`.
///
/// Attributes live in `static`s; build them with [`sysfs_attributes!`] or with the `const`
/// constructors here.
///
/// # Invariants
///
/// `attr.name` points to a NUL-terminated `'static` string, and `attr.mode` has read bits only if
/// `show` is set and write bits only if `store` is set.
#[repr(C)]
pub struct Attribute<T> {
    // Must stay the first field: the callbacks turn a `struct attribute *` back into `Self`.
    attr: bindings::attribute,
    show: Option<ShowFn<T>>,
    store: Option<StoreFn<T>>,
}

// SAFETY: An `Attribute` is never mutated after construction (sysfs only reads `struct
// attribute`), and it holds only `'static` pointers and function pointers.
unsafe impl<T> Sync for Attribute<T> {}

impl<T> Attribute<T> {
    const fn build(
        name: &'static CStr,
        mode: u16,
        show: Option<ShowFn<T>>,
        store: Option<StoreFn<T>>,
    ) -> Self {
        // `struct attribute` has lockdep fields under CONFIG_DEBUG_LOCK_ALLOC; zero means "use
        // the static key embedded in the attribute", which is right for a `static`.
        let mut attr: bindings::attribute = pin_init::zeroed();
        attr.name = crate::str::as_char_ptr_in_const_context(name);
        attr.mode = mode;
        // INVARIANT: `name` is `'static` and NUL-terminated; the callers pass a matching mode.
        Self { attr, show, store }
    }

    /// A file that can only be read, mode `0444`.
    pub const fn read_only(name: &'static CStr, show: ShowFn<T>) -> Self {
        Self::build(name, MODE_READ_ONLY, Some(show), None)
    }

    /// A file that only root can write, mode `0200`.
    pub const fn write_only(name: &'static CStr, store: StoreFn<T>) -> Self {
        Self::build(name, MODE_WRITE_ONLY, None, Some(store))
    }

    /// A file that everyone can read and root can write, mode `0644`.
    pub const fn read_write(name: &'static CStr, show: ShowFn<T>, store: StoreFn<T>) -> Self {
        Self::build(name, MODE_READ_WRITE, Some(show), Some(store))
    }

    /// The same file with a narrower mode, for example `0400` for a file only root may read.
    ///
    /// Fails to compile (in a `static`) if `mode` grants what the callbacks cannot do, or has
    /// bits other than permissions.
    pub const fn with_mode(mut self, mode: u16) -> Self {
        assert!(
            mode & !0o777 == 0,
            "sysfs: mode has bits other than permissions"
        );
        assert!(
            self.show.is_some() || mode & 0o444 == 0,
            "sysfs: readable mode without a show callback"
        );
        assert!(
            self.store.is_some() || mode & 0o222 == 0,
            "sysfs: writable mode without a store callback"
        );
        // INVARIANT: checked just above.
        self.attr.mode = mode;
        self
    }

    /// The file's name.
    pub fn name(&self) -> &'static CStr {
        // SAFETY: By the type invariants, `attr.name` is a `'static` NUL-terminated string.
        unsafe { CStr::from_char_ptr(self.attr.name) }
    }

    /// The file's mode (permission bits).
    pub fn mode(&self) -> u16 {
        self.attr.mode
    }

    #[doc(hidden)]
    pub const fn as_raw(&'static self) -> *const bindings::attribute {
        &self.attr
    }
}

/// A NULL-terminated array of attribute pointers, the form `struct attribute_group` wants.
///
/// Built by [`sysfs_attributes!`]; `N` counts the terminator.
#[doc(hidden)]
#[repr(transparent)]
pub struct AttributeList<const N: usize>(pub [*const bindings::attribute; N]);

// SAFETY: The pointers refer to `static` `Attribute`s, which are `Sync`.
unsafe impl<const N: usize> Sync for AttributeList<N> {}

/// A set of files of a directory whose data is a `T`: either directly in the directory, or in a
/// named subdirectory that appears and disappears with it.
///
/// # Invariants
///
/// `group.attrs` points to a NULL-terminated array of pointers to `static` [`Attribute<T>`]s and
/// `group.name` is NULL or a `'static` NUL-terminated string.
#[repr(transparent)]
pub struct AttributeGroup<T> {
    group: bindings::attribute_group,
    _t: PhantomData<fn(&T)>,
}

// SAFETY: Never mutated after construction; holds only pointers to `Sync` statics.
unsafe impl<T> Sync for AttributeGroup<T> {}

impl<T> AttributeGroup<T> {
    /// Creates a group from a NULL-terminated attribute list.
    ///
    /// # Safety
    ///
    /// Every non-NULL entry of `attrs` must come from [`Attribute::<T>::as_raw`], and the last
    /// entry must be NULL.
    #[doc(hidden)]
    pub const unsafe fn new<const N: usize>(
        name: Option<&'static CStr>,
        attrs: &'static AttributeList<N>,
    ) -> Self {
        let mut group: bindings::attribute_group = pin_init::zeroed();
        group.name = match name {
            Some(name) => crate::str::as_char_ptr_in_const_context(name),
            None => ptr::null(),
        };
        group.__bindgen_anon_2.attrs = attrs.0.as_ptr().cast_mut().cast();
        // INVARIANT: guaranteed by the caller.
        Self {
            group,
            _t: PhantomData,
        }
    }

    #[doc(hidden)]
    pub const fn as_raw(&'static self) -> *const bindings::attribute_group {
        &self.group
    }
}

/// A NULL-terminated array of group pointers, the form `struct kobj_type` wants.
///
/// # Invariants
///
/// Every non-NULL entry points to a `static` [`AttributeGroup<T>`] and the last entry is NULL.
#[repr(transparent)]
pub struct GroupList<T, const N: usize> {
    groups: [*const bindings::attribute_group; N],
    _t: PhantomData<fn(&T)>,
}

// SAFETY: The pointers refer to `static` groups, which are `Sync`.
unsafe impl<T, const N: usize> Sync for GroupList<T, N> {}

impl<T, const N: usize> GroupList<T, N> {
    /// Creates the list.
    ///
    /// # Safety
    ///
    /// Every non-NULL entry must come from [`AttributeGroup::<T>::as_raw`], and the last entry
    /// must be NULL.
    #[doc(hidden)]
    pub const unsafe fn new(groups: [*const bindings::attribute_group; N]) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            groups,
            _t: PhantomData,
        }
    }

    /// The list as `struct kobj_type::default_groups` wants it.
    pub const fn as_raw(&'static self) -> *const *const bindings::attribute_group {
        self.groups.as_ptr()
    }
}

/// The data of a sysfs [`Dir`], and the files that show it.
///
/// Implement it with [`sysfs_attributes!`].
///
/// # Safety
///
/// [`DirData::GROUPS`] must return a NULL-terminated array of pointers to `static`
/// [`AttributeGroup<Self>`]s, as [`GroupList::<Self, _>::as_raw`] does.
pub unsafe trait DirData: Send + Sync + Sized + 'static {
    /// The directory's files, as a NULL-terminated list of groups.
    const GROUPS: *const *const bindings::attribute_group;
}

/// Data for a directory without files of its own, such as one that only holds directories.
pub struct Empty;

static EMPTY_GROUPS: GroupList<Empty, 1> = GroupList {
    groups: [ptr::null()],
    _t: PhantomData,
};

// SAFETY: `EMPTY_GROUPS` is an empty NULL-terminated list.
unsafe impl DirData for Empty {
    const GROUPS: *const *const bindings::attribute_group = EMPTY_GROUPS.as_raw();
}

/// A kobject: the kernel object behind a sysfs directory.
///
/// Used as the parent of a new [`Dir`]: either [`KObject::kernel`] (`/sys/kernel`) or the
/// [`Dir::kobject`] of another directory.
///
/// # Invariants
///
/// A `&KObject` refers to a kobject that has been added to sysfs and stays alive while the
/// reference does.
#[repr(transparent)]
pub struct KObject(Opaque<bindings::kobject>);

// SAFETY: kobjects are refcounted and their fields used here are stable after `kobject_add`; the
// C API they are used with takes its own locks.
unsafe impl Sync for KObject {}
// SAFETY: See above.
unsafe impl Send for KObject {}

impl KObject {
    /// The kobject of `/sys/kernel`, or `None` before it exists (early boot).
    pub fn kernel() -> Option<&'static KObject> {
        // SAFETY: `kernel_kobj` is written once, in `ksysfs_init()` (a core initcall), and never
        // freed; reading the pointer races with nothing after that.
        let raw = unsafe { bindings::kernel_kobj };
        // SAFETY: Non-NULL means the kobject was added and lives forever.
        NonNull::new(raw).map(|raw| unsafe { Self::from_raw(raw.as_ptr()) })
    }

    /// Creates a reference to a kobject from a raw pointer.
    ///
    /// # Safety
    ///
    /// `raw` must point to a kobject that has been added to sysfs and stays alive for `'a`.
    pub unsafe fn from_raw<'a>(raw: *mut bindings::kobject) -> &'a Self {
        // SAFETY: `KObject` is a transparent wrapper; liveness is guaranteed by the caller.
        unsafe { &*raw.cast::<Self>() }
    }

    /// The raw `struct kobject` pointer.
    pub fn as_raw(&self) -> *mut bindings::kobject {
        self.0.get()
    }

    /// The kobject's name: the name of its sysfs directory.
    pub fn name(&self) -> Option<&CStr> {
        // SAFETY: By the type invariants the kobject is alive; a kobject's name is set by
        // `kobject_add` and only changes through `kobject_rename`, which this crate does not use.
        let name = unsafe { (*self.as_raw()).name };
        if name.is_null() {
            return None;
        }
        // SAFETY: A non-NULL kobject name is a NUL-terminated string owned by the kobject.
        Some(unsafe { CStr::from_char_ptr(name) })
    }
}

/// The part of a [`Dir`]'s allocation that the kobject core touches: the kobject, and the
/// completion its release signals. The same for every `T`, so that the release function is not
/// generic: it is code of the kernel crate (built in), never of a loadable module.
#[repr(C)]
#[pin_data]
struct DirHead {
    #[pin]
    kobj: Opaque<bindings::kobject>,
    #[pin]
    released: Completion,
}

/// The allocation behind a [`Dir`]: the kobject and the data it shows.
#[repr(C)]
#[pin_data]
struct DirInner<T> {
    #[pin]
    head: DirHead,
    #[pin]
    data: T,
}

/// A directory in sysfs that owns a `T` and shows it through the files [`DirData`] describes.
///
/// Created by [`Dir::new`]; removed from sysfs when dropped. See the [module documentation](self)
/// for an example.
///
/// # Invariants
///
/// `inner` points to a `DirInner<T>` allocated by `KBox` and owned by this `Dir`, whose `kobj`
/// was initialised with `Self::KTYPE` and added to sysfs, and on which this `Dir` owns one
/// reference. The kobject's release ([`release_dir`]) only completes `released`; the drop waits
/// for that, then frees the allocation. So neither the data nor the allocation outlives the
/// `Dir`, and nothing of `T`'s (its callbacks, `KTYPE`) is used after the drop returns: a
/// loadable module may own directories.
pub struct Dir<T: DirData> {
    inner: NonNull<DirInner<T>>,
}

// SAFETY: `T: Send + Sync`; dropping (kobject_del/kobject_put) may happen on any thread.
unsafe impl<T: DirData> Send for Dir<T> {}
// SAFETY: `&Dir<T>` gives only `&T` (`T: Sync`) and `&KObject` (`Sync`).
unsafe impl<T: DirData> Sync for Dir<T> {}

impl<T: DirData> Dir<T> {
    const SYSFS_OPS: bindings::sysfs_ops = bindings::sysfs_ops {
        show: Some(show_callback::<T>),
        store: Some(store_callback::<T>),
    };

    const KTYPE: bindings::kobj_type = {
        let mut ktype: bindings::kobj_type = pin_init::zeroed();
        ktype.release = Some(release_dir);
        ktype.sysfs_ops = &Self::SYSFS_OPS;
        ktype.default_groups = T::GROUPS.cast_mut();
        ktype
    };

    /// Creates the directory `name` under `parent`, with `data` and its files.
    ///
    /// Fails with `EEXIST` if `parent` already has an entry called `name` (the kernel also logs
    /// that as a caller bug: check names first), `ENOMEM` when out of memory, or the error of
    /// `data`'s initialiser.
    pub fn new<InitErr>(
        parent: &KObject,
        name: &CStr,
        data: impl PinInit<T, InitErr>,
    ) -> Result<Self>
    where
        Error: From<InitErr>,
    {
        // SAFETY: `slot` is valid for writing a `T` and pinned; on error nothing was written,
        // exactly as `data`'s own contract says.
        let data = unsafe {
            pin_init::pin_init_from_closure(move |slot: *mut T| {
                pin_init::raw_try_init(slot, data).map_err(Error::from)
            })
        };
        let inner = KBox::pin_init::<Error>(
            try_pin_init!(DirInner {
                head <- pin_init!(DirHead {
                    kobj: Opaque::zeroed(),
                    released <- Completion::new(),
                }),
                data <- data,
            }),
            flags::GFP_KERNEL,
        )?;
        // SAFETY: The allocation is never moved out of: from here on it is only reached through
        // the raw pointer, and freed by `Self::free`, which rebuilds the box.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(inner) });
        // SAFETY: `raw` is valid; `kobj` is zeroed, as `kobject_init` requires.
        let kobj = unsafe { Opaque::cast_into(&raw const (*raw).head.kobj) };

        // SAFETY: `kobj` is a zeroed kobject, `KTYPE` is a static ktype whose callbacks expect a
        // kobject embedded in a `DirInner<T>`, which it is. `parent` is a live, added kobject.
        // The format string takes one `%s`, and `name` is NUL-terminated.
        let ret = unsafe {
            bindings::kobject_init_and_add(
                kobj,
                &Self::KTYPE,
                parent.as_raw(),
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        };
        if let Err(e) = to_result(ret) {
            // SAFETY: After `kobject_init_and_add` fails, the kobject is initialised and holds
            // one reference, which must be dropped; `raw` is ours (`into_raw` above).
            unsafe {
                bindings::kobject_put(kobj);
                Self::free(raw);
            }
            return Err(e);
        }
        // SAFETY: `raw` came from `KBox::into_raw`, so it is not NULL.
        let inner = unsafe { NonNull::new_unchecked(raw) };
        // INVARIANT: The kobject is initialised with `KTYPE`, added, and we own its reference.
        Ok(Self { inner })
    }

    /// The data shown by this directory's files.
    pub fn data(&self) -> &T {
        // SAFETY: By the type invariants `inner` is alive while `self` is.
        unsafe { &(*self.inner.as_ptr()).data }
    }

    /// The directory's kobject, to create subdirectories under it.
    pub fn kobject(&self) -> &KObject {
        // SAFETY: By the type invariants the kobject is added and alive while `self` is.
        unsafe {
            KObject::from_raw(Opaque::cast_into(
                &raw const (*self.inner.as_ptr()).head.kobj,
            ))
        }
    }

    /// Wakes up `poll(2)`/`select(2)` waiters on the file `attr` of this directory (or of its
    /// subdirectory `group`), after the value it shows has changed.
    pub fn notify(&self, group: Option<&CStr>, attr: &CStr) {
        let group = group.map_or(ptr::null(), |g| g.as_char_ptr());
        // SAFETY: The kobject is alive (type invariants); both strings are NUL-terminated.
        unsafe { bindings::sysfs_notify(self.kobject().as_raw(), group, attr.as_char_ptr()) };
    }
}

impl<T: DirData> Dir<T> {
    /// Waits until the kobject core released the kobject of `raw`, then frees the allocation.
    ///
    /// # Safety
    ///
    /// `raw` came from `KBox::into_raw` in [`Dir::new`], its kobject was initialised, the caller
    /// dropped its last own reference to it, and nothing else uses the allocation afterwards.
    unsafe fn free(raw: *mut DirInner<T>) {
        // SAFETY: `raw` is valid until freed below (the release no longer frees it).
        unsafe { (*raw).head.released.wait_for_completion() };
        // SAFETY: The kobject core is done with the kobject (its release ran and touches
        // nothing after completing); the allocation came from `KBox::into_raw`.
        drop(unsafe { KBox::from_raw(raw) });
    }
}

/// A reference to one file of a sysfs directory, to wake `poll(2)`/`select(2)` waiters on it
/// after the value it shows changed, from any context (the same wake-up as [`Dir::notify`],
/// without looking the file up each time). It keeps the file's node alive, not its directory:
/// once the directory is removed a notification reaches nobody.
///
/// # Invariants
///
/// `self.0` is a kernfs file node we hold a reference to.
pub struct FileNotifier(NonNull<bindings::kernfs_node>);

// SAFETY: kernfs nodes are reference counted; `kernfs_notify` and `kernfs_put` may be called
// from any thread.
unsafe impl Send for FileNotifier {}
// SAFETY: `notify` only calls `kernfs_notify`, which takes its own locks.
unsafe impl Sync for FileNotifier {}

impl FileNotifier {
    /// The file `attr` of the directory of `kobj`; `ENOENT` if it has none.
    pub fn new(kobj: &KObject, attr: &CStr) -> Result<Self> {
        // SAFETY: `kobj` is an added kobject (type invariants of `KObject`): `sd` is its
        // directory's node, set by `kobject_add` and kept until the kobject's release.
        let dir = unsafe { (*kobj.as_raw()).sd };
        if dir.is_null() {
            return Err(ENOENT);
        }
        // SAFETY: `dir` is a live kernfs directory node (above); `attr` is NUL-terminated. The
        // lookup takes a reference on what it returns.
        let kn = unsafe { bindings::kernfs_find_and_get_ns(dir, attr.as_char_ptr(), ptr::null()) };
        let kn = NonNull::new(kn).ok_or(ENOENT)?;
        // SAFETY: `kn` is alive: we hold the reference the lookup took.
        // The node's type is the low four bits of its flags (`kernfs_type()`).
        let flags = u32::from(unsafe { (*kn.as_ptr()).flags });
        if flags & 0xf != bindings::kernfs_node_type_KERNFS_FILE {
            // SAFETY: Drops the reference the lookup took.
            unsafe { bindings::kernfs_put(kn.as_ptr()) };
            return Err(EINVAL);
        }
        Ok(Self(kn))
    }

    /// Wakes up the file's `poll(2)`/`select(2)` waiters (and its fsnotify watchers).
    pub fn notify(&self) {
        // SAFETY: By the type invariants the node is a live file node.
        unsafe { bindings::kernfs_notify(self.0.as_ptr()) }
    }
}

impl Drop for FileNotifier {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we hold a reference; it is dropped once, here.
        unsafe { bindings::kernfs_put(self.0.as_ptr()) }
    }
}

impl<T: DirData> Drop for Dir<T> {
    /// Removes the directory, then waits until nobody holds its kobject any more: a
    /// subdirectory holds a reference to its parent, so drop subdirectories first (dropping a
    /// parent first waits for them).
    fn drop(&mut self) {
        let kobj = self.kobject().as_raw();
        // SAFETY: By the type invariants the kobject is added and we own a reference.
        // `kobject_del` removes the directory and waits for running `show`/`store` calls on its
        // files to return; then we drop our reference.
        unsafe {
            bindings::kobject_del(kobj);
            bindings::kobject_put(kobj);
        }
        // SAFETY: By the type invariants `inner` is ours and initialised; our reference is gone.
        unsafe { Self::free(self.inner.as_ptr()) };
    }
}

/// Called by the kobject core when the last reference to a [`Dir`]'s kobject goes: signals the
/// `Dir`'s drop, which frees the allocation. Not generic and never inlined, so that it is code
/// of the kernel crate, which is built in, even when the `Dir` belongs to a loadable module.
///
/// # Safety
///
/// `kobj` must be the `kobj` field of a `DirHead` (see [`Dir`]'s invariants), with no
/// references left.
#[inline(never)]
unsafe extern "C" fn release_dir(kobj: *mut bindings::kobject) {
    // SAFETY: Guaranteed by the caller: `kobj` is embedded in a `DirHead`, which is alive until
    // the `Dir`'s drop sees the completion. Nothing of it is touched after `complete_all`.
    unsafe {
        let head = crate::container_of!(Opaque::cast_from(kobj).cast_mut(), DirHead, kobj);
        (*head).released.complete_all();
    }
}

/// `struct sysfs_ops::show` for [`Dir<T>`].
///
/// # Safety
///
/// `kobj` must be the kobject of a live [`Dir<T>`], `attr` one of its [`Attribute<T>`]s, and `buf`
/// a `PAGE_SIZE` buffer: what sysfs passes for a kobject whose ktype is `Dir::<T>::KTYPE`.
unsafe extern "C" fn show_callback<T: DirData>(
    kobj: *mut bindings::kobject,
    attr: *mut bindings::attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: The kobject is embedded in a `DirInner<T>` (the ktype is only used by `Dir<T>`),
    // alive while sysfs runs this callback.
    let inner = unsafe {
        &*crate::container_of!(Opaque::cast_from(kobj).cast_mut(), DirInner<T>, head.kobj)
    };
    // SAFETY: The ktype's groups hold only `Attribute<T>`s, whose first field is the
    // `struct attribute` (`repr(C)`), and they are `static`.
    let attr = unsafe { &*attr.cast::<Attribute<T>>() };
    let Some(show) = attr.show else {
        return EIO.to_errno() as isize;
    };
    // SAFETY: sysfs passes a zeroed buffer of `PAGE_SIZE` bytes, ours for the call.
    let page = unsafe { &mut *buf.cast::<[u8; PAGE_SIZE]>() };
    let mut out = ShowBuffer::new(page);
    match show(&inner.data, &mut out) {
        // `len <= PAGE_SIZE - 1` by `ShowBuffer`'s construction.
        Ok(()) => out.len() as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `struct sysfs_ops::store` for [`Dir<T>`].
///
/// # Safety
///
/// `kobj` must be the kobject of a live [`Dir<T>`], `attr` one of its [`Attribute<T>`]s, and `buf`
/// valid for reading `count` bytes: what sysfs passes for a kobject whose ktype is
/// `Dir::<T>::KTYPE`.
unsafe extern "C" fn store_callback<T: DirData>(
    kobj: *mut bindings::kobject,
    attr: *mut bindings::attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: As in `show_callback`.
    let inner = unsafe {
        &*crate::container_of!(Opaque::cast_from(kobj).cast_mut(), DirInner<T>, head.kobj)
    };
    // SAFETY: As in `show_callback`.
    let attr = unsafe { &*attr.cast::<Attribute<T>>() };
    let Some(store) = attr.store else {
        return EIO.to_errno() as isize;
    };
    // sysfs passes at most `PAGE_SIZE` bytes and silently cuts longer writes to that, so a
    // full page may be the head of a longer write: refuse it rather than act on part of it.
    if count > STORE_MAX {
        return E2BIG.to_errno() as isize;
    }
    // SAFETY: sysfs passes `count` readable bytes (at most `PAGE_SIZE`), ours for the call.
    let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    match store(&inner.data, input) {
        // `count <= PAGE_SIZE`, so it fits an `isize`.
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// Describes the files of a sysfs directory whose data is a given type, implementing [`DirData`]
/// for it.
///
/// Each `group` lists files; an unnamed group puts them in the directory itself, a named one in a
/// subdirectory of that name. Each file is `name: kind(callbacks)` with the kinds of
/// [`Attribute`]: `read_only(show)` (mode `0444`), `write_only(store)` (`0200`) and
/// `read_write(show, store)` (`0644`); `mode 0o400` after it narrows the mode.
///
/// See the [module documentation](self) for an example.
#[macro_export]
macro_rules! sysfs_attributes {
    (
        impl DirData for $data:ty {
            $(
                group $($group:ident)? {
                    $(
                        $attr:ident : $kind:ident ( $($callback:expr),+ $(,)? )
                            $(mode $mode:literal)?
                    ),* $(,)?
                }
            ),* $(,)?
        }
    ) => {
        // SAFETY: `GROUPS` is a NULL-terminated list of `static` `AttributeGroup<$data>`s, each
        // holding a NULL-terminated list of `static` `Attribute<$data>`s.
        unsafe impl $crate::sysfs::DirData for $data {
            const GROUPS: *const *const $crate::bindings::attribute_group = {
                static GROUPS: $crate::sysfs::GroupList<
                    $data,
                    { [$($crate::sysfs_attributes!(@unit $($group)?)),*].len() + 1 },
                > =
                // SAFETY: Every entry is a `static` `AttributeGroup<$data>`, NULL last.
                unsafe { $crate::sysfs::GroupList::new([
                    $({
                        static GROUP: $crate::sysfs::AttributeGroup<$data> = {
                            $(
                                #[allow(non_upper_case_globals)]
                                static $attr: $crate::sysfs::Attribute<$data> =
                                    $crate::sysfs::Attribute::<$data>::$kind(
                                        $crate::c_str!(::core::stringify!($attr)),
                                        $($callback),+
                                    )$(.with_mode($mode))?;
                            )*
                            static ATTRS: $crate::sysfs::AttributeList<
                                { [$($crate::sysfs_attributes!(@unit $attr)),*].len() + 1 },
                            > = $crate::sysfs::AttributeList([
                                $($crate::sysfs::Attribute::<$data>::as_raw(&$attr),)*
                                ::core::ptr::null(),
                            ]);
                            // SAFETY: `ATTRS` lists `static` `Attribute<$data>`s, NULL last.
                            unsafe {
                                $crate::sysfs::AttributeGroup::<$data>::new(
                                    $crate::sysfs_attributes!(@name $($group)?),
                                    &ATTRS,
                                )
                            }
                        };
                        $crate::sysfs::AttributeGroup::<$data>::as_raw(&GROUP)
                    },)*
                    ::core::ptr::null(),
                ]) };
                GROUPS.as_raw()
            };
        }
    };
    (@unit $($t:tt)*) => { () };
    (@name) => { ::core::option::Option::None };
    (@name $group:ident) => {
        ::core::option::Option::Some($crate::c_str!(::core::stringify!($group)))
    };
}
