// SPDX-License-Identifier: GPL-2.0
/*
 * The host update's C side (Documentation/multikernel/update.rst): the glue
 * between kernel_kexec() and the Rust handover (handover.rs), the KHO calls,
 * and what the next kernel must do before Rust can run: in setup_arch(),
 * reserve the pool the instances live in again and learn which CPUs they
 * run on, so that SMP bring-up leaves those alone (cpu_up(), patch 0010).
 */
#define pr_fmt(fmt) "multikernel: " fmt

#include <linux/bottom_half.h>
#include <linux/cpumask.h>
#include <linux/kexec.h>
#include <linux/kexec_handover.h>
#include <linux/memblock.h>
#include <linux/mm.h>
#include <linux/multikernel.h>
#include <linux/percpu.h>
#include <linux/math64.h>
#include <asm/smp.h>
#include <asm/tsc.h>

/* Held CPUs: APIC ids from the blob; U32_MAX once unheld. Read-mostly. */
static u32 *mk_held;
static u32 mk_nr_held;
/* setup_arch() found a usable handover header (the pool was reserved by it). */
static bool mk_seen;

int multikernel_kexec_prepare(struct kimage *image)
{
	bool kho = IS_ENABLED(CONFIG_KEXEC_HANDOVER) && kho_is_enabled() &&
		   image->file_mode && image->kho.fdt;

	return multikernel_handover_prepare(kho, image->preserve_context,
					    image->multikernel_handover);
}

void multikernel_kexec_commit(void)
{
	multikernel_handover_commit();
}

void multikernel_kexec_cancel(void)
{
	multikernel_handover_cancel();
}

void *multikernel_handover_publish(size_t size)
{
	void *blob;
	int err;

	blob = kho_alloc_preserve(size);
	if (IS_ERR(blob))
		return NULL;
	err = kho_add_subtree(MULTIKERNEL_HANDOVER_NAME, blob, size);
	if (err) {
		kho_unpreserve_free(blob);
		return NULL;
	}
	return blob;
}

void multikernel_handover_unpublish(void *blob)
{
	kho_remove_subtree(blob);
	kho_unpreserve_free(blob);
}

/*
 * The blob handed over, checked as far as C reads it; NULL if there is none
 * or it is unusable (said once by the early reader).
 */
static struct multikernel_handover *mk_handover_header(phys_addr_t *phys, size_t *size)
{
	struct multikernel_handover *h;

	if (kho_retrieve_subtree(MULTIKERNEL_HANDOVER_NAME, phys, size))
		return NULL;
	if (*size < sizeof(*h) || *size > SZ_64M || !PAGE_ALIGNED(*phys))
		return NULL;
	h = phys_to_virt(*phys);
	if (h->magic != MULTIKERNEL_HANDOVER_MAGIC ||
	    h->version != MULTIKERNEL_HANDOVER_VERSION || h->size > *size ||
	    h->size < sizeof(*h) || h->held_offset < sizeof(*h) ||
	    h->held_offset > h->size || h->held_offset % 4 ||
	    h->nr_held > (h->size - h->held_offset) / 4 || !h->pool_size ||
	    !IS_ALIGNED(h->pool_base | h->pool_size, SZ_2M) ||
	    h->pool_base + h->pool_size < h->pool_base)
		return NULL;
	return h;
}

/*
 * From multikernel_reserve_pool() in setup_arch(): after a host update, the
 * pool the instances live in (its place is the old host's, whatever
 * multikernel.pool= says now) and their CPUs. Returns whether a pool was
 * handed over (then *base and *size are set).
 */
bool __init multikernel_handover_early(phys_addr_t *base, phys_addr_t *size)
{
	struct multikernel_handover *h;
	phys_addr_t phys;
	size_t len;

	if (!is_kho_boot())
		return false;
	h = mk_handover_header(&phys, &len);
	if (!h) {
		if (!kho_retrieve_subtree(MULTIKERNEL_HANDOVER_NAME, &phys, &len))
			pr_err("host update: the handed-over state is unusable (another version?): instances are lost\n");
		return false;
	}
	/*
	 * Without the list, bring-up sends the instances' CPUs INIT (they are
	 * lost), but their pool is still reserved below: what they wrote until
	 * then stays out of this kernel's way.
	 */
	if (h->nr_held) {
		mk_held = memblock_alloc(h->nr_held * sizeof(u32), SMP_CACHE_BYTES);
		if (mk_held) {
			memcpy(mk_held, (void *)h + h->held_offset, h->nr_held * sizeof(u32));
			mk_nr_held = h->nr_held;
		} else {
			pr_err("host update: no memory for the list of instance CPUs: instances are stopped\n");
		}
	}
	mk_seen = true;
	*base = h->pool_base;
	*size = h->pool_size;
	pr_info("host update: %u instance(s) on %u CPU(s) handed over; pool at %pa\n",
		h->nr_records, h->nr_held, base);
	return true;
}

/*
 * The pool handed over could not be reserved: its instances cannot be
 * adopted. SMP bring-up then sends their CPUs INIT, which stops them.
 */
void __init multikernel_handover_drop_holds(void)
{
	mk_nr_held = 0;
}

void multikernel_bh_disable(void)
{
	local_bh_disable();
}

void multikernel_bh_enable(void)
{
	local_bh_enable();
}

u64 multikernel_tsc_now(void)
{
	return rdtsc();
}

u64 multikernel_tsc_since_ns(u64 tsc)
{
	u64 now = rdtsc();

	if (now < tsc || !tsc_khz)
		return 0;
	return mul_u64_u32_div(now - tsc, NSEC_PER_MSEC, tsc_khz);
}

bool multikernel_handover_seen(void)
{
	return mk_seen;
}

void multikernel_handover_stop_held(void)
{
	u32 i;
	int cpu;

	for (i = 0; i < mk_nr_held; i++) {
		if (READ_ONCE(mk_held[i]) == U32_MAX)
			continue;
		cpu = multikernel_cpu_by_apic(mk_held[i]);
		if (cpu >= 0)
			multikernel_cpu_reset(cpu);
	}
}

void *multikernel_handover_take(size_t *size)
{
	struct multikernel_handover *h;
	struct folio *folio;
	phys_addr_t phys;

	if (!is_kho_boot())
		return NULL;
	h = mk_handover_header(&phys, size);
	if (!h)
		return NULL;
	folio = kho_restore_folio(phys);
	if (!folio)
		return NULL;
	if (folio_size(folio) < *size) {
		folio_put(folio);
		return NULL;
	}
	return folio_address(folio);
}

void multikernel_handover_release(void *blob)
{
	if (blob)
		folio_put(virt_to_folio(blob));
}

bool multikernel_cpu_held(unsigned int cpu)
{
	u32 apic, i;

	if (!mk_nr_held || cpu >= nr_cpu_ids)
		return false;
	apic = per_cpu(x86_cpu_to_apicid, cpu);
	for (i = 0; i < mk_nr_held; i++)
		if (READ_ONCE(mk_held[i]) == apic)
			return true;
	return false;
}

void multikernel_cpu_unhold(unsigned int cpu)
{
	u32 apic, i;

	if (cpu >= nr_cpu_ids)
		return;
	apic = per_cpu(x86_cpu_to_apicid, cpu);
	for (i = 0; i < mk_nr_held; i++)
		if (mk_held[i] == apic)
			WRITE_ONCE(mk_held[i], U32_MAX);
}

int multikernel_cpu_by_apic(u32 apic_id)
{
	unsigned int cpu;

	for_each_possible_cpu(cpu)
		if (per_cpu(x86_cpu_to_apicid, cpu) == apic_id)
			return cpu;
	return -1;
}
