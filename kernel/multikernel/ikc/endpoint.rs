// SPDX-License-Identifier: GPL-2.0

//! "The channel to X" across restarts: what the message device and sysfs hold, and the
//! device's file operations.

use super::*;

/// The header of a message as the device reads and writes it (`struct mk_ikc_msg` in
/// `include/uapi/linux/multikernel.h`): port, flags (0), payload length.
pub(crate) const DEVICE_HEADER: usize = 8;

/// "The channel to X" across restarts: what the message device and sysfs hold.
#[pin_data]
pub(crate) struct Endpoint {
    /// The device's name, for messages.
    pub(super) name: CString,
    #[pin]
    pub(super) current: SpinLock<Option<Arc<Channel>>>,
    /// Where the device's users wait, whichever channel is current.
    pub(super) waiters: Arc<Waiters>,
    /// The kernel services of its channels.
    pub(super) services: Arc<Services>,
    /// Payload size of the pings `instances/NAME/ping` sends.
    pub(crate) ping_size: AtomicUsize,
}

impl Endpoint {
    /// The host's end of the channels to an instance, behind `/dev/DEVICE`.
    pub(crate) fn host(device: fmt::Arguments<'_>) -> Result<Arc<Self>> {
        Self::new(device, &HOST_BUILTIN)
    }

    /// An instance's end of the channel to the host, behind `/dev/DEVICE`.
    pub(crate) fn instance(device: fmt::Arguments<'_>) -> Result<Arc<Self>> {
        Self::new(device, &INSTANCE_BUILTIN)
    }

    pub(super) fn new(device: fmt::Arguments<'_>, builtin: &[(u16, Handler)]) -> Result<Arc<Self>> {
        let name = CString::try_from_fmt(device)?;
        let waiters = Waiters::new()?;
        let services = Services::new(builtin)?;
        Arc::pin_init(
            pin_init!(Self {
                name,
                current <- new_spinlock!(None, "multikernel::Endpoint::current"),
                waiters,
                services,
                ping_size: AtomicUsize::new(64),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn channel(&self) -> Option<Arc<Channel>> {
        self.current.lock().clone()
    }

    /// Replaces the channel; returns the old one (to close, outside the lock).
    pub(crate) fn set(&self, channel: Option<Arc<Channel>>) -> Option<Arc<Channel>> {
        core::mem::replace(&mut *self.current.lock(), channel)
    }

    /// Registers `handler` as the service on kernel port `port` (1-63) of this endpoint's
    /// channels, the current one and those of later runs, until the registration is dropped.
    /// `EINVAL` for a port outside 1-63, `EBUSY` if it has a service, `ENOSPC` when
    /// [`MAX_SERVICES`] are registered.
    pub(crate) fn register(
        self: &Arc<Self>,
        port: u16,
        handler: Handler,
    ) -> Result<PortRegistration> {
        if port == 0 || port >= port::FIRST_USER {
            return Err(EINVAL);
        }
        let mut table = self.services.table.lock();
        if table.iter().any(|(p, _)| *p == port) {
            return Err(EBUSY);
        }
        table
            .push_within_capacity((port, handler))
            .map_err(|_| ENOSPC)?;
        Ok(PortRegistration {
            endpoint: self.clone(),
            port,
        })
    }

    /// Refuses a read or write: one rate-limited message, and the errno.
    pub(super) fn refuse(&self, err: Error, why: fmt::Arguments<'_>) -> Error {
        crate::base::report::warn(format_args!(
            "/dev/{}: {why}",
            self.name.to_str().unwrap_or("?")
        ));
        err
    }

    /// Closes and forgets the channel, if any.
    pub(crate) fn close(&self) {
        if let Some(old) = self.set(None) {
            old.close();
        }
    }
}

pub(super) fn user_port_allowed(port: u16) -> bool {
    port == port::ECHO || port == port::DISCARD || port >= port::FIRST_USER
}

impl DeviceOps for Endpoint {
    /// Every open file talks to the same channel.
    type File = Endpoint;

    fn open(this: &Arc<Self>) -> Result<Arc<Endpoint>> {
        Ok(this.clone())
    }
}

impl FileOps for Endpoint {
    fn read(&self, out: &mut UserSliceWriter, nonblock: bool) -> Result<usize> {
        let ch = self.channel().ok_or(ENOTCONN)?;
        let size = out.len();
        let small = |e: Error| match e {
            EMSGSIZE => self.refuse(
                e,
                format_args!("read of {size} bytes: the next message is longer"),
            ),
            e => e,
        };
        let max = size
            .checked_sub(DEVICE_HEADER)
            .ok_or(EMSGSIZE)
            .map_err(small)?;
        let msg = ch.recv_user(max, nonblock).map_err(small)?;
        let mut header = [0u8; DEVICE_HEADER];
        header[0..2].copy_from_slice(&msg.port.to_le_bytes());
        header[4..8].copy_from_slice(&(msg.data.len() as u32).to_le_bytes());
        if let Err(e) = out
            .write_slice(&header)
            .and_then(|()| out.write_slice(&msg.data))
        {
            // Not lost: the next read gets it.
            ch.unrecv(msg);
            return Err(e);
        }
        Ok(DEVICE_HEADER + msg.data.len())
    }

    fn write(&self, mut input: UserSliceReader, len: usize, nonblock: bool) -> Result<usize> {
        let Some(payload_len) = len.checked_sub(DEVICE_HEADER) else {
            return Err(self.refuse(
                EINVAL,
                format_args!("write of {len} bytes: no message header"),
            ));
        };
        if payload_len > ring::MAX_PAYLOAD {
            return Err(self.refuse(
                EMSGSIZE,
                format_args!("write of a {payload_len}-byte payload: at most 4096"),
            ));
        }
        let mut header = [0u8; DEVICE_HEADER];
        input.read_slice(&mut header)?;
        let port = u16::from_le_bytes([header[0], header[1]]);
        let flags = u16::from_le_bytes([header[2], header[3]]);
        let declared = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if flags != 0 || declared as usize != payload_len {
            return Err(self.refuse(
                EINVAL,
                format_args!(
                    "header says flags {flags}, length {declared}; {payload_len} bytes follow"
                ),
            ));
        }
        if !user_port_allowed(port) {
            return Err(self.refuse(EINVAL, format_args!("port {port} belongs to the kernel")));
        }
        let mut payload = KVec::new();
        input.read_all(&mut payload, GFP_KERNEL)?;
        let ch = self.channel().ok_or(ENOTCONN)?;
        ch.send(port, &payload, !nonblock)?;
        Ok(len)
    }

    fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        match self.channel() {
            Some(ch) => ch.poll(file, table),
            None => poll::HUP,
        }
    }
}
