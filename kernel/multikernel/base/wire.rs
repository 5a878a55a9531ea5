// SPDX-License-Identifier: GPL-2.0

//! The layout of the inter-kernel channel in an instance's memory, as both kernels see it:
//! a header page (magic, version, instance id, heartbeat, the host CPU to ring), two rings
//! (`ring.rs`), one per direction, and the stream area processes map (`stream.rs`). Pure data at the bottom of the subsystem: the loader sizes
//! the channel from it, IKC reads and writes it.

/// The channel header page.
pub(crate) const HEADER_BYTES: usize = 4096;
/// One ring: its 64-byte header (in a page of its own) and 1 MiB of data (a stream of
/// messages waits for room, and the peer's doorbell, once per half ring).
pub(crate) const RING_BYTES: usize = 4096 + (1 << 20);
/// Where the stream area (`stream.rs`) starts: after the rings, page aligned.
pub(crate) const STREAM_OFFSET: usize = HEADER_BYTES + 2 * RING_BYTES;
/// The message channel: its header, two rings and the stream area.
pub(crate) const IKC_BYTES: usize = STREAM_OFFSET + crate::base::stream::BYTES;
/// The network link's area, after the message channel: a header page and two frame rings.
pub(crate) const NET_OFFSET: usize = IKC_BYTES;
/// One frame ring: its header (in a page of its own) and 1 MiB of data.
pub(crate) const NET_RING_BYTES: usize = 4096 + (1 << 20);
/// The network link's area.
pub(crate) const NET_BYTES: usize = HEADER_BYTES + 2 * NET_RING_BYTES;
/// Where the frame ring the host sends on starts, in the network area.
pub(crate) const NET_TO_INSTANCE: usize = HEADER_BYTES;
/// Where the frame ring the instance sends on starts, in the network area.
pub(crate) const NET_TO_HOST: usize = HEADER_BYTES + NET_RING_BYTES;
/// The largest frame (Ethernet header and a 64 KiB MTU, with room to spare).
pub(crate) const NET_FRAME_MAX: usize = 65536 + 64;
/// The whole channel, as the loader reserves it: messages and network.
pub(crate) const CHANNEL_BYTES: usize = IKC_BYTES + NET_BYTES;
/// Where the ring the host sends on starts.
pub(crate) const TO_INSTANCE: usize = HEADER_BYTES;
/// Where the ring the instance sends on starts.
pub(crate) const TO_HOST: usize = HEADER_BYTES + RING_BYTES;

/// Header words (64-bit, little endian): the magic number.
pub(crate) const OFF_MAGIC: usize = 0;
/// The layout's version ([`VERSION`]).
pub(crate) const OFF_VERSION: usize = 8;
/// The instance's id.
pub(crate) const OFF_ID: usize = 16;
/// The instance's heartbeat counter.
pub(crate) const OFF_HEARTBEAT: usize = 24;
/// The host CPU (APIC id + 1; 0: none) the instance rings: the one the host last sent from,
/// whose thread may be spinning for an answer.
pub(crate) const OFF_HOST_DOORBELL: usize = 32;
/// "MKIKCCHN".
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"MKIKCCHN");
/// The layout version both kernels must agree on. A change also raises the handover version
/// (`crate::base::handover::VERSION`, `MULTIKERNEL_HANDOVER_VERSION`, the `MKHO` record).
pub(crate) const VERSION: u64 = 5;
