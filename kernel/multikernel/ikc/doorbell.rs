// SPDX-License-Identifier: GPL-2.0

//! The doorbell: the list of open channels, and what the interrupt does with them.

use super::*;

/// The open channels, for the doorbell: one slot per CPU and one more (an instance owns at
/// least one CPU), allocated at init, so nothing is allocated under the lock, a raw lock taken
/// in the doorbell's hard interrupt only long enough to pick the next channel. A channel keeps
/// its slot while it is open; `busy[i]` counts doorbells draining the channel they took from
/// slot `i`, which `close` waits out before it lets go of its reference: the interrupt never
/// drops the last one, and never holds the list while it drains.
#[pin_data]
pub(super) struct ChannelList {
    #[pin]
    pub(super) slots: RawSpinLockIrq<KVec<Option<Arc<Channel>>>>,
    pub(super) busy: KVec<AtomicU32>,
}

pub(super) static CHANNELS: SetOnce<Pin<KBox<ChannelList>>> = SetOnce::new();

pub(super) fn channels() -> Result<&'static ChannelList> {
    CHANNELS.as_ref().map(|c| &**c).ok_or(ENODEV)
}

/// Takes the doorbell vector; call once at module init.
pub(crate) fn init() -> Result {
    let room = kernel::cpu::nr_cpu_ids() as usize + 1;
    let mut slots = KVec::with_capacity(room, GFP_KERNEL)?;
    let mut busy = KVec::with_capacity(room, GFP_KERNEL)?;
    for _ in 0..room {
        slots.push(None, GFP_KERNEL)?;
        busy.push(AtomicU32::new(0), GFP_KERNEL)?;
    }
    let channels = KBox::pin_init(
        pin_init!(ChannelList {
            slots <- Lock::new(slots, c"multikernel::CHANNELS", kernel::static_lock_class!()),
            busy,
        }),
        GFP_KERNEL,
    )?;
    if !CHANNELS.populate(channels) {
        return Err(EBUSY);
    }
    // SAFETY: Called from the module's init; the subsystem is built in (`bool` in Kconfig),
    // so that runs among the initcalls, before read-only-after-init data is sealed.
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
                .find_map(|(i, s)| s.as_ref().map(|ch| (i, ch.clone())));
            let Some((at, ch)) = found else {
                return;
            };
            channels.busy[at].fetch_add(1, Ordering::Acquire);
            (at, ch)
        };
        if ch.on_doorbell() {
            // Already queued: the reference comes back and is dropped here.
            let _ = workqueue::system_highpri().enqueue::<Arc<Channel>, 0>(ch.clone());
        }
        // Not the last reference: `close` keeps the slot's until `busy` is back to zero.
        drop(ch);
        channels.busy[at].fetch_sub(1, Ordering::Release);
        next = at + 1;
    }
}
