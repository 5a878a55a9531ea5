// SPDX-License-Identifier: GPL-2.0

//! Reporting refusals: one rate-limited kernel message per refused operation, and the
//! permission check that refuses. A leaf: every layer reports through it, it imports none.

use core::fmt;
use kernel::{
    capability::{
        capable,
        Capability, //
    },
    prelude::*,
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
};

/// The rate limit of error messages: at most [`LogState::BURST`] per [`LogState::WINDOW_MS`],
/// then one line counting those dropped.
pub(crate) struct LogState {
    window_start: Option<Instant<Monotonic>>,
    printed: u32,
    dropped: u32,
}

impl LogState {
    const BURST: u32 = 10;
    const WINDOW_MS: i64 = 5000;

    const fn new() -> Self {
        Self {
            window_start: None,
            printed: 0,
            dropped: 0,
        }
    }

    /// Decides whether a message at `now` is printed; also returns how many were dropped in
    /// the window that just ended (to be reported first).
    fn admit(&mut self, now: Instant<Monotonic>) -> (bool, u32) {
        let expired = self
            .window_start
            .is_none_or(|start| now - start > Delta::from_millis(Self::WINDOW_MS));
        let mut dropped = 0;
        if expired {
            dropped = self.dropped;
            *self = Self {
                window_start: Some(now),
                printed: 0,
                dropped: 0,
            };
        }
        if self.printed < Self::BURST {
            self.printed += 1;
            (true, dropped)
        } else {
            self.dropped += 1;
            (false, dropped)
        }
    }
}

kernel::sync::global_lock! {
    // SAFETY: `init()` is called by [`init`], at module init, before any use.
    unsafe(uninit) static LOG: SpinLock<LogState> = LogState::new();
}

/// Sets up the rate limit, before anything reports.
///
/// # Safety
///
/// Called once, before any other function of this module (from module init).
pub(crate) unsafe fn init() {
    // SAFETY: Called once, before anything can reach the lock (# Safety).
    unsafe { LOG.init() };
}

/// Prints a warning, rate-limited: one per refused operation, naming the problem.
pub(crate) fn warn(args: fmt::Arguments<'_>) {
    let (print, dropped) = LOG.lock().admit(Instant::<Monotonic>::now());
    if dropped > 0 {
        pr_warn!("{dropped} messages suppressed\n");
    }
    if print {
        pr_warn!("{args}\n");
    }
}

/// Checks the writer may control instances; says so once (rate-limited) if not.
pub(crate) fn admin(what: &str) -> Result {
    if capable(Capability::SysAdmin) {
        Ok(())
    } else {
        warn(format_args!("{what}: needs CAP_SYS_ADMIN"));
        Err(EPERM)
    }
}

#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
#[kunit_tests(multikernel_report)]
mod tests {
    use super::*;

    /// The rate limit lets a burst through, then drops, and reports the drops once the window
    /// ends.
    #[test]
    fn log_rate_limit() {
        let mut state = LogState::new();
        let start = Instant::<Monotonic>::now();
        for _ in 0..LogState::BURST {
            assert_eq!(state.admit(start), (true, 0));
        }
        for _ in 0..5 {
            assert_eq!(state.admit(start), (false, 0));
        }
        assert_eq!(state.printed, LogState::BURST);
        assert_eq!(state.dropped, 5);
        // Pretend the window ended: a message goes through and the drops are reported.
        state.window_start = None;
        assert_eq!(state.admit(start), (true, 5));
        assert_eq!(state.dropped, 0);
    }
}
