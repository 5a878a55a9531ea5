/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Multikernel inter-kernel channel (IKC): the message devices.
 *
 * On the host, /dev/mk-NAME talks to instance NAME's kernel; in an instance,
 * /dev/mk-host talks to the host. Each read(2) returns one message and each
 * write(2) sends one: a struct mk_ikc_msg header followed by len payload
 * bytes. The MK_IKC_SEND and MK_IKC_RECV ioctls move a batch of messages per
 * call (as sendmmsg(2) and recvmmsg(2) do for sockets). A process may also map
 * the channel's stream area (mmap(2) of MK_IKC_STREAM_BYTES at offset 0) and
 * move bytes through it without a system call per message (below). See
 * Documentation/multikernel/ikc.rst.
 */
#ifndef _UAPI_LINUX_MULTIKERNEL_H
#define _UAPI_LINUX_MULTIKERNEL_H

#include <linux/ioctl.h>
#include <linux/types.h>

struct mk_ikc_msg {
	__u16 port;	/* echo, discard or >= MK_IKC_PORT_FIRST_USER */
	__u16 flags;	/* 0 */
	__u32 len;	/* payload bytes that follow, <= MK_IKC_MAX_PAYLOAD */
	__u8 data[];
};

/* Largest payload of one message. */
#define MK_IKC_MAX_PAYLOAD	4096
/* The instance kernel's echo service: every message comes back on this port. */
#define MK_IKC_PORT_ECHO	7
/* The instance kernel's discard service: every message is dropped. */
#define MK_IKC_PORT_DISCARD	9
/* Ports below this one belong to the kernel (echo and discard excepted). */
#define MK_IKC_PORT_FIRST_USER	64

/*
 * A batch of messages for MK_IKC_SEND and MK_IKC_RECV: records back to back
 * at buf, each a struct mk_ikc_msg and its len payload bytes, the next one
 * starting at the next multiple of MK_IKC_BATCH_ALIGN bytes from buf (see
 * MK_IKC_RECORD_SIZE). The padding is not read, and written as zeros.
 */
struct mk_ikc_batch {
	__u64 buf;	/* user address of the records */
	__u32 len;	/* SEND: bytes of records at buf; RECV: room at buf.
			 * RECV sets it to the bytes it wrote. */
	__u32 count;	/* set to the messages sent or received */
	__u32 flags;	/* 0 */
	__u32 reserved;	/* 0 */
};

#define MK_IKC_BATCH_ALIGN	8
/* The bytes one record of a payload of len bytes takes in a batch. */
#define MK_IKC_RECORD_SIZE(len) \
	((sizeof(struct mk_ikc_msg) + (len) + MK_IKC_BATCH_ALIGN - 1) & \
	 ~(__u64)(MK_IKC_BATCH_ALIGN - 1))

/*
 * MK_IKC_SEND sends the records in order; each is checked as write(2) checks
 * a message. It returns 0 once every record went, waiting for room as a
 * blocking write does (with O_NONBLOCK: EAGAIN if the first record does not
 * fit now). A record it cannot send stops the batch: with count > 0 the call
 * returns 0 and count says how many went (the error is reported on the next
 * call, if it persists); with nothing sent, the errno. A byte count that ends
 * inside a record is EINVAL for that record.
 *
 * MK_IKC_RECV waits for a message (with O_NONBLOCK: EAGAIN if none), then
 * writes as many whole waiting messages as fit in len bytes; EMSGSIZE if the
 * first does not (it stays, as with read(2)).
 */
#define MK_IKC_SEND	_IOWR(0xB9, 0x01, struct mk_ikc_batch)
#define MK_IKC_RECV	_IOWR(0xB9, 0x02, struct mk_ikc_batch)

/*
 * The stream area: two byte rings, one per direction, in memory both kernels
 * share, which mmap(2) of the message device maps into a process (MAP_SHARED,
 * offset 0, exactly MK_IKC_STREAM_BYTES; not executable, not inherited by a
 * fork). Each direction has one producer and one consumer process, one in each
 * kernel, and no system call is needed to move bytes: the producer copies
 * them in at tail and publishes the new tail (a release store), the consumer
 * copies them out from head and publishes the new head. Both indices count
 * bytes ever moved (they wrap at 2^64); data sits at index % size.
 *
 * A process that finds no data (or no room) sleeps in MK_IKC_STREAM_WAIT,
 * which first writes what it waits for into want_data (want_room): the
 * bytes in the low 32 bits, and in the high 32 bits a count that changes at
 * every look, so the word is new each time. The other side, after
 * publishing, issues a full barrier, reads that word and, if it is not 0,
 * not the word it already kicked for (kicked_data, kicked_room: its own
 * notes, reset with the area at each start; the kernels do not read them),
 * and now satisfied, calls MK_IKC_STREAM_KICK (a doorbell to the other
 * kernel, which wakes its waiter). The word is 0 again once the wait
 * returns. tools/testing/selftests/multikernel/mk_stream.h has helpers
 * that do exactly this.
 *
 * The area is reset (zeroed, magic and size set) each time the instance
 * starts. It is taken from the host's processes when the channel stops
 * being open (the instance stopped, crashed, was killed or started anew,
 * or broke the ring protocol): an access then
 * raises SIGBUS, until the next start, after which the same mapping shows
 * the new run's area. The device must be open O_RDWR.
 * Nothing in it is trusted: each kernel only reads the indices, and
 * MK_IKC_STREAM_WAIT fails with EIO if they say more than size bytes are
 * in a ring.
 */
#define MK_IKC_STREAM_MAGIC	0x4d41455254534b4dULL	/* "MKSTREAM" */
/* Bytes of data per direction. */
#define MK_IKC_STREAM_SIZE	(1U << 20)
/* What mmap maps: the 4 KiB header page, then the two directions' data. */
#define MK_IKC_STREAM_BYTES	(4096 + 2 * MK_IKC_STREAM_SIZE)

/* One direction's indices, each word in a cache line of its own. */
struct mk_ikc_stream_dir {
	__u64 tail;		/* producer: bytes ever written */
	__u64 pad0[7];
	__u64 head;		/* consumer: bytes ever read */
	__u64 pad1[7];
	__u64 want_data;	/* consumer asleep until tail - head >= the low 32 bits (0: awake) */
	__u64 kicked_data;	/* producer: the want_data it last kicked for */
	__u64 pad2[6];
	__u64 want_room;	/* producer asleep until size - (tail - head) >= the low 32 bits */
	__u64 kicked_room;	/* consumer: the want_room it last kicked for */
	__u64 pad3[6];
};

/* The header page, at offset 0 of the mapping. */
struct mk_ikc_stream {
	__u64 magic;		/* MK_IKC_STREAM_MAGIC */
	__u64 size;		/* MK_IKC_STREAM_SIZE */
	__u64 pad[6];
	struct mk_ikc_stream_dir to_instance;	/* host process -> instance process */
	struct mk_ikc_stream_dir to_host;	/* instance process -> host process */
};

/* Where each direction's data starts in the mapping. */
#define MK_IKC_STREAM_TO_INSTANCE	4096
#define MK_IKC_STREAM_TO_HOST		(4096 + MK_IKC_STREAM_SIZE)

/* MK_IKC_STREAM_WAIT: what to wait for, in this kernel's own directions. */
#define MK_IKC_STREAM_DATA	1	/* bytes to read (the direction toward us) */
#define MK_IKC_STREAM_ROOM	2	/* room to write (the direction away from us) */

struct mk_ikc_stream_wait {
	__u32 what;	/* MK_IKC_STREAM_DATA or MK_IKC_STREAM_ROOM */
	__u32 bytes;	/* 1 to MK_IKC_STREAM_SIZE */
};

/*
 * MK_IKC_STREAM_WAIT returns 0 once at least bytes are there to read (DATA)
 * or free to write (ROOM): EAGAIN instead of sleeping with O_NONBLOCK, EINTR
 * on a signal, ENOTCONN (EPROTO if the ring protocol broke) when the
 * channel is not open, EIO if the indices are impossible, EBUSY if another
 * thread of this kernel already waits for the same thing. EINVAL for an
 * unknown what or bytes outside 1..MK_IKC_STREAM_SIZE.
 * MK_IKC_STREAM_KICK rings the other kernel if a process there waits (one
 * of its want words is set), which then looks again; ENOTCONN (EPROTO)
 * when the channel is not open.
 */
#define MK_IKC_STREAM_WAIT	_IOW(0xB9, 0x03, struct mk_ikc_stream_wait)
#define MK_IKC_STREAM_KICK	_IO(0xB9, 0x04)

#endif /* _UAPI_LINUX_MULTIKERNEL_H */
