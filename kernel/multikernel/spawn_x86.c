// SPDX-License-Identifier: GPL-2.0
/*
 * Handing an offlined x86 CPU to an instance kernel (EXPERIMENTAL).
 *
 * C and assembly because this runs where Rust cannot: the CPU's last steps in
 * this kernel, after the hotplug core declared it dead. smp_ops.play_dead is
 * wrapped: a CPU armed with multikernel_spawn_arm() does not halt when it
 * goes offline, it switches to an identity map of the instance's memory and
 * jumps to the loaded kernel's 64-bit entry (spawn_entry.S). Everything else
 * (when to arm, which CPU, state) is decided by the Rust core.
 */
#define pr_fmt(fmt) "multikernel: " fmt

#include <linux/acpi.h>
#include <linux/cpu.h>
#include <linux/cpuidle.h>
#include <linux/delay.h>
#include <linux/device.h>
#include <linux/init.h>
#include <linux/mm.h>
#include <linux/multikernel.h>
#include <linux/percpu.h>
#include <linux/reboot.h>
#include <linux/suspend.h>
#include <linux/timekeeping.h>
#include <asm/init.h>
#include <asm/irq_vectors.h>
#include <asm/pgtable.h>
#include <asm/sections.h>
#include <asm/apic.h>
#include <asm/smp.h>
#include <asm/tsc.h>

/* Does not return; not marked so, to keep objtool's list of noreturn functions unpatched. */
void multikernel_enter(u64 pgd_pa, u64 boot_params, u64 entry, u64 arg, u64 tables,
		       u64 stack);
extern const u8 multikernel_park[], multikernel_park_end[];
extern const u8 multikernel_nmi[], multikernel_fault[];

/*
 * The park area (MULTIKERNEL_PARK_BYTES in the instance's memory): the park
 * loop's code, then a GDT and an IDT and a stack per CPU, which the CPUs use
 * from multikernel_enter() on, before and after the switch to the identity
 * map: an NMI or machine check there is taken in the instance's memory, never
 * on the host's tables (which the identity map does not map). They are
 * reached through the area's direct-map address, which both maps have.
 */
#define MK_PARK_TABLES		0x100	/* gdtr at +0, idtr at +16 (multikernel_enter) */
#define MK_PARK_GDT		0x140
#define MK_PARK_IDT		0x200
#define MK_PARK_IDT_VECTORS	32
#define MK_PARK_STACKS		0x400
#define MK_PARK_STACK_SLOT	96	/* an exception frame and an NMI frame, 16-byte aligned */
#define MK_PARK_SLOTS		((MULTIKERNEL_PARK_BYTES - MK_PARK_STACKS) / MK_PARK_STACK_SLOT)

struct mk_desc_ptr {
	u16 limit;
	u64 base;
} __packed;

struct mk_gate {
	u16 offset0;
	u16 segment;
	u8 ist;
	u8 type;		/* present, DPL 0, 64-bit interrupt gate */
	u16 offset1;
	u32 offset2;
	u32 reserved;
} __packed;

struct mk_spawn {
	u64 pgd;		/* physical, inside the instance's memory */
	u64 boot_params;
	u64 entry;
	u64 arg;
	u64 tables;		/* direct-map address of the park area's descriptors */
	u64 stack;		/* direct-map address: top of this CPU's stack slot */
	bool armed;
};

/* Page-table pages handed out from the instance's own page-table area. */
struct mk_pt_area {
	unsigned long next;	/* physical */
	unsigned long end;
};

static DEFINE_PER_CPU(struct mk_spawn, mk_spawn);
static void (*host_play_dead)(void);

static void *mk_alloc_pgt_page(void *context)
{
	struct mk_pt_area *area = context;
	void *page;

	if (area->next + PAGE_SIZE > area->end)
		return NULL;
	/* Pool memory is RAM in the direct map, never handed to the page allocator. */
	page = __va(area->next);
	area->next += PAGE_SIZE;
	clear_page(page);
	return page;
}

static void mk_free_pgt_page(void *page, void *context)
{
	/* Nothing to free: the pages belong to the instance's memory. */
}

static void mk_play_dead(void)
{
	struct mk_spawn *s = this_cpu_ptr(&mk_spawn);

	if (!READ_ONCE(s->armed)) {
		host_play_dead();
		return;
	}

	WRITE_ONCE(s->armed, false);
	play_dead_common();
	wbinvd();
	multikernel_enter(s->pgd, s->boot_params, s->entry, s->arg, s->tables, s->stack);
	for (;;)
		native_halt();
}

void multikernel_spawn_disarm(unsigned int cpu)
{
	if (cpu < nr_cpu_ids)
		WRITE_ONCE(per_cpu_ptr(&mk_spawn, cpu)->armed, false);
}

/*
 * Builds, in the instance's page-table area, an identity map of its memory
 * plus multikernel_enter()'s page at its kernel-text address and the park
 * area at its direct-map address; returns the PGD's physical address (0 on
 * failure). Everything the entered kernel sees
 * is inside the instance's memory, the page tables included: the x86
 * decompressor extends the tables it is entered with, so they must be
 * identity mapped too. Build once per start, before any CPU uses them.
 */
u64 multikernel_spawn_build_map(u64 mem_start, u64 mem_size, u64 pt_start, u64 pt_size,
				u64 park)
{
	struct mk_pt_area area = { .next = pt_start, .end = pt_start + pt_size };
	struct x86_mapping_info info = {
		.alloc_pgt_page	= mk_alloc_pgt_page,
		.free_pgt_page	= mk_free_pgt_page,
		.context	= &area,
		.page_flag	= __PAGE_KERNEL_LARGE_EXEC,
		.kernpg_flag	= _KERNPG_TABLE_NOENC,
	};
	unsigned long start;
	pgd_t *pgd;

	pgd = mk_alloc_pgt_page(&area);
	if (!pgd)
		return 0;
	if (kernel_ident_mapping_init(&info, pgd, mem_start, mem_start + mem_size))
		return 0;
	info.offset = __START_KERNEL_map - phys_base;
	start = PAGE_ALIGN_DOWN(__pa_symbol(multikernel_enter));
	if (kernel_ident_mapping_init(&info, pgd, start, start + PAGE_SIZE))
		return 0;
	/* Data only, but the large-page flags are what the helper maps with. */
	info.offset = (unsigned long)__va(0);
	if (kernel_ident_mapping_init(&info, pgd, park, park + MULTIKERNEL_PARK_BYTES))
		return 0;
	return __pa(pgd);
}

/*
 * Arms offline @cpu to enter @entry on the map @pgd with RSI = @boot_params,
 * RCX = @arg, on the tables of the park area at @park and its stack @slot.
 */
int multikernel_spawn_arm(unsigned int cpu, u64 pgd, u64 boot_params, u64 entry, u64 arg,
			  u64 park, unsigned int slot)
{
	unsigned long park_va = (unsigned long)__va(park);
	struct mk_spawn *s;

	if (!host_play_dead || cpu >= nr_cpu_ids || cpu_online(cpu) || !pgd ||
	    slot >= MK_PARK_SLOTS)
		return -EINVAL;
	s = per_cpu_ptr(&mk_spawn, cpu);
	WRITE_ONCE(s->armed, false);
	s->pgd = pgd;
	s->boot_params = boot_params;
	s->entry = entry;
	s->arg = arg;
	s->tables = park_va + MK_PARK_TABLES;
	s->stack = park_va + MULTIKERNEL_PARK_BYTES - slot * MK_PARK_STACK_SLOT;
	smp_wmb();
	WRITE_ONCE(s->armed, true);
	return 0;
}

int multikernel_spawn_init(void)
{
	if (!smp_ops.play_dead)
		return -ENODEV;
	if (smp_ops.play_dead == mk_play_dead)
		return -EBUSY;
	host_play_dead = smp_ops.play_dead;
	smp_ops.play_dead = mk_play_dead;
	return 0;
}

/*
 * Stops whatever @cpu (offline in this kernel) runs: INIT puts it in
 * wait-for-SIPI, where this kernel's next bring-up of it (INIT, SIPI, SIPI)
 * starts it afresh.
 */
void multikernel_cpu_reset(unsigned int cpu)
{
	u32 apicid;
	unsigned long flags;

	if (cpu >= nr_cpu_ids || cpu_online(cpu))
		return;
	apicid = per_cpu(x86_cpu_to_apicid, cpu);
	local_irq_save(flags);
	apic_icr_write(APIC_INT_LEVELTRIG | APIC_INT_ASSERT | APIC_DM_INIT, apicid);
	safe_apic_wait_icr_idle();
	udelay(10);
	apic_icr_write(APIC_INT_LEVELTRIG | APIC_DM_INIT, apicid);
	safe_apic_wait_icr_idle();
	local_irq_restore(flags);
}

static void mk_set_gate(struct mk_gate *gate, const void *handler)
{
	unsigned long addr = (unsigned long)handler;

	*gate = (struct mk_gate) {
		.offset0	= addr & 0xffff,
		.segment	= 0x10,
		.type		= 0x8e,
		.offset1	= (addr >> 16) & 0xffff,
		.offset2	= addr >> 32,
	};
}

/*
 * Fills @area (MULTIKERNEL_PARK_BYTES, to be copied to @park in the
 * instance's memory): the park loop's code, a GDT with the boot protocol's
 * segments (__BOOT_CS 0x10, __BOOT_DS 0x18) and an IDT whose NMI gate returns
 * at once and whose other exception gates halt; the stacks stay zero. The
 * handlers are in multikernel_enter()'s page, which both maps have.
 */
int multikernel_park_prepare(void *area, size_t len, u64 park)
{
	unsigned long park_va = (unsigned long)__va(park);
	size_t code = multikernel_park_end - multikernel_park;
	struct mk_desc_ptr *gdtr = area + MK_PARK_TABLES, *idtr = area + MK_PARK_TABLES + 16;
	u64 *gdt = area + MK_PARK_GDT;
	struct mk_gate *idt = area + MK_PARK_IDT;
	int i;

	BUILD_BUG_ON(MK_PARK_SLOTS < 64);
	if (len != MULTIKERNEL_PARK_BYTES || code > MK_PARK_TABLES)
		return -EINVAL;
	memset(area, 0, len);
	memcpy(area, multikernel_park, code);
	gdt[2] = 0x00af9a000000ffffULL;		/* 64-bit code */
	gdt[3] = 0x00cf92000000ffffULL;		/* data */
	*gdtr = (struct mk_desc_ptr) { .limit = 4 * 8 - 1, .base = park_va + MK_PARK_GDT };
	*idtr = (struct mk_desc_ptr) {
		.limit	= MK_PARK_IDT_VECTORS * sizeof(*idt) - 1,
		.base	= park_va + MK_PARK_IDT,
	};
	for (i = 0; i < MK_PARK_IDT_VECTORS; i++)
		mk_set_gate(&idt[i], i == NMI_VECTOR ? multikernel_nmi : multikernel_fault);
	return 0;
}

/*
 * While an instance owns a CPU the host does not show it: not present and
 * without its cpuN device, as after an ACPI hot-remove (the firmware's tables
 * and the APIC topology are left alone), so tools that walk every CPU see
 * the host's only. The steps and locks are ACPI CPU hot-plug's
 * (acpi_processor.c): the processor driver is released and the ACPI
 * companion unbound first, then the device goes under the CPU maps and
 * hotplug locks; showing it again binds the companion and attaches the
 * driver again. Only what was hidden here is shown again (mk_hidden), so a
 * CPU the firmware says is absent never becomes present.
 */
static DECLARE_BITMAP(mk_hidden, NR_CPUS);
#ifdef CONFIG_ACPI
static struct acpi_device *mk_hidden_companion[NR_CPUS];
#endif

int multikernel_cpu_hide(unsigned int cpu)
{
	struct device *dev;
	int ret = 0;

	if (cpu >= nr_cpu_ids || !cpu)
		return -EINVAL;
	lock_device_hotplug();
	dev = get_cpu_device(cpu);
	if (!dev || test_bit(cpu, mk_hidden))
		goto out;
	if (cpu_online(cpu)) {
		ret = -EBUSY;
		goto out;
	}
	device_release_driver(dev);
	/*
	 * A cpuidle device still registered (intel_idle keeps its devices
	 * across offline; acpi_idle's went with the processor driver just
	 * above) has its cpuidle/ directory under this device, holding it: it
	 * goes first, or the device would be registered again while that
	 * still refers to it. intel_idle registers it again when the CPU
	 * comes online in the host (intel_idle_cpu_online()).
	 */
#ifdef CONFIG_CPU_IDLE
	cpuidle_unregister_device(per_cpu(cpuidle_devices, cpu));
#endif
#ifdef CONFIG_ACPI
	mk_hidden_companion[cpu] = acpi_dev_get(ACPI_COMPANION(dev));
	if (mk_hidden_companion[cpu])
		acpi_unbind_one(dev);
#endif
	cpu_maps_update_begin();
	cpus_write_lock();
	arch_unregister_cpu(cpu);
	set_cpu_present(cpu, false);
	set_bit(cpu, mk_hidden);
	cpus_write_unlock();
	cpu_maps_update_done();
out:
	unlock_device_hotplug();
	return ret;
}

int multikernel_cpu_show(unsigned int cpu)
{
	struct device *dev;
	int ret;

	if (cpu >= nr_cpu_ids || !cpu_possible(cpu))
		return -EINVAL;
	lock_device_hotplug();
	if (!test_bit(cpu, mk_hidden)) {
		ret = 0;
		goto out;
	}
	cpu_maps_update_begin();
	cpus_write_lock();
	set_cpu_present(cpu, true);
	ret = arch_register_cpu(cpu);
	if (ret)
		set_cpu_present(cpu, false);
	else
		clear_bit(cpu, mk_hidden);
	cpus_write_unlock();
	cpu_maps_update_done();
	if (ret)
		goto out;
	dev = get_cpu_device(cpu);
#ifdef CONFIG_ACPI
	if (mk_hidden_companion[cpu] && dev && acpi_bind_one(dev, mk_hidden_companion[cpu]))
		dev = NULL;
	acpi_dev_put(mk_hidden_companion[cpu]);
	mk_hidden_companion[cpu] = NULL;
#endif
	/* Its driver (ACPI's processor driver) again; the CPU works without one. */
	if (dev && device_attach(dev) < 0)
		pr_warn_ratelimited("CPU %u: no driver attached again\n", cpu);
out:
	unlock_device_hotplug();
	return ret;
}

/*
 * Before the host reboots, powers off or halts, its instances get to stop in
 * order (a kexec -e never gets here while they run: kernel_kexec() refuses).
 */
static int mk_reboot_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	multikernel_host_going_down();
	return NOTIFY_DONE;
}

static struct notifier_block mk_reboot_nb = {
	.notifier_call	= mk_reboot_notify,
	/* Early: instances stop while the host still has all it needs. */
	.priority	= INT_MAX,
};

/*
 * Suspend and hibernation would stop the CPUs and memory instances run on
 * under them, and nothing would wake an instance kernel: refused (EBUSY,
 * one message) while instances run, and always in an instance. A sleep let
 * go ahead refuses starts until its post event (which the PM core also sends
 * when a later notifier refused the sleep).
 */
static int mk_pm_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	switch (action) {
	case PM_SUSPEND_PREPARE:
	case PM_HIBERNATION_PREPARE:
	case PM_RESTORE_PREPARE:
		if (multikernel_sleep_refused(action == PM_SUSPEND_PREPARE))
			return notifier_from_errno(-EBUSY);
		break;
	case PM_POST_SUSPEND:
	case PM_POST_HIBERNATION:
	case PM_POST_RESTORE:
		multikernel_sleep_done();
		break;
	}
	return NOTIFY_DONE;
}

static struct notifier_block mk_pm_nb = {
	.notifier_call	= mk_pm_notify,
};

int multikernel_reboot_notifier_register(void)
{
	int ret = register_reboot_notifier(&mk_reboot_nb);

	if (ret)
		return ret;
	ret = register_pm_notifier(&mk_pm_nb);
	if (ret)
		unregister_reboot_notifier(&mk_reboot_nb);
	return ret;
}

/* What an instance kernel needs to know of this machine's timers and CPUs. */
void multikernel_host_facts(unsigned int cpu, u32 *tsc_khz_out, u32 *lapic_period,
			    u32 *apic_id)
{
	*tsc_khz_out = tsc_khz;
	*lapic_period = lapic_timer_period;
	*apic_id = cpu < nr_cpu_ids ? per_cpu(x86_cpu_to_apicid, cpu) : BAD_APICID;
}

/*
 * Whether an instance kernel may trust the TSC without a watchdog of its own
 * (it has no HPET or ACPI PM timer to check it against): when this kernel
 * keeps its own time with the TSC and has not found it unstable. Then the
 * loader appends tsc=reliable, without which the instance never enters
 * high-resolution timer mode.
 */
bool multikernel_host_tsc_reliable(void)
{
	struct system_time_snapshot snap;

	if (!boot_cpu_has(X86_FEATURE_TSC) || check_tsc_unstable())
		return false;
	ktime_get_snapshot_id(CLOCK_MONOTONIC, &snap);
	return snap.valid && (snap.cs_id == CSID_X86_TSC || snap.cs_id == CSID_X86_TSC_EARLY);
}

/* The paging mode instance kernels are entered in. */
bool multikernel_host_la57(void)
{
	return !!(native_read_cr4() & X86_CR4_LA57);
}
