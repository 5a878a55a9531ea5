/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Multikernel: the few C entry points of the (Rust) multikernel subsystem.
 * See Documentation/multikernel/.
 */
#ifndef _LINUX_MULTIKERNEL_H
#define _LINUX_MULTIKERNEL_H

#include <linux/compiler_types.h>
#include <linux/init.h>
#include <linux/spinlock_types.h>
#include <linux/types.h>
#include <uapi/linux/kexec.h>

/*
 * The mailbox page of an instance: the instance kernel writes this magic and
 * its id at the start once booted; at MULTIKERNEL_WAKEUP_OFFSET is the record
 * its waiting CPUs are started through (kernel/multikernel/instance_x86.c).
 */
#define MULTIKERNEL_MAILBOX_MAGIC	0x4e4e55524b4d554dULL	/* "MUMKRUNN" */
#define MULTIKERNEL_WAKEUP_OFFSET	64

#ifdef CONFIG_MULTIKERNEL
/* Reserves the pool asked for by multikernel.pool=; called from setup_arch(). */
void __init multikernel_reserve_pool(void);
/* The reserved pool, if any: base and size, both multiples of 2 MiB. */
bool multikernel_pool_region(phys_addr_t *base, phys_addr_t *size);
/*
 * kexec_file_load(2) with KEXEC_FILE_MULTIKERNEL, after the usual permission
 * checks (rust/kernel/multikernel.rs). Returns 0 or -errno.
 */
long multikernel_kexec_file_load(int kernel_fd, int initrd_fd,
				 unsigned long cmdline_len,
				 const char __user *cmdline_ptr,
				 unsigned long flags);
/*
 * kexec_file_load's signature policy (KEXEC_SIG, lockdown, IMA) applied to a
 * kernel image loaded by the multikernel path (kernel/kexec_file.c).
 */
int kexec_file_check_sig(void *kernel, unsigned long kernel_len);
/*
 * x86 spawn (kernel/multikernel/spawn_x86.c, experimental): arm an offline
 * CPU so that the next time it goes through play_dead it enters the kernel
 * loaded at @entry with @boot_params, on an identity map of the instance's
 * memory; disarm it again. multikernel_spawn_init() wraps smp_ops.play_dead.
 */
int multikernel_spawn_init(void);
u64 multikernel_spawn_build_map(u64 mem_start, u64 mem_size, u64 pt_start,
				u64 pt_size);
int multikernel_spawn_arm(unsigned int cpu, u64 pgd, u64 boot_params, u64 entry,
			  u64 arg);
/* The code an instance's waiting CPUs run (position independent). */
void multikernel_park_code(const void **code, size_t *len);
void multikernel_spawn_disarm(unsigned int cpu);
/* Sends INIT to an offline @cpu: stops what runs there. */
void multikernel_cpu_reset(unsigned int cpu);
/* TSC kHz, LAPIC timer period (per tick) and APIC id of @cpu, for an instance. */
void multikernel_host_facts(unsigned int cpu, u32 *tsc_khz, u32 *lapic_period,
			    u32 *apic_id);
/*
 * IKC (kernel/multikernel/ikc_x86.c): the doorbell is X86_PLATFORM_IPI_VECTOR,
 * whose handler calls multikernel_ikc_doorbell_irq() (Rust); an instance's
 * console hands its output to multikernel_ikc_console_write() (Rust).
 */
int multikernel_ikc_init(void);
void multikernel_ikc_ring(u32 apicid);
void multikernel_ikc_console_register(void);
void multikernel_ikc_doorbell_irq(void);
void multikernel_ikc_console_write(const char *text, unsigned int len);
/* raw_spinlock_t for Rust (kernel/multikernel/ikc_x86.c). */
void multikernel_raw_spin_lock_init(raw_spinlock_t *lock, const char *name,
				    struct lock_class_key *key);
unsigned long multikernel_raw_spin_lock_irqsave(raw_spinlock_t *lock);
bool multikernel_raw_spin_trylock_irqsave(raw_spinlock_t *lock, unsigned long *flags);
void multikernel_raw_spin_unlock_irqrestore(raw_spinlock_t *lock, unsigned long flags);
void multikernel_raw_spin_assert_held(raw_spinlock_t *lock);
/* In an instance kernel: its id, channel address and the host CPU to ring. */
bool multikernel_instance_info(u32 *id, u64 *channel, u32 *host_apic);
#else
static inline void multikernel_reserve_pool(void) { }
#endif

#endif /* _LINUX_MULTIKERNEL_H */
