// SPDX-License-Identifier: GPL-2.0

//! The instance side: when this kernel was started by a host (`multikernel.instance=` on its
//! command line), it opens its end of the channel the host set up, offers it to user space as
//! `/dev/mk-host`, sends its console output through it, answers pings, registers its echo
//! (port 7) and discard (port 9) services, and beats (`ikc.rs`).

use crate::ikc::{
    self,
    Channel,
    Endpoint,
    PortRegistration, //
};
use crate::sys::{
    device::MessageDevice,
    doorbell as machine,
    shared as machine_info, //
};
use kernel::{
    prelude::*,
    str::CString,
    sync::{
        Arc,
        SetOnce, //
    },
};

/// The channel the console writes to (the console is registered once and lives forever).
static CONSOLE_CHANNEL: SetOnce<Arc<Channel>> = SetOnce::new();

fn console_write(text: &[u8]) {
    if let Some(channel) = CONSOLE_CHANNEL.as_ref() {
        channel.send_console(text);
    }
}

/// This kernel's link to its host.
pub(crate) struct Guest {
    _device: Pin<KBox<MessageDevice<Endpoint>>>,
    _services: [PortRegistration; 3],
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
            ];
            let channel = Channel::instance(&info, &endpoint)?;
            endpoint.set(Some(channel.clone()));
            let rest = || -> Result<Pin<KBox<MessageDevice<Endpoint>>>> {
                let name = CString::try_from_fmt(fmt!("mk-host"))?;
                let device = MessageDevice::register(name, 0o600, endpoint.clone())?;
                if CONSOLE_CHANNEL.populate(channel.clone()) {
                    machine::register_console(console_write)?;
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
