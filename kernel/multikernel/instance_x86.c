// SPDX-License-Identifier: GPL-2.0
/*
 * Running as a multikernel instance on x86 (EXPERIMENTAL).
 *
 * The host's loader appends "multikernel.*" parameters to an instance
 * kernel's command line (its boot data). Seeing multikernel.instance=, this
 * kernel leaves the machine's shared hardware to the host, in the way
 * Jailhouse non-root cells do (arch/x86/kernel/jailhouse.c): no 8259 PIC,
 * PIT, HPET, RTC, i8042, MP table or reset path; TSC and LAPIC timer
 * frequencies come from the host; only its own CPU is registered. When its
 * boot is done it writes a mark into a mailbox in its memory for the host.
 *
 * C because it must hook x86_init/x86_platform before setup_arch() uses
 * them, from early_param handlers.
 */
#define pr_fmt(fmt) "multikernel instance: " fmt

#include <linux/init.h>
#include <linux/io.h>
#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/multikernel.h>
#include <linux/sizes.h>
#include <linux/reboot.h>
#include <linux/string.h>
#include <asm/apic.h>
#include <asm/i8259.h>
#include <asm/mpspec.h>
#include <asm/reboot.h>
#include <asm/topology.h>
#include <asm/x86_init.h>


static unsigned int mk_id;
static unsigned long mk_tsc_khz;
static unsigned int mk_lapic_period;
static unsigned long mk_mailbox;
static unsigned long mk_ikc;
#define MK_MAX_CPUS		64
static u32 mk_apic_ids[MK_MAX_CPUS];
static unsigned int mk_nr_cpus;
static u32 mk_host_bsp_apic = -1U;
static void *mk_wakeup_page;

static unsigned long mk_get_tsc(void)
{
	return mk_tsc_khz;
}

static void mk_get_wallclock(struct timespec64 *now)
{
	memset(now, 0, sizeof(*now));
}

static void __init mk_timer_init(void)
{
	lapic_timer_period = mk_lapic_period;
}

/*
 * Starts another CPU of the instance: it waits in the host-provided park loop
 * (spawn_entry.S) polling the wakeup area of the mailbox page, as firmware
 * does for the ACPI MP-wakeup mailbox; it acknowledges by clearing command.
 */
static int mk_wakeup_secondary_cpu_64(u32 apicid, unsigned long start_ip,
				      unsigned int cpu)
{
	struct mk_wakeup {
		u32 command;
		u32 apic_id;
		u64 vector;
	} *w;
	unsigned long timeout = USEC_PER_SEC;

	if (!mk_wakeup_page) {
		mk_wakeup_page = memremap(mk_mailbox, PAGE_SIZE, MEMREMAP_WB);
		if (!mk_wakeup_page)
			return -ENOMEM;
	}
	w = mk_wakeup_page + MULTIKERNEL_WAKEUP_OFFSET;
	WRITE_ONCE(w->apic_id, apicid);
	WRITE_ONCE(w->vector, start_ip);
	smp_store_release(&w->command, 1);
	while (READ_ONCE(w->command) && --timeout)
		udelay(1);
	if (READ_ONCE(w->command)) {
		WRITE_ONCE(w->command, 0);
		pr_err("CPU %u (APIC %u) did not leave the park loop\n", cpu, apicid);
		return -EIO;
	}
	return 0;
}

/* The mailbox page the host named, if there is a usable one. */
static bool mk_mailbox_ok(void)
{
	return mk_mailbox && PAGE_ALIGNED(mk_mailbox);
}

static void __init mk_parse_smp_config(void)
{
	unsigned int i;

	/* Without the mailbox the other CPUs cannot be started: run on the first. */
	if (mk_nr_cpus > 1 && !mk_mailbox_ok()) {
		pr_warn("no usable multikernel.mailbox=: using CPU APIC %u only\n", mk_apic_ids[0]);
		mk_nr_cpus = 1;
	}

	register_lapic_address(APIC_DEFAULT_PHYS_BASE);
	/*
	 * The host's boot CPU first: x86 takes the first enumerated APIC that is
	 * not this CPU for the "real BSP" a crash kernel must never INIT, and
	 * rejects it; then it does not limit this kernel to one CPU either.
	 */
	if (mk_host_bsp_apic != -1U)
		topology_register_apic(mk_host_bsp_apic, CPU_ACPIID_INVALID, true);
	for (i = 0; i < mk_nr_cpus; i++)
		topology_register_apic(mk_apic_ids[i], CPU_ACPIID_INVALID, true);
	smp_found_config = 1;
	if (mk_nr_cpus > 1)
		apic_update_callback(wakeup_secondary_cpu_64, mk_wakeup_secondary_cpu_64);
}

static void mk_no_restart(void)
{
	pr_emerg("no restart in an instance: halting this CPU\n");
	for (;;)
		halt();
}

static void mk_no_restart_cmd(char *cmd)
{
	mk_no_restart();
}

static int __init mk_instance_setup(char *arg)
{
	if (!arg || kstrtouint(arg, 0, &mk_id) || !mk_id)
		return -EINVAL;

	x86_init.irqs.pre_vector_init		= x86_init_noop;
	x86_init.timers.timer_init		= mk_timer_init;
	x86_init.mpparse.find_mptable		= x86_init_noop;
	x86_init.mpparse.early_parse_smp_cfg	= x86_init_noop;
	x86_init.mpparse.parse_smp_cfg		= mk_parse_smp_config;
	x86_platform.calibrate_cpu		= mk_get_tsc;
	x86_platform.calibrate_tsc		= mk_get_tsc;
	x86_platform.get_wallclock		= mk_get_wallclock;
	x86_platform.legacy.rtc			= 0;
	x86_platform.legacy.warm_reset		= 0;
	x86_platform.legacy.i8042		= X86_LEGACY_I8042_PLATFORM_ABSENT;
	/*
	 * No memory below 1 MiB: the AP trampoline (whose 64-bit entry the park
	 * loop jumps to) goes below 4 GiB in the instance's memory.
	 */
	x86_init.resources.realmode_limit	= SZ_4G;
	legacy_pic				= &null_legacy_pic;
	machine_ops.emergency_restart		= mk_no_restart;
	machine_ops.restart			= mk_no_restart_cmd;
	machine_ops.halt			= mk_no_restart;
	machine_ops.power_off			= mk_no_restart;
	pr_info("instance %u: leaving shared hardware to the host\n", mk_id);
	return 0;
}
early_param("multikernel.instance", mk_instance_setup);

static int __init mk_tsc_setup(char *arg)
{
	return arg ? kstrtoul(arg, 0, &mk_tsc_khz) : -EINVAL;
}
early_param("multikernel.tsc_khz", mk_tsc_setup);

static int __init mk_lapic_setup(char *arg)
{
	return arg ? kstrtouint(arg, 0, &mk_lapic_period) : -EINVAL;
}
early_param("multikernel.lapic_period", mk_lapic_setup);

static int __init mk_apic_ids_setup(char *arg)
{
	char *id;

	while (arg && (id = strsep(&arg, ",")) && mk_nr_cpus < MK_MAX_CPUS) {
		if (kstrtou32(id, 0, &mk_apic_ids[mk_nr_cpus]))
			return -EINVAL;
		mk_nr_cpus++;
	}
	if (arg && *arg)
		pr_warn("more than %d CPUs in multikernel.apic_ids=: using the first %d\n",
			MK_MAX_CPUS, MK_MAX_CPUS);
	return 0;
}
early_param("multikernel.apic_ids", mk_apic_ids_setup);

static int __init mk_host_bsp_setup(char *arg)
{
	return arg ? kstrtou32(arg, 0, &mk_host_bsp_apic) : -EINVAL;
}
early_param("multikernel.host_bsp_apic", mk_host_bsp_setup);

static int __init mk_mailbox_setup(char *arg)
{
	return arg ? kstrtoul(arg, 0, &mk_mailbox) : -EINVAL;
}
early_param("multikernel.mailbox", mk_mailbox_setup);

static int __init mk_ikc_setup(char *arg)
{
	return arg ? kstrtoul(arg, 0, &mk_ikc) : -EINVAL;
}
early_param("multikernel.ikc", mk_ikc_setup);

/* For the Rust core: whether this is an instance, and its channel to the host. */
bool multikernel_instance_info(u32 *id, u64 *channel, u32 *host_apic)
{
	*id = mk_id;
	*channel = mk_ikc;
	*host_apic = mk_host_bsp_apic;
	return mk_id != 0;
}

/* Boot is over and init is about to run: tell the host. */
static int __init mk_report_running(void)
{
	u64 *mailbox;

	if (!mk_id || !mk_mailbox_ok())
		return 0;
	/* Mapped already if other CPUs were started through it. */
	mailbox = mk_wakeup_page ?: memremap(mk_mailbox, PAGE_SIZE, MEMREMAP_WB);
	if (!mailbox)
		return -ENOMEM;
	WRITE_ONCE(mailbox[1], mk_id);
	smp_wmb();
	WRITE_ONCE(mailbox[0], MULTIKERNEL_MAILBOX_MAGIC);
	if (mailbox != mk_wakeup_page)
		memunmap(mailbox);
	pr_info("instance %u: running, reported to the host\n", mk_id);
	return 0;
}
late_initcall_sync(mk_report_running);
