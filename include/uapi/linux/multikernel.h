/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Multikernel inter-kernel channel (IKC): the message devices.
 *
 * On the host, /dev/mk-NAME talks to instance NAME's kernel; in an instance,
 * /dev/mk-host talks to the host. Each read(2) returns one message and each
 * write(2) sends one: a struct mk_ikc_msg header followed by len payload
 * bytes. See Documentation/multikernel/ikc.rst.
 */
#ifndef _UAPI_LINUX_MULTIKERNEL_H
#define _UAPI_LINUX_MULTIKERNEL_H

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

#endif /* _UAPI_LINUX_MULTIKERNEL_H */
