/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Multikernel: the few C entry points of the (Rust) multikernel subsystem.
 * See Documentation/multikernel/.
 */
#ifndef _LINUX_MULTIKERNEL_H
#define _LINUX_MULTIKERNEL_H

#include <linux/init.h>
#include <linux/types.h>

#ifdef CONFIG_MULTIKERNEL
/* Reserves the pool asked for by multikernel.pool=; called from setup_arch(). */
void __init multikernel_reserve_pool(void);
/* The reserved pool, if any: base and size, both multiples of 2 MiB. */
bool multikernel_pool_region(phys_addr_t *base, phys_addr_t *size);
#else
static inline void multikernel_reserve_pool(void) { }
#endif

#endif /* _LINUX_MULTIKERNEL_H */
