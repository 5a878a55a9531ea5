// SPDX-License-Identifier: GPL-2.0

//! The doorbell: the list of open channels, and what the interrupt does with them.

use super::*;

/// A slot of the open-channel table.
pub(super) enum Slot {
    Free,
    Open(Arc<Channel>),
    /// Its channel was taken out by `close`, which waits for the drains that picked it: the
    /// doorbell and `open` leave it alone until `close` frees it.
    Closing,
}

/// The open channels, for the doorbell: one slot per CPU and one more (an instance owns at
/// least one CPU), allocated at init, so nothing is allocated under the lock, a raw lock taken
/// in the doorbell's hard interrupt only long enough to pick the next channel. `busy[i]` counts
/// doorbells draining the channel they took from slot `i`; `close` marks the slot `Closing`,
/// waits for `busy[i]` to reach zero (no drain can start on that slot meanwhile), and only then
/// lets go of its reference: the interrupt never drops the last one, never holds the table while
/// it drains, and `close` waits for at most the drains already running.
#[pin_data]
pub(super) struct ChannelList {
    #[pin]
    pub(super) slots: RawSpinLockIrq<KVec<Slot>>,
    pub(super) busy: KVec<AtomicU32>,
}

pub(super) static CHANNELS: SetOnce<Pin<KBox<ChannelList>>> = SetOnce::new();

pub(super) fn channels() -> Result<&'static ChannelList> {
    CHANNELS.as_ref().map(|c| &**c).ok_or(ENODEV)
}

/// Sets up the channel table and takes the doorbell vector.
///
/// # Safety
///
/// As for [`machine::take_doorbell`]: called from built-in init code, before read-only-after-init
/// data is sealed.
pub(crate) unsafe fn init() -> Result {
    let room = kernel::cpu::nr_cpu_ids() as usize + 1;
    let mut slots = KVec::with_capacity(room, GFP_KERNEL)?;
    let mut busy = KVec::with_capacity(room, GFP_KERNEL)?;
    for _ in 0..room {
        slots.push(Slot::Free, GFP_KERNEL)?;
        busy.push(AtomicU32::new(0), GFP_KERNEL)?;
    }
    let channels = KBox::pin_init(
        pin_init!(ChannelList {
            slots <- new_raw_spinlock_irq!(slots, "multikernel::CHANNELS"),
            busy,
        }),
        GFP_KERNEL,
    )?;
    if !CHANNELS.populate(channels) {
        return Err(EBUSY);
    }
    // SAFETY: Called from built-in init code before read-only-after-init data is sealed
    // (# Safety).
    unsafe { machine::take_doorbell(doorbell_irq) }
}

/// A doorbell rang on this CPU (hard interrupt context). It does not say which channel: look
/// at all of them (there are as many as running instances). Atomic handlers run here; the
/// rest, and every wakeup, is left to each channel's work.
pub(super) fn doorbell_irq() {
    let Ok(channels) = channels() else {
        return;
    };
    let mut next = 0;
    loop {
        // The next open channel, marked busy before the lock goes.
        let (at, ch) = {
            let slots = channels.slots.lock();
            let found = slots
                .iter()
                .enumerate()
                .skip(next)
                .find_map(|(i, s)| match s {
                    Slot::Open(ch) => Some((i, ch.clone())),
                    _ => None,
                });
            let Some((at, ch)) = found else {
                return;
            };
            channels.busy[at].fetch_add(1, Ordering::Acquire);
            (at, ch)
        };
        // The reference goes to the work, or comes back (already queued) and is dropped
        // here: never the last one, as `close` keeps the slot's until `busy` is back to zero.
        ch.kick_net();
        if ch.on_doorbell() {
            let _ = workqueue::system_highpri().enqueue::<Arc<Channel>, 0>(ch);
        } else {
            drop(ch);
        }
        channels.busy[at].fetch_sub(1, Ordering::Release);
        next = at + 1;
    }
}
