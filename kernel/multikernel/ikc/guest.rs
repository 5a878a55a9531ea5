// SPDX-License-Identifier: GPL-2.0

//! The instance side: when this kernel was started by a host (`multikernel.instance=` on its
//! command line), it opens its end of the channel the host set up, offers it to user space as
//! `/dev/mk-host`, makes `/dev/hvc0` its terminal and console over it (output on the console
//! port, what the host types on the terminal port), answers pings, registers its echo (port 7)
//! and discard (port 9) services, and beats (`ikc.rs`).

use crate::ikc::{
    self,
    Channel,
    Endpoint,
    PortRegistration,
    Reply, //
};
use crate::sys::{
    device::MessageDevice,
    doorbell as machine,
    shared as machine_info, //
};
use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};
use kernel::{
    prelude::*,
    str::CString,
    sync::{
        new_raw_spinlock_irq,
        Arc,
        RawSpinLockIrq,
        SetOnce, //
    },
};

/// The channel the console writes to (the console is registered once and lives forever).
static CONSOLE_CHANNEL: SetOnce<Arc<Channel>> = SetOnce::new();
/// What the host typed, until the terminal reads it.
static TERMINAL_INPUT: SetOnce<Arc<TerminalInput>> = SetOnce::new();

fn console_write(text: &[u8]) -> usize {
    CONSOLE_CHANNEL
        .as_ref()
        .map_or(0, |channel| channel.send_console(text))
}

fn console_read(out: &mut [u8]) -> usize {
    TERMINAL_INPUT.as_ref().map_or(0, |input| input.take(out))
}

/// Bytes typed by the host that wait for the terminal's poller.
pub(crate) const TERMINAL_INPUT_BYTES: usize = 4096;

/// What the host typed into the instance's terminal (its `/dev/mk-NAME.console`), until the
/// terminal's poller takes it. What does not fit is dropped and counted, as a terminal whose
/// reader does not keep up drops input: the channel never waits for it (the host's stop
/// request comes on the same channel).
#[pin_data]
pub(crate) struct TerminalInput {
    #[pin]
    buf: RawSpinLockIrq<InputRing>,
    pub(crate) dropped: AtomicU64,
}

struct InputRing {
    /// [`TERMINAL_INPUT_BYTES`] long.
    data: KVec<u8>,
    /// Index of the oldest byte, and how many there are.
    head: usize,
    len: usize,
}

impl TerminalInput {
    fn new() -> Result<Arc<Self>> {
        let data = KVec::from_elem(0u8, TERMINAL_INPUT_BYTES, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                buf <- new_raw_spinlock_irq!(
                    InputRing {
                        data,
                        head: 0,
                        len: 0,
                    },
                    "multikernel::TerminalInput"
                ),
                dropped: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// Keeps what fits of `bytes` (any context); returns how many it kept.
    pub(crate) fn put(&self, bytes: &[u8]) -> usize {
        let mut ring = self.buf.lock();
        let room = TERMINAL_INPUT_BYTES - ring.len;
        let n = bytes.len().min(room);
        for &b in &bytes[..n] {
            let at = (ring.head + ring.len) % TERMINAL_INPUT_BYTES;
            ring.data[at] = b;
            ring.len += 1;
        }
        drop(ring);
        if n < bytes.len() {
            self.dropped
                .fetch_add((bytes.len() - n) as u64, Ordering::Relaxed);
        }
        n
    }

    /// Moves the oldest bytes into `out`; returns how many.
    fn take(&self, out: &mut [u8]) -> usize {
        let mut ring = self.buf.lock();
        let n = out.len().min(ring.len);
        for slot in &mut out[..n] {
            *slot = ring.data[ring.head];
            ring.head = (ring.head + 1) % TERMINAL_INPUT_BYTES;
            ring.len -= 1;
        }
        n
    }
}

/// The terminal port's service (atomic): what the host typed waits for the terminal, whose
/// poller is woken.
pub(super) fn on_terminal_input(_ch: &Channel, payload: &[u8]) -> Reply {
    if let Some(input) = TERMINAL_INPUT.as_ref() {
        input.put(payload);
        machine::kick_console();
    }
    Reply::Done
}

/// This kernel's link to its host.
pub(crate) struct Guest {
    _device: Pin<KBox<MessageDevice<Endpoint>>>,
    _services: [PortRegistration; 4],
    /// Network fault injection (`CONFIG_MULTIKERNEL_IKC_FAULT_INJECT` only).
    _inject: Option<PortRegistration>,
    _endpoint: Arc<Endpoint>,
}

impl Guest {
    /// `None` when this kernel is not an instance, or its channel cannot be opened (said in the
    /// log: the instance then runs without IKC, and its host sees no heartbeat).
    pub(crate) fn open() -> Option<Self> {
        let info = machine_info::instance_info()?;
        let open = || -> Result<Self> {
            let endpoint = Endpoint::instance(format_args!("mk-host"))?;
            // The services this kernel offers the host, before the channel opens.
            let services = [
                endpoint.register(ikc::port::ECHO, ikc::ECHO_SERVICE)?,
                endpoint.register(ikc::port::DISCARD, ikc::DISCARD_SERVICE)?,
                endpoint.register(ikc::port::STOP, ikc::STOP_SERVICE)?,
                endpoint.register(ikc::port::TERMINAL, ikc::TERMINAL_SERVICE)?,
            ];
            let inject = if cfg!(CONFIG_MULTIKERNEL_IKC_FAULT_INJECT) {
                Some(endpoint.register(ikc::port::NET_INJECT, ikc::NET_INJECT_SERVICE)?)
            } else {
                None
            };
            let channel = Channel::instance(&info, &endpoint)?;
            endpoint.set(Some(channel.clone()));
            // Its network link, mkv0, unless the host gave it none (`net=off`). Without one
            // the instance still runs (a failure is said in the log).
            let net = || -> Result {
                let device = || -> Result<Arc<ikc::net::NetDevice>> {
                    let mac = ikc::net::mac(info.id, ikc::Side::Instance);
                    Ok(Arc::new(
                        ikc::net::NetDevice::new(c"mkv0", &mac)?,
                        GFP_KERNEL,
                    )?)
                };
                match ikc::net::NetLink::instance(&info, device)? {
                    Some(link) => channel.set_net(link),
                    None => Ok(()),
                }
            };
            let net = net();
            if let Err(e) = net {
                pr_warn!("instance {}: no network link ({e:?})\n", info.id);
            }
            let rest = || -> Result<Pin<KBox<MessageDevice<Endpoint>>>> {
                let name = CString::try_from_fmt(fmt!("mk-host"))?;
                let device = MessageDevice::register(name, 0o600, endpoint.clone())?;
                if CONSOLE_CHANNEL.populate(channel.clone())
                    && TERMINAL_INPUT.populate(TerminalInput::new()?)
                {
                    machine::register_console(console_write, console_read)?;
                }
                Ok(device)
            };
            // All or nothing: without the device or the console the channel (and its
            // heartbeat) does not stay open.
            let device = rest().inspect_err(|_| {
                endpoint.set(None);
                channel.close();
            })?;
            Ok(Self {
                _device: device,
                _services: services,
                _inject: inject,
                _endpoint: endpoint,
            })
        };
        match open() {
            Ok(guest) => {
                pr_info!(
                    "instance {}: IKC channel to the host open (/dev/mk-host)\n",
                    info.id
                );
                Some(guest)
            }
            Err(e) => {
                pr_err!("instance {}: no IKC channel to the host ({e:?})\n", info.id);
                None
            }
        }
    }
}
