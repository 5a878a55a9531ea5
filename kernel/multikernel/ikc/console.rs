// SPDX-License-Identifier: GPL-2.0

//! The instance's console output as the host keeps it: a log that survives restarts, and its
//! live device `/dev/mk-NAME.console`, which also types into the instance's terminal.

use super::*;

/// The instance's recent console output, kept on the host across restarts; also a device,
/// `/dev/mk-NAME.console`, whose readers follow it live.
#[pin_data]
pub(crate) struct ConsoleLog {
    #[pin]
    pub(super) buf: SpinLock<ConsoleBuf>,
    /// Readers waiting for more (boxed: freed with `kfree_rcu`, see [`super::Waiters`]).
    pub(super) grown: PollCondVarBox,
    /// The instance is gone: readers that caught up get end of file.
    pub(super) closed: AtomicBool,
}

pub(super) struct ConsoleBuf {
    pub(super) data: KVec<u8>,
    /// Bytes ever appended; the buffer holds the last `CONSOLE_BYTES` of them.
    pub(super) total: u64,
}

/// Bytes of console output the host keeps per instance; a host update carries them all.
pub(super) const CONSOLE_BYTES: usize = crate::base::handover::CONSOLE_MAX;

impl ConsoleBuf {
    /// Copies bytes from stream position `from`, or from the oldest byte kept if that is
    /// later, into `out`; returns where the copy started and how many bytes it has.
    pub(super) fn copy_from(&self, from: u64, out: &mut [u8]) -> (u64, usize) {
        let from = from.max(self.total.saturating_sub(CONSOLE_BYTES as u64));
        let n = ((self.total - from) as usize).min(out.len());
        for (i, slot) in out[..n].iter_mut().enumerate() {
            *slot = self.data[((from + i as u64) % CONSOLE_BYTES as u64) as usize];
        }
        (from, n)
    }
}

impl ConsoleLog {
    pub(crate) fn new() -> Result<Arc<Self>> {
        let data = KVec::from_elem(0u8, CONSOLE_BYTES, GFP_KERNEL)?;
        let grown = PollCondVarBox::new(c"multikernel::ConsoleLog::grown", static_lock_class!())?;
        Arc::pin_init(
            pin_init!(Self {
                buf <- new_spinlock!(ConsoleBuf { data, total: 0 }, "multikernel::ConsoleLog"),
                grown,
                closed: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )
    }

    pub(super) fn append(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock();
        for &b in bytes {
            let at = (buf.total % CONSOLE_BYTES as u64) as usize;
            buf.data[at] = b;
            buf.total += 1;
        }
        drop(buf);
        self.grown.notify_all();
    }

    /// Copies the last (at most `out.len()`) bytes into `out`; returns how many.
    pub(crate) fn recent(&self, out: &mut [u8]) -> usize {
        let buf = self.buf.lock();
        let from = buf.total.saturating_sub(out.len() as u64);
        buf.copy_from(from, out).1
    }

    /// For a host update: bytes ever appended, and the last of them (up to
    /// [`CONSOLE_BYTES`]); an empty copy if there is no memory for one.
    pub(crate) fn snapshot(&self) -> (u64, KVec<u8>) {
        let mut out = KVec::from_elem(0u8, CONSOLE_BYTES, GFP_KERNEL).unwrap_or_default();
        let buf = self.buf.lock();
        let from = buf.total.saturating_sub(out.len() as u64);
        let n = buf.copy_from(from, &mut out).1;
        let total = buf.total;
        drop(buf);
        out.truncate(n);
        (total, out)
    }

    /// After a host update: the log goes on from what the previous kernel had (`total` bytes
    /// ever, the last of which are `bytes`); for a new log only.
    pub(crate) fn restore(&self, total: u64, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(CONSOLE_BYTES)..];
        let mut buf = self.buf.lock();
        buf.total = total.saturating_sub(bytes.len() as u64);
        drop(buf);
        self.append(bytes);
    }

    /// No more output will come (the instance is destroyed): readers get end of file.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        drop(self.buf.lock());
        self.grown.notify_all();
    }
}

/// `/dev/mk-NAME.console`: reading follows the instance's console log, writing types into its
/// terminal (`/dev/hvc0` in the instance).
pub(crate) struct ConsoleDevice {
    pub(crate) log: Arc<ConsoleLog>,
    pub(crate) endpoint: Arc<Endpoint>,
}

/// An open `/dev/mk-NAME.console`: where this reader is in the stream, and where typing goes.
pub(crate) struct ConsoleReader {
    pub(super) log: Arc<ConsoleLog>,
    pub(super) pos: AtomicU64,
    endpoint: Arc<Endpoint>,
}

impl DeviceOps for ConsoleDevice {
    type File = ConsoleReader;

    /// A new reader starts with what the buffer holds (position 0, or the oldest byte kept),
    /// then follows.
    fn open(this: &Arc<Self>) -> Result<Arc<ConsoleReader>> {
        let reader = ConsoleReader {
            log: this.log.clone(),
            pos: AtomicU64::new(0),
            endpoint: this.endpoint.clone(),
        };
        Ok(Arc::new(reader, GFP_KERNEL)?)
    }
}

impl FileOps for ConsoleReader {
    /// What came since this reader's last read (if it fell more than the buffer behind, it
    /// skips to the oldest byte kept); blocks for more unless `O_NONBLOCK`; 0 at the end.
    fn read(&self, out: &mut UserSliceWriter, nonblock: bool) -> Result<usize> {
        let mut chunk = KVec::from_elem(0u8, out.len().min(4096), GFP_KERNEL)?;
        let mut buf = self.log.buf.lock();
        loop {
            let pos = self.pos.load(Ordering::Relaxed);
            if buf.total > pos {
                let (from, n) = buf.copy_from(pos, &mut chunk);
                self.pos.store(from + n as u64, Ordering::Relaxed);
                drop(buf);
                out.write_slice(&chunk[..n])?;
                return Ok(n);
            }
            if self.log.closed.load(Ordering::Acquire) || chunk.is_empty() {
                return Ok(0);
            }
            if nonblock {
                return Err(EAGAIN);
            }
            if self.log.grown.wait_interruptible(&mut buf) {
                return Err(ERESTARTSYS);
            }
        }
    }

    /// Types up to 4 KiB into the instance's terminal (one message on its terminal port);
    /// waits for room in the ring unless `O_NONBLOCK`. `ENOTCONN` while no kernel runs there.
    /// Bytes its terminal has no room for are dropped there (and counted), as a terminal
    /// drops what its reader does not take.
    fn write(&self, mut input: UserSliceReader, len: usize, nonblock: bool) -> Result<usize> {
        let len = len.min(ring::MAX_PAYLOAD);
        let mut bytes = KVec::from_elem(0u8, len, GFP_KERNEL)?;
        input.read_slice(&mut bytes)?;
        let channel = self.endpoint.channel().ok_or(ENOTCONN)?;
        channel.send(port::TERMINAL, &bytes, !nonblock)?;
        Ok(len)
    }

    fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        table.register_wait(file, &self.log.grown);
        let buf = self.log.buf.lock();
        if buf.total > self.pos.load(Ordering::Relaxed) {
            poll::IN | poll::RDNORM
        } else if self.log.closed.load(Ordering::Acquire) {
            poll::HUP
        } else {
            0
        }
    }
}
