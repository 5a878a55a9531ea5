// SPDX-License-Identifier: GPL-2.0

//! A spinlock that spins everywhere, taken with interrupts disabled (`raw_spinlock_t`).
//!
//! [`SpinLock`](super::spinlock::SpinLock) becomes a sleeping lock on `PREEMPT_RT`; a
//! [`RawSpinLockIrq`] does not, so it may be taken in hard interrupt context on every
//! configuration (an IPI handler, for example). Critical sections must be short and must not
//! sleep, allocate, or take a `spinlock_t` or a mutex.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h).

use super::*;
use crate::prelude::*;

/// Creates a [`RawSpinLockIrq`] initialiser with the given name and a newly-created lock class.
///
/// It uses the name if one is given, otherwise it generates one based on the file name and line
/// number.
#[macro_export]
macro_rules! new_raw_spinlock_irq {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        $crate::sync::RawSpinLockIrq::new(
            $inner, $crate::optional_name!($($name)?), $crate::static_lock_class!())
    };
}
pub use new_raw_spinlock_irq;

/// A `raw_spinlock_t`, taken with `raw_spin_lock_irqsave()`: the interrupt flags are saved in the
/// guard and restored when it drops, so it can be taken with interrupts on or off.
///
/// # Examples
///
/// ```
/// use kernel::sync::{new_raw_spinlock_irq, RawSpinLockIrq};
///
/// #[pin_data]
/// struct Counter {
///     #[pin]
///     hits: RawSpinLockIrq<u64>,
/// }
///
/// let c = KBox::pin_init(pin_init!(Counter { hits <- new_raw_spinlock_irq!(0) }), GFP_KERNEL)?;
/// *c.hits.lock() += 1;
/// {
///     let mut guard = c.hits.try_lock().expect("nobody else holds it");
///     *guard += 1;
/// }
/// assert_eq!(*c.hits.lock(), 2);
/// # Ok::<(), Error>(())
/// ```
pub type RawSpinLockIrq<T> = Lock<T, RawSpinLockIrqBackend>;

/// A [`Guard`] acquired from locking a [`RawSpinLockIrq`]; unlocks it (restoring the saved
/// interrupt flags) when dropped.
pub type RawSpinLockIrqGuard<'a, T> = Guard<'a, T, RawSpinLockIrqBackend>;

/// A kernel `raw_spinlock_t` lock backend, locked with `raw_spin_lock_irqsave()`.
pub struct RawSpinLockIrqBackend;

// SAFETY: The kernel's `raw_spinlock_t` ensures mutual exclusion. The guard keeps the interrupt
// flags saved by the lock and restores them on unlock. `relock` uses the default implementation,
// which locks again the same way.
unsafe impl Backend for RawSpinLockIrqBackend {
    type State = bindings::raw_spinlock_t;
    type GuardState = c_ulong;

    #[inline]
    unsafe fn init(
        ptr: *mut Self::State,
        name: *const crate::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: The safety requirements ensure that `ptr` is valid for writes, and `name` and
        // `key` are valid for read indefinitely.
        unsafe { bindings::raw_spin_lock_init_with_key(ptr, name, key) }
    }

    #[inline]
    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: The safety requirements ensure that `ptr` points to an initialised lock.
        unsafe { bindings::raw_spin_lock_irqsave(ptr) }
    }

    #[inline]
    unsafe fn unlock(ptr: *mut Self::State, guard_state: &Self::GuardState) {
        // SAFETY: The safety requirements ensure that `ptr` is valid and that the caller owns the
        // lock; `guard_state` holds the flags its `lock` or `try_lock` saved.
        unsafe { bindings::raw_spin_unlock_irqrestore(ptr, *guard_state) }
    }

    #[inline]
    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        let mut flags: c_ulong = 0;
        // SAFETY: `ptr` points to an initialised lock; `flags` is valid for writing.
        let taken = unsafe { bindings::raw_spin_trylock_irqsave(ptr, &mut flags) };
        taken.then_some(flags)
    }

    #[inline]
    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: The safety requirements ensure that `ptr` points to an initialised lock.
        unsafe { bindings::raw_spin_assert_is_held(ptr) }
    }
}
