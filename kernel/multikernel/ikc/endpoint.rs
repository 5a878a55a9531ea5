// SPDX-License-Identifier: GPL-2.0

//! "The channel to X" across restarts: what the message device and sysfs hold, and the
//! device's file operations.

use super::*;
use crate::sys::mapping::PfnMapping;
use kernel::mm::virt::VmaNew;

/// The header of a message as the device reads and writes it (`struct mk_ikc_msg` in
/// `include/uapi/linux/multikernel.h`): port, flags (0), payload length.
pub(crate) const DEVICE_HEADER: usize = 8;

/// `struct mk_ikc_batch`, the argument of the batch ioctls: buffer address, length, count,
/// flags, reserved.
const BATCH_BYTES: usize = 24;
/// Where `len` and `count` are in it.
const BATCH_LEN: usize = 8;
const BATCH_COUNT: usize = 12;
/// Records of a batch start at multiples of this (`MK_IKC_BATCH_ALIGN`).
const BATCH_ALIGN: usize = 8;
/// `MK_IKC_SEND`, `MK_IKC_RECV`: `_IOWR(0xB9, 1 or 2, struct mk_ikc_batch)`.
const IOCTL_SEND: u32 = kernel::ioctl::_IOWR::<[u8; BATCH_BYTES]>(0xB9, 0x01);
const IOCTL_RECV: u32 = kernel::ioctl::_IOWR::<[u8; BATCH_BYTES]>(0xB9, 0x02);

/// The header `read` and `MK_IKC_RECV` give user space before a message's payload.
fn device_header(msg: &Message) -> [u8; DEVICE_HEADER] {
    let mut header = [0u8; DEVICE_HEADER];
    header[0..2].copy_from_slice(&msg.port.to_le_bytes());
    header[4..8].copy_from_slice(&(msg.data.len() as u32).to_le_bytes());
    header
}

/// The bytes a record with a `len`-byte payload takes in a batch, padding included.
fn record_size(len: usize) -> usize {
    (DEVICE_HEADER + len).next_multiple_of(BATCH_ALIGN)
}

/// A batch ioctl's argument as user space gave it.
struct Batch {
    at: usize,
    buf: usize,
    len: usize,
}

impl Batch {
    /// Reads the `struct mk_ikc_batch` at user address `at`: `EINVAL` for flags or reserved
    /// bits set.
    fn read(endpoint: &Endpoint, at: usize) -> Result<Self> {
        let mut raw = [0u8; BATCH_BYTES];
        UserSlice::new(UserPtr::from_addr(at), BATCH_BYTES)
            .reader()
            .read_slice(&mut raw)?;
        let word =
            |off: usize| u32::from_ne_bytes([raw[off], raw[off + 1], raw[off + 2], raw[off + 3]]);
        let mut buf = [0u8; 8];
        buf.copy_from_slice(&raw[0..8]);
        let (flags, reserved) = (word(16), word(20));
        if flags != 0 || reserved != 0 {
            return Err(endpoint.refuse(
                EINVAL,
                format_args!("batch with flags {flags:#x}, reserved {reserved:#x}"),
            ));
        }
        let buf = usize::try_from(u64::from_ne_bytes(buf)).map_err(|_| EFAULT)?;
        let batch = Self {
            at,
            buf,
            len: word(BATCH_LEN) as usize,
        };
        // What the call writes back must be writable before anything is sent or taken: a
        // fault afterwards would lose messages or invite a resend.
        batch.set(BATCH_COUNT, 0)?;
        batch.set(BATCH_LEN, batch.len as u32)?;
        Ok(batch)
    }

    /// Writes a `u32` field of the argument back.
    fn set(&self, off: usize, value: u32) -> Result {
        UserSlice::new(
            UserPtr::from_addr(self.at.checked_add(off).ok_or(EFAULT)?),
            4,
        )
        .writer()
        .write_slice(&value.to_ne_bytes())
    }
}

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
    /// What the device's files map: the current channel's stream area (`area.rs`), until
    /// that channel leaves the open state (it holds this too).
    pub(super) mapping: Arc<PfnMapping>,
    /// A process of this kernel waits for stream data, for stream room.
    pub(super) stream_waiting: [AtomicBool; 2],
    /// Counts the stream waits' looks, for the high half of the words they write.
    pub(super) stream_arms: AtomicU32,
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
        let mapping = Arc::pin_init(PfnMapping::new(), GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                name,
                current <- new_spinlock!(None, "multikernel::Endpoint::current"),
                waiters,
                services,
                ping_size: AtomicUsize::new(64),
                mapping,
                stream_waiting: [AtomicBool::new(false), AtomicBool::new(false)],
                stream_arms: AtomicU32::new(0),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn channel(&self) -> Option<Arc<Channel>> {
        self.current.lock().clone()
    }

    /// Replaces the channel; returns the old one (to close, outside the lock). Processes that
    /// mapped the old channel's stream area lose it before this returns (if its leaving the
    /// open state did not take it already): its memory may go to another run.
    pub(crate) fn set(&self, channel: Option<Arc<Channel>>) -> Option<Arc<Channel>> {
        let new = channel.clone();
        let old = core::mem::replace(&mut *self.current.lock(), channel);
        self.mapping.set(new.as_ref().map(|ch| ch.stream_area()));
        if let Some(ch) = new {
            // A channel that already left the open state (its own revocation may have come
            // before the area was set) gives no area.
            ch.revoke_area();
        }
        old
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

impl Endpoint {
    /// Reads and checks a message header from `input`: flags 0, a port user space may send
    /// to, a payload of at most 4 KiB and, given `follows`, of that length. Returns the port
    /// and payload length.
    fn read_header(
        &self,
        input: &mut UserSliceReader,
        follows: Option<usize>,
    ) -> Result<(u16, usize)> {
        if let Some(len) = follows {
            if len > ring::MAX_PAYLOAD {
                return Err(self.refuse(
                    EMSGSIZE,
                    format_args!("write of a {len}-byte payload: at most 4096"),
                ));
            }
        }
        let mut header = [0u8; DEVICE_HEADER];
        input.read_slice(&mut header)?;
        let port = u16::from_le_bytes([header[0], header[1]]);
        let flags = u16::from_le_bytes([header[2], header[3]]);
        let declared = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if flags != 0 || follows.is_some_and(|len| len != declared) {
            return Err(self.refuse(
                EINVAL,
                format_args!(
                    "header says flags {flags}, length {declared}; {} bytes follow",
                    follows.unwrap_or(declared)
                ),
            ));
        }
        if declared > ring::MAX_PAYLOAD {
            return Err(self.refuse(
                EMSGSIZE,
                format_args!("a {declared}-byte payload: at most 4096"),
            ));
        }
        if !user_port_allowed(port) {
            return Err(self.refuse(EINVAL, format_args!("port {port} belongs to the kernel")));
        }
        Ok((port, declared))
    }

    /// `MK_IKC_SEND`: sends the batch's records in order (see the uapi header); at most two
    /// doorbells for the batch (after the first message and at the end), and one before each
    /// wait for room.
    fn send_batch(&self, batch: &Batch, nonblock: bool) -> Result<isize> {
        let ch = self.channel().ok_or(ENOTCONN)?;
        let mut input = UserSlice::new(UserPtr::from_addr(batch.buf), batch.len).reader();
        let mut payload = KVec::from_elem(0u8, ring::MAX_PAYLOAD, GFP_KERNEL)?;
        let mut owed = false;
        let mut count = 0u32;
        let mut failed = None;
        while !input.is_empty() {
            // A long batch that never waits for room still stops for a signal.
            if count > 0 && kernel::current!().signal_pending() {
                break;
            }
            let sent = self
                .read_record(&mut input, &mut payload)
                .and_then(|(port, len)| ch.send_owing(port, &payload[..len], !nonblock, &mut owed));
            match sent {
                Ok(()) => {
                    // The first message rings a waiting peer at once, so that it works
                    // while the rest are written; later ones that find it waiting again
                    // (it was faster) ring once at the end.
                    if count == 0 && core::mem::take(&mut owed) {
                        ch.ring_doorbell();
                    }
                    count += 1;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if owed {
            ch.ring_doorbell();
        }
        match failed {
            Some(e) if count == 0 => Err(e),
            _ => {
                batch.set(BATCH_COUNT, count)?;
                Ok(0)
            }
        }
    }

    /// Reads the next record of a batch into `payload`: its port and payload length. The
    /// last record's padding may be left out.
    fn read_record(&self, input: &mut UserSliceReader, payload: &mut [u8]) -> Result<(u16, usize)> {
        let left = input.len();
        if left < DEVICE_HEADER {
            return Err(self.refuse(
                EINVAL,
                format_args!("batch ends inside a message header ({left} bytes left)"),
            ));
        }
        let (port, len) = self.read_header(input, None)?;
        if len > input.len() {
            return Err(self.refuse(
                EINVAL,
                format_args!("batch ends inside a {len}-byte payload"),
            ));
        }
        input.read_slice(&mut payload[..len])?;
        let pad = (record_size(len) - DEVICE_HEADER - len).min(input.len());
        input.skip(pad)?;
        Ok((port, len))
    }

    /// `MK_IKC_RECV`: waits for a message unless `nonblock`, then writes as many whole
    /// messages as fit (see the uapi header).
    fn recv_batch(&self, batch: &Batch, nonblock: bool) -> Result<isize> {
        let ch = self.channel().ok_or(ENOTCONN)?;
        let mut out = UserSlice::new(UserPtr::from_addr(batch.buf), batch.len).writer();
        let mut used = 0usize;
        let mut count = 0u32;
        loop {
            let Some(max) = batch.len.checked_sub(used + DEVICE_HEADER) else {
                if count == 0 {
                    return Err(self.refuse(
                        EMSGSIZE,
                        format_args!("batch of {} bytes: no room for a message", batch.len),
                    ));
                }
                break;
            };
            let msg = match ch.recv_user(max, nonblock || count > 0) {
                Ok(msg) => msg,
                Err(e) if count == 0 => {
                    return Err(match e {
                        EMSGSIZE => self.refuse(
                            e,
                            format_args!(
                                "batch of {} bytes: the next message is longer",
                                batch.len
                            ),
                        ),
                        e => e,
                    })
                }
                Err(_) => break,
            };
            let size = record_size(msg.data.len());
            let pad = size.min(batch.len - used) - DEVICE_HEADER - msg.data.len();
            let header = device_header(&msg);
            let copied = out
                .write_slice(&header)
                .and_then(|()| out.write_slice(&msg.data))
                .and_then(|()| out.write_slice(&[0u8; BATCH_ALIGN][..pad]));
            if let Err(e) = copied {
                // Not lost: the next read gets it.
                ch.unrecv(msg);
                if count == 0 {
                    return Err(e);
                }
                break;
            }
            used += size.min(batch.len - used);
            count += 1;
            ch.recycle(msg.data);
        }
        batch.set(BATCH_LEN, used as u32)?;
        batch.set(BATCH_COUNT, count)?;
        Ok(0)
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
        let header = device_header(&msg);
        if let Err(e) = out
            .write_slice(&header)
            .and_then(|()| out.write_slice(&msg.data))
        {
            // Not lost: the next read gets it.
            ch.unrecv(msg);
            return Err(e);
        }
        let len = msg.data.len();
        ch.recycle(msg.data);
        Ok(DEVICE_HEADER + len)
    }

    fn write(&self, mut input: UserSliceReader, len: usize, nonblock: bool) -> Result<usize> {
        let Some(payload_len) = len.checked_sub(DEVICE_HEADER) else {
            return Err(self.refuse(
                EINVAL,
                format_args!("write of {len} bytes: no message header"),
            ));
        };
        let port = self.read_header(&mut input, Some(payload_len))?.0;
        let mut payload = KVec::new();
        input.read_all(&mut payload, GFP_KERNEL)?;
        let ch = self.channel().ok_or(ENOTCONN)?;
        ch.send(port, &payload, !nonblock)?;
        Ok(len)
    }

    fn ioctl(&self, cmd: u32, arg: usize, nonblock: bool) -> Result<isize> {
        match cmd {
            IOCTL_SEND => self.send_batch(&Batch::read(self, arg)?, nonblock),
            IOCTL_RECV => self.recv_batch(&Batch::read(self, arg)?, nonblock),
            area::IOCTL_WAIT => self.stream_wait(arg, nonblock),
            area::IOCTL_KICK => self.stream_kick(),
            _ => Err(ENOTTY),
        }
    }

    fn mmap(&self, vma: &VmaNew) -> Result {
        self.stream_mmap(vma)
    }

    fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        match self.channel() {
            Some(ch) => ch.poll(file, table),
            None => poll::HUP,
        }
    }
}
