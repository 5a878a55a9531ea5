// SPDX-License-Identifier: GPL-2.0

//! Kernel services on ports: what a handler is, the built-in ping, pong, echo, discard and
//! console services, and the per-endpoint table of registered ones.

use super::*;

/// A kernel service on a port.
#[derive(Clone, Copy)]
pub(crate) enum Handler {
    /// Runs where the message is drained, possibly in the doorbell's hard interrupt, under the
    /// channel's receive lock: must not sleep, allocate, print or take a sleeping lock; sends
    /// with [`Channel::try_send`].
    Atomic(fn(&Channel, &[u8]) -> Reply),
    /// Runs in the channel's work (process context): may sleep.
    Process(fn(&Channel, &[u8])),
}

/// What an atomic handler did with its message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Handled: the message is consumed.
    Done,
    /// Its answer does not fit in the ring now: keep the message (and everything behind it)
    /// until the peer frees room and rings.
    Later,
}

/// The services every host endpoint has; others are registered ([`Endpoint::register`]).
pub(super) static HOST_BUILTIN: [(u16, Handler); 2] = [
    (port::PING, Handler::Atomic(answer_ping_or_drop)),
    (port::PONG, Handler::Atomic(on_pong)),
];
/// The services every instance endpoint has.
pub(super) static INSTANCE_BUILTIN: [(u16, Handler); 2] = [
    (port::PING, Handler::Atomic(answer_ping)),
    (port::PONG, Handler::Atomic(on_pong)),
];

/// The host's console service: what an instance prints goes to its console log.
pub(crate) const CONSOLE_SERVICE: Handler = Handler::Process(on_console);
/// The instance's echo service.
pub(crate) const ECHO_SERVICE: Handler = Handler::Atomic(on_echo);
/// The instance's discard service.
pub(crate) const DISCARD_SERVICE: Handler = Handler::Atomic(on_discard);
/// The instance's stop service: the host asks it to shut down in order.
pub(crate) const STOP_SERVICE: Handler = Handler::Process(on_stop);
/// The instance's network fault injection (`CONFIG_MULTIKERNEL_IKC_FAULT_INJECT` only).
pub(crate) const NET_INJECT_SERVICE: Handler = Handler::Process(on_net_inject);
/// The instance's terminal: what the host types.
pub(crate) const TERMINAL_SERVICE: Handler = Handler::Atomic(super::guest::on_terminal_input);

/// Services an endpoint can hold: the built-in ones and up to this many registered.
pub(super) const MAX_SERVICES: usize = 16;

/// The kernel services of an endpoint, by port: shared by its channels (looked up under
/// their receive lock, in the doorbell interrupt too), so they last across restarts.
#[pin_data]
pub(crate) struct Services {
    #[pin]
    pub(super) table: RawSpinLockIrq<KVec<(u16, Handler)>>,
}

impl Services {
    pub(super) fn new(builtin: &[(u16, Handler)]) -> Result<Arc<Self>> {
        let mut table = KVec::with_capacity(builtin.len() + MAX_SERVICES, GFP_KERNEL)?;
        table.extend_from_slice(builtin, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                table <- new_raw_spinlock_irq!(table, "multikernel::Services::table"),
            }),
            GFP_KERNEL,
        )
    }

    pub(super) fn lookup(&self, port: u16) -> Option<Handler> {
        self.table
            .lock()
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, h)| *h)
    }
}

/// A service registered on a port of an endpoint; dropping it unregisters it, and returns
/// only after a call of it that was running finished.
pub(crate) struct PortRegistration {
    pub(super) endpoint: Arc<Endpoint>,
    pub(super) port: u16,
}

impl Drop for PortRegistration {
    fn drop(&mut self) {
        {
            let mut table = self.endpoint.services.table.lock();
            if let Some(at) = table.iter().position(|(p, _)| *p == self.port) {
                // Removing does not allocate: fine under the raw lock.
                let _ = table.remove(at);
            }
        }
        if let Some(channel) = self.endpoint.channel() {
            channel.quiesce();
        }
    }
}

/// Answers a ping, waiting for room if needed (the instance: the host always drains).
pub(super) fn answer_ping(ch: &Channel, payload: &[u8]) -> Reply {
    ch.reply(port::PONG, payload)
}

/// Answers a ping unless the ring is full, then drops the answer (the host: it never waits on
/// an instance, which might never free room; a ping of the instance times out then).
pub(super) fn answer_ping_or_drop(ch: &Channel, payload: &[u8]) -> Reply {
    if ch.reply(port::PONG, payload) == Reply::Later {
        add(&ch.counters.errors, 1);
    }
    Reply::Done
}

pub(super) fn on_pong(ch: &Channel, payload: &[u8]) -> Reply {
    let mut token = [0u8; 8];
    if payload.len() < 8 {
        add(&ch.counters.errors, 1);
        return Reply::Done;
    }
    token.copy_from_slice(&payload[..8]);
    // Sequentially consistent with `ping_sleep`'s count and look: a pinger that counted
    // itself after this load sees the token without a wakeup.
    ch.pong.store(u64::from_le_bytes(token), Ordering::SeqCst);
    // A spinning pinger sees the token; only a sleeping one needs the work.
    if ch.pong_sleepers.load(Ordering::SeqCst) != 0 {
        ch.pending.fetch_or(PENDING_PONG, Ordering::AcqRel);
    }
    Reply::Done
}

pub(super) fn on_console(ch: &Channel, payload: &[u8]) {
    if let Some(console) = &ch.console {
        console.append(payload);
    }
}

pub(super) fn on_discard(_ch: &Channel, _payload: &[u8]) -> Reply {
    Reply::Done
}

/// What `control stop` on the host sends: this kernel shuts down as for a power button (user
/// space runs its shutdown, `/sbin/poweroff`), then reports `poweroff` through its mailbox.
pub(super) fn on_stop(_ch: &Channel, _payload: &[u8]) {
    pr_notice!("the host asks this kernel to stop: powering off in order\n");
    crate::sys::shared::orderly_poweroff();
}

/// The host's fault injection asks this kernel to send it malformed frames (testing only).
pub(super) fn on_net_inject(ch: &Channel, _payload: &[u8]) {
    let sent = ch.net().ok_or(ENOTCONN).and_then(|link| link.inject());
    pr_notice!("network fault injection: malformed frames to the host ({sent:?})\n");
}

pub(super) fn on_echo(ch: &Channel, payload: &[u8]) -> Reply {
    ch.reply(port::ECHO, payload)
}
