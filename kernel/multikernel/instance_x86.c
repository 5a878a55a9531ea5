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
#include <linux/jiffies.h>
#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/multikernel.h>
#include <linux/notifier.h>
#include <linux/panic_notifier.h>
#include <linux/sizes.h>
#include <linux/reboot.h>
#include <linux/string.h>
#include <asm/apic.h>
#include <asm/e820/api.h>
#include <asm/i8259.h>
#include <asm/init.h>
#include <asm/pgalloc.h>
#include <asm/spec-ctrl.h>
#include <asm/mpspec.h>
#include <asm/realmode.h>
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
/* The mailbox page, mapped once at boot: written from panic and halt paths. */
static void *mk_wakeup_page;
/* This instance's memory (its e820 map), the only range /dev/mem reaches. */
static u64 mk_mem_start, mk_mem_end;

static unsigned long mk_get_tsc(void)
{
	return mk_tsc_khz;
}

static void mk_get_wallclock(struct timespec64 *now)
{
	memset(now, 0, sizeof(*now));
}

/* The CMOS clock is the host's: an instance never writes it (NTP sync, hwclock). */
static int mk_set_wallclock(const struct timespec64 *now)
{
	return -ENODEV;
}

static void __init mk_timer_init(void)
{
	lapic_timer_period = mk_lapic_period;
}

/*
 * The page tables the other CPUs enter this kernel on: this kernel's upper
 * half (as the real-mode trampoline's page table has it) and an identity map
 * of the instance's memory, where the park loop they wait in lies. No
 * real-mode trampoline: it must sit below 4 GiB (its 64-bit entry uses
 * 32-bit addresses), and an instance's memory may lie entirely above.
 */
static void __init mk_find_memory(void);
static unsigned long mk_ap_cr3;
static void (*mk_native_play_dead)(void);
void multikernel_park_self(void *record, u32 apic_id);
extern u32 multikernel_ap_lock;
void multikernel_ap_entry(void);
static struct real_mode_header mk_real_mode_header;

static void *mk_alloc_pgt_page(void *context)
{
	return (void *)get_zeroed_page(GFP_KERNEL);
}

static void __init mk_realmode_init(void)
{
	struct x86_mapping_info info = {
		.alloc_pgt_page	= mk_alloc_pgt_page,
		.page_flag	= __PAGE_KERNEL_LARGE_EXEC,
		.kernpg_flag	= _KERNPG_TABLE_NOENC,
	};
	u64 start, end;
	pgd_t *pgd;
	int i;

	mk_find_memory();
	start = round_down(mk_mem_start, PMD_SIZE);
	end = round_up(mk_mem_end, PMD_SIZE);

	/*
	 * multikernel_ap_entry takes this lock for its stack; secondary_startup_64
	 * releases it (as the real-mode trampoline's) once on its own.
	 */
	trampoline_lock = &multikernel_ap_lock;
	if (mk_nr_cpus < 2)
		return;
	if (start >= end) {
		pr_err("no memory range: running on the first CPU only\n");
		return;
	}
	/*
	 * As pgd_alloc() does: with PTI a PGD is 8 KiB aligned, or an NMI's
	 * entry code, which tells a user CR3 by bit 12, would take it for one.
	 */
	pgd = (pgd_t *)__get_free_pages(GFP_KERNEL | __GFP_ZERO, pgd_allocation_order());
	if (!pgd || kernel_ident_mapping_init(&info, pgd, start, end)) {
		pr_err("cannot map the park loop: running on the first CPU only\n");
		return;
	}
	for (i = pgd_index(__PAGE_OFFSET); i < PTRS_PER_PGD; i++)
		pgd[i] = init_top_pgt[i];
	mk_ap_cr3 = __pa(pgd);
}

/*
 * A CPU this kernel takes offline goes back to the park loop (not to hlt,
 * where the next bring-up, a wakeup through the mailbox, would not reach
 * it): onlining it again works like its first start.
 */
static void mk_instance_play_dead(void)
{
	if (!mk_wakeup_page || !mk_ap_cr3) {
		mk_native_play_dead();
		return;
	}
	/* As native_play_dead(): no kernel IBRS while parked (it spins). */
	if (cpu_feature_enabled(X86_FEATURE_KERNEL_IBRS))
		__update_spec_ctrl(0);
	play_dead_common();
	multikernel_park_self(mk_wakeup_page + MULTIKERNEL_WAKEUP_OFFSET,
			      cpu_physical_id(smp_processor_id()));
}

/*
 * Starts another CPU of the instance: it waits in the host-provided park loop
 * (spawn_entry.S) polling the wakeup area of the mailbox page, as firmware
 * does for the ACPI MP-wakeup mailbox; it acknowledges by clearing command.
 */
static int mk_wakeup_secondary_cpu_64(u32 apicid, unsigned long start_ip,
				      unsigned int cpu)
{
	struct multikernel_wakeup *w;
	unsigned long timeout = USEC_PER_SEC;

	if (!mk_wakeup_page || !mk_ap_cr3)
		return -ENOMEM;
	w = mk_wakeup_page + MULTIKERNEL_WAKEUP_OFFSET;
	WRITE_ONCE(w->apic_id, apicid);
	/*
	 * Not the real-mode trampoline (start_ip): the CPU switches to the page
	 * tables at mk_ap_cr3 in the park loop and enters secondary_startup_64
	 * through multikernel_ap_entry (spawn_entry.S).
	 */
	WRITE_ONCE(w->vector, (u64)multikernel_ap_entry);
	WRITE_ONCE(w->cr3, mk_ap_cr3);
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

/*
 * The host asked this kernel to stop (control stop): user space shuts down as
 * for a power button; the power-off then reports "poweroff" in the mailbox.
 */
void multikernel_orderly_poweroff(void)
{
	orderly_poweroff(true);
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
	if (mk_nr_cpus > 1) {
		apic_update_callback(wakeup_secondary_cpu_64, mk_wakeup_secondary_cpu_64);
		mk_native_play_dead = smp_ops.play_dead;
		smp_ops.play_dead = mk_instance_play_dead;
	}
}

/*
 * Tells the host why this kernel stops (the first reason wins: a panic that
 * ends in an emergency restart stays a panic). The host's heartbeat sees the
 * word and closes the channel; the instance shows stopped or crashed
 * (instances/NAME/last_stop) and its CPUs are taken back, verified, by the
 * next start, load or destroy.
 */
static void mk_report_stop(u32 reason)
{
	u32 *word;

	if (!mk_wakeup_page)
		return;
	word = mk_wakeup_page + MULTIKERNEL_STOP_OFFSET;
	cmpxchg(word, 0, reason);
	smp_mb();
}

/*
 * Every way out of this kernel ends here: no reset (it would reset the
 * whole machine), no jump into another kernel; the host takes the CPUs.
 */
static void __noreturn mk_stop(u32 reason)
{
	/* Said first: the host closes the channel soon after it sees the reason. */
	pr_emerg("stopped (%s); the host takes its CPUs back\n",
		 reason == MULTIKERNEL_STOP_POWEROFF ? "poweroff" :
		 reason == MULTIKERNEL_STOP_REBOOT ? "reboot" :
		 reason == MULTIKERNEL_STOP_HALT ? "halt" :
		 reason == MULTIKERNEL_STOP_KEXEC ? "kexec" : "panic");
	mk_report_stop(reason);
	local_irq_disable();
	/* By mask: IPI shorthands are off in instances (multikernel_ipi_shorthand_off()). */
	smp_send_stop();
	for (;;)
		native_halt();
}

static void mk_emergency_restart(void)
{
	mk_stop(MULTIKERNEL_STOP_REBOOT);
}

static void mk_restart(char *cmd)
{
	mk_stop(MULTIKERNEL_STOP_REBOOT);
}

static void mk_halt(void)
{
	mk_stop(MULTIKERNEL_STOP_HALT);
}

static void mk_power_off(void)
{
	mk_stop(MULTIKERNEL_STOP_POWEROFF);
}

/* machine_shutdown(): only kernel_kexec() calls it before jumping to a new kernel. */
static void mk_shutdown(void)
{
	mk_stop(MULTIKERNEL_STOP_KEXEC);
}

/* A crash kernel (kdump) would be entered next: stop instead. */
static void mk_crash_shutdown(struct pt_regs *regs)
{
	mk_stop(MULTIKERNEL_STOP_PANIC);
}

/* Without a power-off handler, reboot(2) turns a poweroff into a halt. */
static int mk_sys_off(struct sys_off_data *data)
{
	mk_stop(MULTIKERNEL_STOP_POWEROFF);
	return NOTIFY_DONE;
}

static int mk_panic_notify(struct notifier_block *nb, unsigned long event, void *buf)
{
	mk_report_stop(MULTIKERNEL_STOP_PANIC);
	return NOTIFY_DONE;
}

static struct notifier_block mk_panic_nb = {
	.notifier_call	= mk_panic_notify,
	.priority	= INT_MAX,
};

/* Port 0x61 (NMI reason) is the host's: an NMI here is never a platform error. */
static unsigned char mk_get_nmi_reason(void)
{
	return 0;
}

#if IS_BUILTIN(CONFIG_SERIAL_8250)
#include <linux/serial_8250.h>

/*
 * The legacy UARTs are the host's unless the instance's command line names
 * one as its console (console=ttySN): the others are not even probed (a
 * probe writes their registers), as Jailhouse cells do
 * (arch/x86/kernel/jailhouse.c).
 */
static unsigned int mk_uarts;	/* bit N: the command line names ttySN */

static bool __init mk_uart_named(unsigned int index)
{
	const char *at = boot_command_line;
	char want[16];

	snprintf(want, sizeof(want), "console=ttyS%u", index);
	while ((at = strstr(at, want))) {
		char next = at[strlen(want)];

		if ((at == boot_command_line || at[-1] == ' ') &&
		    (next == '\0' || next == ' ' || next == ','))
			return true;
		at++;
	}
	return false;
}

static void mk_serial_fixup(int port, struct uart_port *up, u32 *capabilities)
{
	static const u16 legacy[] = { 0x3f8, 0x2f8, 0x3e8, 0x2e8 };
	unsigned int n;

	for (n = 0; n < ARRAY_SIZE(legacy); n++) {
		if (legacy[n] == up->iobase && !(mk_uarts & BIT(n))) {
			up->iobase = 0;
			return;
		}
	}
}

static void __init mk_serial_setup(void)
{
	unsigned int n;

	for (n = 0; n < 4; n++)
		if (mk_uart_named(n))
			mk_uarts |= BIT(n);
	serial8250_set_isa_configurator(mk_serial_fixup);
}
#else
static inline void mk_serial_setup(void) { }
#endif

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
	x86_platform.set_wallclock		= mk_set_wallclock;
	x86_platform.legacy.rtc			= 0;
	x86_platform.legacy.warm_reset		= 0;
	x86_platform.legacy.i8042		= X86_LEGACY_I8042_PLATFORM_ABSENT;
	/*
	 * No real-mode trampoline (no memory below 1 MiB, maybe none below
	 * 4 GiB): the other CPUs leave the park loop on mk_ap_pgd straight into
	 * secondary_startup_64. real_mode_header only needs to be there.
	 */
	x86_platform.realmode_reserve		= x86_init_noop;
	x86_platform.realmode_init		= mk_realmode_init;
	real_mode_header			= &mk_real_mode_header;
	legacy_pic				= &null_legacy_pic;
	mk_serial_setup();
	x86_platform.get_nmi_reason		= mk_get_nmi_reason;
	machine_ops.emergency_restart		= mk_emergency_restart;
	machine_ops.restart			= mk_restart;
	machine_ops.halt			= mk_halt;
	machine_ops.power_off			= mk_power_off;
	machine_ops.shutdown			= mk_shutdown;
#ifdef CONFIG_CRASH_DUMP
	machine_ops.crash_shutdown		= mk_crash_shutdown;
#endif
	pr_info("instance %u: leaving shared hardware to the host\n", mk_id);
	return 0;
}
early_param("multikernel.instance", mk_instance_setup);

static int __init mk_tsc_setup(char *arg)
{
	if (!arg || kstrtoul(arg, 0, &mk_tsc_khz))
		return -EINVAL;
	/*
	 * The delay loop runs on the TSC: its loops per jiffy follow from the
	 * host's TSC frequency and this kernel's HZ, no calibration needed
	 * (seconds under emulation). An lpj= on the command line, parsed
	 * after early parameters, still wins.
	 */
	preset_lpj = mk_tsc_khz * 1000 / HZ;
	return 0;
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

/*
 * Whether IPI shorthands must stay off (arch/x86/kernel/apic/ipi.c): always
 * in an instance, and in a host with a pool, where instances run on CPUs it
 * has offlined: a shorthand reaches every APIC of the machine.
 */
bool multikernel_ipi_shorthand_off(void)
{
	phys_addr_t base, size;

	return mk_id || multikernel_pool_region(&base, &size);
}

/*
 * Whether /dev/mem may reach @pfn (arch/x86/mm/init.c): in an instance only
 * its own memory; everything else is another kernel's RAM or shared
 * hardware. Decided before the first open: the range is set at core_initcall.
 */
bool multikernel_devmem_allowed(unsigned long pfn)
{
	u64 addr = PFN_PHYS(pfn);

	if (!mk_id)
		return true;
	return addr >= mk_mem_start && addr < mk_mem_end;
}

/* The instance's memory is what its e820 map names (RAM and the reserved entry pages). */
static void __init mk_find_memory(void)
{
	u64 start = U64_MAX, end = 0;
	int i;

	for (i = 0; i < e820_table->nr_entries; i++) {
		struct e820_entry *e = &e820_table->entries[i];

		start = min(start, e->addr);
		end = max(end, e->addr + e->size);
	}
	if (start < end) {
		mk_mem_start = start;
		mk_mem_end = end;
	}
}

/*
 * Early in boot: the mailbox is mapped for good (the stop paths write to it
 * from panic and halt, where nothing may be mapped), stops are reported on
 * panic, and /dev/mem learns this instance's memory.
 */
static int __init mk_instance_init(void)
{
	if (!mk_id)
		return 0;
	mk_find_memory();
	if (mk_mailbox_ok())
		mk_wakeup_page = memremap(mk_mailbox, PAGE_SIZE, MEMREMAP_WB);
	if (!mk_wakeup_page)
		pr_warn("no mailbox: the host will not learn why this kernel stops\n");
	atomic_notifier_chain_register(&panic_notifier_list, &mk_panic_nb);
	if (IS_ERR(register_sys_off_handler(SYS_OFF_MODE_POWER_OFF, SYS_OFF_PRIO_PLATFORM,
					    mk_sys_off, NULL)))
		pr_warn("no power-off handler: poweroff will report a halt\n");
	return 0;
}
early_initcall(mk_instance_init);

/* Boot is over and init is about to run: tell the host. */
static int __init mk_report_running(void)
{
	u64 *mailbox = mk_wakeup_page;

	if (!mk_id || !mailbox)
		return 0;
	WRITE_ONCE(mailbox[1], mk_id);
	smp_wmb();
	WRITE_ONCE(mailbox[0], MULTIKERNEL_MAILBOX_MAGIC);
	pr_info("instance %u: running, reported to the host\n", mk_id);
	return 0;
}
late_initcall_sync(mk_report_running);

#ifdef CONFIG_MULTIKERNEL_IKC_FAULT_INJECT
/*
 * Testing only: what a hostile or careless instance kernel would do, and a
 * look at what the last user of this memory left (tools/testing/selftests/
 * multikernel/isolation_test.c):
 *   multikernel.test_flood=MS     ring the host's doorbell as fast as possible
 *                                 for MS milliseconds (from a kthread)
 *   multikernel.test_fill=TEXT    write TEXT at the start of 4096 free pages
 *                                 and keep them (stale data for the next user)
 *   multikernel.test_scan=TEXT    count this instance's RAM pages that start
 *                                 with TEXT (at boot, and after a fill)
 */
#include <linux/gfp.h>
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/delay.h>

static unsigned int mk_test_flood_ms;
static char *mk_test_fill, *mk_test_scan;

static int __init mk_test_flood_setup(char *arg)
{
	return arg ? kstrtouint(arg, 0, &mk_test_flood_ms) : -EINVAL;
}
early_param("multikernel.test_flood", mk_test_flood_setup);

static int __init mk_test_fill_setup(char *arg)
{
	mk_test_fill = arg;
	return 0;
}
early_param("multikernel.test_fill", mk_test_fill_setup);

static int __init mk_test_scan_setup(char *arg)
{
	mk_test_scan = arg;
	return 0;
}
early_param("multikernel.test_scan", mk_test_scan_setup);

static int mk_test_flood(void *unused)
{
	unsigned long end, n = 0;

	/* From the moment init runs (the host sees the instance running), not during boot. */
	while (system_state < SYSTEM_RUNNING)
		msleep(20);
	end = jiffies + msecs_to_jiffies(mk_test_flood_ms);
	while (time_before(jiffies, end)) {
		multikernel_ikc_ring(mk_host_bsp_apic);
		if (!(++n % 1024))
			cond_resched();
	}
	pr_notice("test_flood: rang the host %lu times in %u ms\n", n, mk_test_flood_ms);
	return 0;
}

/* This instance's RAM pages (e820 RAM) that start with @text. */
static unsigned long mk_test_count(const char *text)
{
	size_t len = strlen(text);
	unsigned long found = 0;
	int i;

	for (i = 0; i < e820_table->nr_entries; i++) {
		struct e820_entry *e = &e820_table->entries[i];
		u64 pa;

		if (e->type != E820_TYPE_RAM)
			continue;
		for (pa = PAGE_ALIGN(e->addr); pa + PAGE_SIZE <= e->addr + e->size; pa += PAGE_SIZE) {
			if (!memcmp(__va(pa), text, len))
				found++;
		}
		cond_resched();
	}
	return found;
}

static int __init mk_test_hooks(void)
{
	unsigned long filled = 0;

	if (!mk_id)
		return 0;
	if (mk_test_scan && *mk_test_scan)
		pr_notice("test_scan: %lu pages start with %s\n", mk_test_count(mk_test_scan),
			mk_test_scan);
	if (mk_test_fill && *mk_test_fill) {
		for (; filled < 4096; filled++) {
			struct page *page = alloc_page(GFP_KERNEL);

			if (!page)
				break;
			memset(page_address(page), 0, PAGE_SIZE);
			strscpy(page_address(page), mk_test_fill, PAGE_SIZE);
		}
		pr_notice("test_fill: %lu pages, %lu start with %s\n", filled,
			mk_test_count(mk_test_fill), mk_test_fill);
	}
	if (mk_test_flood_ms)
		kthread_run(mk_test_flood, NULL, "mk_test_flood");
	return 0;
}
late_initcall(mk_test_hooks);
#endif
