// SPDX-License-Identifier: GPL-2.0
/*
 * The x86 pieces of the inter-kernel channel (IKC) that Rust cannot reach:
 * the doorbell vector's hook, the IPI that rings another kernel's CPU, and a
 * console an instance kernel sends its output through. The channel itself
 * (rings, ports, heartbeat, devices) is Rust: kernel/multikernel/ikc.rs.
 *
 * The doorbell is X86_PLATFORM_IPI_VECTOR: a system vector every x86 kernel
 * has, used only by a few platforms (SGI UV, Hyper-V) this subsystem does
 * not run on; its hook is read-only after boot, so it is taken at init.
 */
#define pr_fmt(fmt) "multikernel: " fmt

#include <linux/console.h>
#include <linux/err.h>
#include "../../drivers/tty/hvc/hvc_console.h"
#include <linux/init.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/sched/clock.h>
#include <linux/irqflags.h>
#include <linux/multikernel.h>
#include <linux/spinlock.h>
#include <asm/apic.h>
#include <asm/irq.h>
#include <asm/irq_vectors.h>

/*
 * The doorbell budget: another kernel may ring as fast as it likes, and the
 * interrupt itself cannot be refused, but draining the channels (the costly
 * part) happens at most MULTIKERNEL_DOORBELL_BUDGET times per CPU per window
 * of 2^20 ns (about a millisecond). Doorbells over the budget are counted and
 * only acknowledged; what they announced is drained by the next doorbell
 * within budget, or by the channel's heartbeat work (every 100 ms).
 */
struct mk_doorbell_cpu {
	u64 window;
	unsigned int drains;
	u64 received;
	u64 throttled;
};

static DEFINE_PER_CPU(struct mk_doorbell_cpu, mk_doorbell_cpu);

static void mk_ikc_ipi(void)
{
	struct mk_doorbell_cpu *d = this_cpu_ptr(&mk_doorbell_cpu);
	u64 window = local_clock() >> 20;

	WRITE_ONCE(d->received, d->received + 1);
	if (window != d->window) {
		d->window = window;
		d->drains = 0;
	}
	if (d->drains >= MULTIKERNEL_DOORBELL_BUDGET) {
		WRITE_ONCE(d->throttled, d->throttled + 1);
		return;
	}
	d->drains++;
	multikernel_ikc_doorbell_irq();
}

/* Doorbells taken and throttled on all CPUs of this kernel since boot. */
void multikernel_ikc_doorbell_stats(u64 *received, u64 *throttled)
{
	int cpu;

	*received = 0;
	*throttled = 0;
	for_each_possible_cpu(cpu) {
		struct mk_doorbell_cpu *d = per_cpu_ptr(&mk_doorbell_cpu, cpu);

		*received += READ_ONCE(d->received);
		*throttled += READ_ONCE(d->throttled);
	}
}

/* An NMI to the CPU with APIC id @apicid (fault injection: a CPU of an instance). */
void multikernel_send_nmi(u32 apicid)
{
	unsigned long flags;

	local_irq_save(flags);
	apic_wait_icr_idle();
	apic_icr_write(APIC_DM_NMI | APIC_DEST_PHYSICAL, apicid);
	local_irq_restore(flags);
}

int multikernel_ikc_init(void)
{
	if (x86_platform_ipi_callback && x86_platform_ipi_callback != mk_ikc_ipi)
		return -EBUSY;
	x86_platform_ipi_callback = mk_ikc_ipi;
	return 0;
}

/*
 * A fixed IPI to a CPU this kernel may not know (the other kernel's), by its
 * physical APIC id.
 */
void multikernel_ikc_ring(u32 apicid)
{
	unsigned long flags;

	local_irq_save(flags);
	apic_wait_icr_idle();
	apic_icr_write(APIC_DM_FIXED | APIC_DEST_PHYSICAL | X86_PLATFORM_IPI_VECTOR, apicid);
	local_irq_restore(flags);
}

/*
 * An instance's terminal and console, /dev/hvc0: what is written to it goes
 * to the host over IKC (multikernel_ikc_console_write(), ikc/guest.rs), what
 * the host writes to /dev/mk-NAME.console comes back through get_chars. The
 * host puts console=hvc0 first on the instance's command line, so the kernel
 * log goes there too from the start (the console core replays it when hvc0
 * registers); a console= of the user's own still decides /dev/console. No
 * interrupt: khvcd polls get_chars, and is kicked when input arrives.
 */
static ssize_t mk_hvc_put_chars(u32 vtermno, const u8 *buf, size_t count)
{
	return multikernel_ikc_console_write(buf, count);
}

static ssize_t mk_hvc_get_chars(u32 vtermno, u8 *buf, size_t count)
{
	return multikernel_ikc_console_read(buf, count);
}

static const struct hv_ops mk_hvc_ops = {
	.get_chars	= mk_hvc_get_chars,
	.put_chars	= mk_hvc_put_chars,
};

#define MK_HVC_VTERMNO	0

int multikernel_ikc_console_register(void)
{
	struct hvc_struct *hp;

	/* Index 0: hvc0, the console the command line names. */
	if (hvc_instantiate(MK_HVC_VTERMNO, 0, &mk_hvc_ops))
		return -EBUSY;
	hp = hvc_alloc(MK_HVC_VTERMNO, 0, &mk_hvc_ops, 256);
	return PTR_ERR_OR_ZERO(hp);
}

/* Input arrived: khvcd polls now instead of at its idle interval (up to 2 s). */
void multikernel_ikc_console_kick(void)
{
	hvc_kick();
}

/* cond_resched() is a macro: for Rust's long loops (scrubbing instance memory). */
void multikernel_cond_resched(void)
{
	cond_resched();
}
