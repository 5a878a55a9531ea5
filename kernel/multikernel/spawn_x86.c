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

#include <linux/cpu.h>
#include <linux/delay.h>
#include <linux/init.h>
#include <linux/mm.h>
#include <linux/multikernel.h>
#include <linux/percpu.h>
#include <asm/init.h>
#include <asm/pgtable.h>
#include <asm/sections.h>
#include <asm/apic.h>
#include <asm/smp.h>
#include <asm/tsc.h>

/* Does not return; not marked so, to keep objtool's list of noreturn functions unpatched. */
void multikernel_enter(u64 pgd_pa, u64 boot_params, u64 entry, u64 arg);
extern const u8 multikernel_park[], multikernel_park_end[];

struct mk_spawn {
	u64 pgd;		/* physical, inside the instance's memory */
	u64 boot_params;
	u64 entry;
	u64 arg;
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
	multikernel_enter(s->pgd, s->boot_params, s->entry, s->arg);
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
 * plus multikernel_enter()'s page at its kernel-text address; returns the
 * PGD's physical address (0 on failure). Everything the entered kernel sees
 * is inside the instance's memory, the page tables included: the x86
 * decompressor extends the tables it is entered with, so they must be
 * identity mapped too. Build once per start, before any CPU uses them.
 */
u64 multikernel_spawn_build_map(u64 mem_start, u64 mem_size, u64 pt_start, u64 pt_size)
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
	return __pa(pgd);
}

/* Arms offline @cpu to enter @entry on the map @pgd with RSI = @boot_params, RCX = @arg. */
int multikernel_spawn_arm(unsigned int cpu, u64 pgd, u64 boot_params, u64 entry, u64 arg)
{
	struct mk_spawn *s;

	if (!host_play_dead || cpu >= nr_cpu_ids || cpu_online(cpu) || !pgd)
		return -EINVAL;
	s = per_cpu_ptr(&mk_spawn, cpu);
	WRITE_ONCE(s->armed, false);
	s->pgd = pgd;
	s->boot_params = boot_params;
	s->entry = entry;
	s->arg = arg;
	smp_wmb();
	WRITE_ONCE(s->armed, true);
	return 0;
}

int multikernel_spawn_init(void)
{
	if (!smp_ops.play_dead)
		return -ENODEV;
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

/* The park loop's code, to copy into an instance (see spawn_entry.S). */
void multikernel_park_code(const void **code, size_t *len)
{
	*code = multikernel_park;
	*len = multikernel_park_end - multikernel_park;
}

/* What an instance kernel needs to know of this machine's timers and CPUs. */
void multikernel_host_facts(unsigned int cpu, u32 *tsc_khz_out, u32 *lapic_period,
			    u32 *apic_id)
{
	*tsc_khz_out = tsc_khz;
	*lapic_period = lapic_timer_period;
	*apic_id = cpu < nr_cpu_ids ? per_cpu(x86_cpu_to_apicid, cpu) : BAD_APICID;
}
