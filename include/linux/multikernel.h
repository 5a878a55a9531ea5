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

/*
 * The wakeup record, as the park loop (spawn_entry.S) reads it: the instance
 * kernel fills vector and cr3, then sets command; the CPU whose APIC id is
 * apic_id clears command, loads cr3 (unless 0) and jumps to vector. vector
 * is mapped at the same address in cr3's page tables, as is the park area,
 * which cr3's tables map at its physical address.
 */
struct multikernel_wakeup {
	u32 command;
	u32 apic_id;
	u64 vector;
	u64 cr3;
};
/*
 * At MULTIKERNEL_STOP_OFFSET the instance kernel writes (u32) why it stops,
 * once, before its CPUs halt; the host then takes them back.
 */
#define MULTIKERNEL_STOP_OFFSET		16
#define MULTIKERNEL_STOP_POWEROFF	1
#define MULTIKERNEL_STOP_REBOOT		2
#define MULTIKERNEL_STOP_HALT		3
#define MULTIKERNEL_STOP_KEXEC		4
#define MULTIKERNEL_STOP_PANIC		5

/*
 * The host update (Documentation/multikernel/update.rst): the old host hands
 * its instances to the next kernel in a KHO blob named "multikernel". It
 * starts with this header, the part the next kernel reads in setup_arch()
 * (C, before the page allocator exists): the pool to reserve again, and the
 * APIC ids of the CPUs instances run on, which it must not bring up. The
 * instance records after it are the Rust side's (kernel/multikernel/base/
 * handover.rs). Every field is little endian; offsets count from the header.
 * A kernel declares the version it adopts in kernel_info ("MKHO", patch 0008).
 */
#define MULTIKERNEL_HANDOVER_MAGIC	0x564f444e41484b4dULL	/* "MKHANDOV" */
/*
 * 2: IKC rings of 1 MiB (the channel layout, kernel/multikernel/base/wire.rs
 * VERSION 4). Raised whenever what an instance shares with its host changes,
 * so that a host never hands instances to a kernel that cannot adopt them.
 */
#define MULTIKERNEL_HANDOVER_VERSION	3
#define MULTIKERNEL_HANDOVER_NAME	"multikernel"
struct multikernel_handover {
	u64 magic;
	u32 version;
	u32 size;		/* of the whole blob */
	u64 pool_base;
	u64 pool_size;
	u32 nr_held;		/* u32 APIC ids at held_offset */
	u32 held_offset;
	u32 nr_records;		/* instance records at records_offset */
	u32 records_offset;
	u64 tsc;		/* the TSC when the records were written */
};

#ifdef CONFIG_MULTIKERNEL
/* Reserves the pool asked for by multikernel.pool=; called from setup_arch(). */
void __init multikernel_reserve_pool(void);
/* After a KHO kexec, once KHO reserved its memory: a pool deferred (mm_core_init()). */
void __init multikernel_reserve_pool_late(void);
/* After a host update, the pool and CPUs handed over (handover.c). */
bool __init multikernel_handover_early(phys_addr_t *base, phys_addr_t *size);
void __init multikernel_handover_drop_holds(void);
/* local_bh_disable()/local_bh_enable() for Rust. */
void multikernel_bh_disable(void);
void multikernel_bh_enable(void);
/* The TSC now; nanoseconds since @tsc was read (0 if the TSC went back). */
u64 multikernel_tsc_now(void);
u64 multikernel_tsc_since_ns(u64 tsc);
/* Whether setup_arch() found a handover; INIT to the CPUs still held. */
bool multikernel_handover_seen(void);
void multikernel_handover_stop_held(void);
/* The reserved pool, if any: base and size, both multiples of 2 MiB. */
bool multikernel_pool_region(phys_addr_t *base, phys_addr_t *size);
/*
 * kexec_file_load(2) with KEXEC_FILE_MULTIKERNEL, after the usual permission
 * checks (kernel/multikernel/kexec.rs). Returns 0 or -errno.
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
				u64 pt_size, u64 park);
int multikernel_spawn_arm(unsigned int cpu, u64 pgd, u64 boot_params, u64 entry,
			  u64 arg, u64 park, unsigned int slot);
/*
 * The park area of an instance (at @park, MULTIKERNEL_PARK_BYTES): the loop
 * its waiting CPUs run, and the GDT, IDT and stacks every CPU enters on.
 */
#define MULTIKERNEL_PARK_BYTES		8192
int multikernel_park_prepare(void *area, size_t len, u64 park);
void multikernel_spawn_disarm(unsigned int cpu);
/* Sends INIT to an offline @cpu: stops what runs there. */
void multikernel_cpu_reset(unsigned int cpu);
/*
 * An owned CPU leaves the host's view (not present, no cpuN device) and
 * comes back (present, registered; still offline).
 */
int multikernel_cpu_hide(unsigned int cpu);
int multikernel_cpu_show(unsigned int cpu);
/* TSC kHz, LAPIC timer period (per tick) and APIC id of @cpu, for an instance. */
void multikernel_host_facts(unsigned int cpu, u32 *tsc_khz, u32 *lapic_period,
			    u32 *apic_id);
/* Whether this kernel runs with 5-level paging (instances are entered in it). */
bool multikernel_host_la57(void);
/* Whether instances may trust the TSC: this kernel keeps time with it, stable. */
bool multikernel_host_tsc_reliable(void);
/*
 * IKC (kernel/multikernel/ikc_x86.c): the doorbell is X86_PLATFORM_IPI_VECTOR,
 * whose handler calls multikernel_ikc_doorbell_irq() (Rust); an instance's
 * terminal and console, hvc0, hands its output to
 * multikernel_ikc_console_write() and takes its input from
 * multikernel_ikc_console_read() (Rust): each returns the bytes it took or
 * gave (0: none now).
 */
int multikernel_ikc_init(void);
void multikernel_ikc_ring(u32 apicid);
/* Drains per CPU per window of 2^20 ns the doorbell vector does; more are only counted. */
#define MULTIKERNEL_DOORBELL_BUDGET	32
void multikernel_ikc_doorbell_stats(u64 *received, u64 *throttled);
void multikernel_send_nmi(u32 apicid);
int multikernel_ikc_console_register(void);
void multikernel_ikc_console_kick(void);
void multikernel_ikc_doorbell_irq(void);
ssize_t multikernel_ikc_console_write(const u8 *text, size_t len);
ssize_t multikernel_ikc_console_read(u8 *buf, size_t len);
/*
 * The network link's net_device (kernel/multikernel/net.c): created and
 * destroyed with the instance (host) or the channel (instance;
 * multikernel_net_destroy() calls @unregistered(@data), if given, once the
 * device is unregistered, before it waits for RCU to free it); a Rust link
 * (ikc/net.rs) is attached while the other kernel runs. A frame on the link
 * is a struct virtio_net_hdr (offloads: checksum, GSO), padded to
 * MULTIKERNEL_NET_HDR bytes, then the Ethernet frame. The link side:
 * multikernel_net_xmit() (sends the @count @parts, @len bytes in all, as one
 * frame; 0, -EAGAIN when the ring is full, or a drop's -errno),
 * multikernel_net_want_room() (asks the peer for a doorbell when
 * room appears; whether there is room now), multikernel_net_poll() (hands
 * up to @budget frames to multikernel_net_rx(), returns how many),
 * multikernel_net_rearm() (asks for a doorbell on the next frame; whether
 * one came meanwhile).
 */
void *multikernel_net_create(const char *name, const u8 *mac);
void multikernel_net_destroy(void *dev, void (*unregistered)(void *), void *data);
void multikernel_net_attach(void *dev, void *link);
void multikernel_net_detach(void *dev);
void multikernel_net_kick(void *dev, bool frames);
void multikernel_net_broken(void *dev);
#define MULTIKERNEL_NET_HDR	12
struct multikernel_net_part {
	const void *data;
	u32 len;
};
void multikernel_net_rx(void *dev, const u8 *data, u32 len);
int multikernel_net_xmit(void *link, const struct multikernel_net_part *parts, u32 count,
			 u32 len);
bool multikernel_net_want_room(void *link);
int multikernel_net_poll(void *link, void *dev, int budget);
bool multikernel_net_rearm(void *link);
int multikernel_net_inject(void *dev);
/* cond_resched() for Rust (kernel/multikernel/ikc_x86.c). */
void multikernel_cond_resched(void);
/* In an instance kernel: power off in order, as the host asked (instance_x86.c). */
void multikernel_orderly_poweroff(void);
/* In an instance kernel: its id, channel address and the host CPU to ring. */
bool multikernel_instance_info(u32 *id, u64 *channel, u32 *host_apic);
/*
 * Isolation hooks (kernel/multikernel/instance_x86.c): IPI shorthands stay
 * off beside other kernels (arch/x86/kernel/apic/ipi.c); /dev/mem reaches
 * only an instance's own memory (arch/x86/mm/init.c).
 */
bool multikernel_ipi_shorthand_off(void);
bool multikernel_devmem_allowed(unsigned long pfn);
/*
 * The host is going down (reboot, poweroff, halt): its reboot notifier calls
 * multikernel_host_going_down() (kernel/multikernel/control.rs), which stops
 * the instances, in order and bounded in time, then by force.
 */
int multikernel_reboot_notifier_register(void);
void multikernel_host_going_down(void);
/*
 * The same registration adds a PM notifier: suspend and hibernation are
 * refused (EBUSY) while instances run, and always in an instance
 * (multikernel_sleep_refused(), kernel/multikernel/control.rs). From a sleep
 * it let go ahead until its end (multikernel_sleep_done()), starts are
 * refused too.
 */
bool multikernel_sleep_refused(bool suspend);
void multikernel_sleep_done(void);
/*
 * kernel_kexec() (patch 0010), for a reboot into @image: while instances
 * exist, multikernel_kexec_prepare() checks they can be handed over (KHO on,
 * the image loaded with it and declaring our handover version, no instance
 * starting or stopping) and sets the handover up; it refuses with -EBUSY or
 * -EINVAL, changing nothing. multikernel_kexec_commit() then hands them over
 * (cannot fail); multikernel_kexec_cancel() undoes a prepare whose kexec
 * failed before the commit. kernel/multikernel/handover.c and handover.rs.
 */
struct kimage;
int multikernel_kexec_prepare(struct kimage *image);
void multikernel_kexec_commit(void);
void multikernel_kexec_cancel(void);
/* The handover version a kexec_file_load()ed kernel declares (0: none). */
u32 multikernel_image_handover_version(const void *kernel, unsigned long len);
/* Rust: the checks and the records (kernel/multikernel/handover.rs). */
int multikernel_handover_prepare(bool kho, bool jump, u32 next_version);
void multikernel_handover_commit(void);
void multikernel_handover_cancel(void);
/*
 * KHO for the Rust side: a preserved, zeroed blob of @size bytes published
 * under MULTIKERNEL_HANDOVER_NAME (NULL on failure), and its removal; in the
 * next kernel, the blob handed over (NULL: none) and its release.
 */
void *multikernel_handover_publish(size_t size);
void multikernel_handover_unpublish(void *blob);
void *multikernel_handover_take(size_t *size);
void multikernel_handover_release(void *blob);
/* The next kernel: whether SMP bring-up must leave @cpu alone (kernel/cpu.c). */
bool multikernel_cpu_held(unsigned int cpu);
/* An adopted instance now owns @cpu: the hold is no longer needed. */
void multikernel_cpu_unhold(unsigned int cpu);
/* The CPU whose APIC id is @apic_id, or -1. */
int multikernel_cpu_by_apic(u32 apic_id);
#else
static inline void multikernel_reserve_pool(void) { }
static inline void multikernel_reserve_pool_late(void) { }
static inline bool multikernel_ipi_shorthand_off(void) { return false; }
static inline bool multikernel_devmem_allowed(unsigned long pfn) { return true; }
static inline bool multikernel_cpu_held(unsigned int cpu) { return false; }
struct kimage;
static inline int multikernel_kexec_prepare(struct kimage *image) { return 0; }
static inline void multikernel_kexec_commit(void) { }
static inline void multikernel_kexec_cancel(void) { }
#endif

#endif /* _LINUX_MULTIKERNEL_H */
