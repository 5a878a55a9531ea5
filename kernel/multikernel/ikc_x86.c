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

static void mk_ikc_console_write(struct console *con, const char *s, unsigned int n)
{
	multikernel_ikc_console_write(s, n);
}

/*
 * Enabled from the start (like netconsole), whatever console= says, and with
 * the log so far: the host sees the boot from its first line.
 */
static struct console mk_ikc_console = {
	.name	= "mkikc",
	.write	= mk_ikc_console_write,
	.flags	= CON_ENABLED | CON_PRINTBUFFER,
	.index	= -1,
};

void multikernel_ikc_console_register(void)
{
	register_console(&mk_ikc_console);
}

/* cond_resched() is a macro: for Rust's long loops (scrubbing instance memory). */
void multikernel_cond_resched(void)
{
	cond_resched();
}
