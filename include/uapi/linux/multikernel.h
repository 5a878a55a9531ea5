/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Multikernel inter-kernel channel (IKC): the message devices.
 *
 * On the host, /dev/mk-NAME talks to instance NAME's kernel; in an instance,
 * /dev/mk-host talks to the host. Each read(2) returns one message and each
 * write(2) sends one: a struct mk_ikc_msg header followed by len payload
 * bytes. The MK_IKC_SEND and MK_IKC_RECV ioctls move a batch of messages per
 * call (as sendmmsg(2) and recvmmsg(2) do for sockets). See
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

#endif /* _UAPI_LINUX_MULTIKERNEL_H */
