// SPDX-License-Identifier: GPL-2.0

//! Work run beside the caller, on `system_unbound`, whose result the caller waits for
//! ([`Job`]): `create` takes an instance's CPUs offline there while it makes the instance's
//! devices and directory.

use kernel::{
    new_spinlock,
    prelude::*,
    sync::{
        Arc,
        Completion,
        SpinLock, //
    },
    workqueue,
};

/// Where a job's value waits for [`Job::join`].
#[pin_data]
struct Slot<T> {
    #[pin]
    done: Completion,
    #[pin]
    value: SpinLock<Option<T>>,
}

/// Completes its slot when dropped: after the closure stored its value, or, if the closure
/// were dropped without running, with none (the waiter never hangs).
struct Finish<T: Send + Unpin + 'static>(Arc<Slot<T>>);

impl<T: Send + Unpin + 'static> Drop for Finish<T> {
    fn drop(&mut self) {
        self.0.done.complete_all();
    }
}

/// A closure running on a worker. Joining it, or dropping it, waits until it is done.
#[must_use = "dropping it at once waits for the worker: nothing runs beside it"]
pub(crate) struct Job<T: Send + Unpin + 'static>(Option<Arc<Slot<T>>>);

impl<T: Send + Unpin + 'static> Job<T> {
    /// Runs `f` on a worker. `ENOMEM` (and `f` never runs) if there is no memory for it.
    pub(crate) fn start(f: impl FnOnce() -> T + Send + 'static) -> Result<Self> {
        let slot = Arc::pin_init(
            pin_init!(Slot {
                done <- Completion::new(),
                value <- new_spinlock!(None, "multikernel::worker::Slot::value"),
            }),
            GFP_KERNEL,
        )?;
        let finish = Finish(slot.clone());
        workqueue::system_unbound().try_spawn(GFP_KERNEL, move || {
            let value = f();
            *finish.0.value.lock() = Some(value);
            drop(finish);
        })?;
        Ok(Self(Some(slot)))
    }

    /// Waits until `f` is done and returns its value (`None` only if it never ran).
    pub(crate) fn join(mut self) -> Option<T> {
        let slot = self.0.take()?;
        slot.done.wait_for_completion();
        let value = slot.value.lock().take();
        value
    }
}

impl<T: Send + Unpin + 'static> Drop for Job<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.done.wait_for_completion();
        }
    }
}
