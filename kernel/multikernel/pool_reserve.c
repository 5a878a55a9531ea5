// SPDX-License-Identifier: GPL-2.0
/*
 * Early reservation of the multikernel pool, multikernel.pool=SIZE[@ADDR].
 *
 * This is C because it runs in setup_arch(), while memblock is the only
 * allocator and before any Rust code can run; the pool's runtime logic (how
 * it is handed out to instances) is Rust, in pool.rs.
 */
#define pr_fmt(fmt) "multikernel: " fmt

#include <linux/init.h>
#include <linux/ioport.h>
#include <linux/kexec_handover.h>
#include <linux/kernel.h>
#include <linux/memblock.h>
#include <linux/multikernel.h>
#include <linux/sizes.h>

#define POOL_ALIGN	SZ_2M

static phys_addr_t pool_size_req __initdata;
static phys_addr_t pool_addr_req __initdata;
static bool pool_addr_fixed __initdata;

static struct resource pool_res = {
	.name	= "Multikernel pool",
	.start	= 0,
	.end	= 0,
	.flags	= IORESOURCE_BUSY | IORESOURCE_MEM,
	.desc	= IORES_DESC_RESERVED,
};

static int __init parse_multikernel_pool(char *arg)
{
	char *end;

	if (!arg)
		return -EINVAL;
	pool_size_req = memparse(arg, &end);
	if (*end == '@') {
		pool_addr_req = memparse(end + 1, &end);
		pool_addr_fixed = true;
	}
	if (*end || !pool_size_req) {
		pr_err("ignoring multikernel.pool=%s: expected SIZE[@ADDR]\n", arg);
		pool_size_req = 0;
		return -EINVAL;
	}
	return 0;
}
early_param("multikernel.pool", parse_multikernel_pool);

/*
 * A free range of @size bytes outside KHO's scratch areas (where the next
 * kexec puts its segments: nothing that lives across a kexec may be there),
 * allocated; 0 if there is none. Top-down: each try ends below the last.
 */
static phys_addr_t __init mk_alloc_outside_scratch(phys_addr_t size)
{
	phys_addr_t end = MEMBLOCK_ALLOC_ACCESSIBLE, base;
	int tries;

	for (tries = 0; tries < 16; tries++) {
		base = memblock_phys_alloc_range(size, POOL_ALIGN, 0, end);
		if (!base || !kho_scratch_overlap(base, size))
			return base;
		memblock_phys_free(base, size);
		end = base;
	}
	return 0;
}

/* Places a pool of @size bytes (a multiple of POOL_ALIGN); 0 on failure (said). */
static phys_addr_t __init mk_place_pool(phys_addr_t size)
{
	phys_addr_t base;

	if (pool_addr_fixed) {
		base = pool_addr_req;
		if (!IS_ALIGNED(base, POOL_ALIGN) || base + size < base) {
			pr_err("pool address %pa is not 2 MiB aligned\n", &base);
			return 0;
		}
		if (!memblock_is_region_memory(base, size) ||
		    memblock_is_region_reserved(base, size) || kho_scratch_overlap(base, size)) {
			pr_err("pool %pa+%pa is not free RAM\n", &base, &size);
			return 0;
		}
		if (memblock_reserve(base, size)) {
			pr_err("cannot reserve pool at %pa\n", &base);
			return 0;
		}
		return base;
	}
	base = mk_alloc_outside_scratch(size);
	if (!base) {
		pr_err("cannot reserve a %pa-byte pool\n", &size);
		return 0;
	}
	/*
	 * A plain reservation, not a kernel allocation: KHO sizes its scratch
	 * areas after the memory the kernel allocated this early (200%),
	 * which the pool, never the kernel's, must not inflate.
	 */
	memblock_phys_free(base, size);
	memblock_reserve(base, size);
	return base;
}

static void __init mk_pool_reserved(phys_addr_t base, phys_addr_t size)
{
	pool_res.start = base;
	pool_res.end = base + size - 1;
	pr_info("pool reserved at %pa, %llu MiB\n", &base, (u64)size >> 20);
}

/* The pool multikernel.pool= asks for. */
static void __init mk_reserve_requested(void)
{
	phys_addr_t size = ALIGN(pool_size_req, POOL_ALIGN), base;

	if (size < pool_size_req) {
		pr_err("pool size %pa too large\n", &pool_size_req);
		return;
	}
	base = mk_place_pool(size);
	if (base)
		mk_pool_reserved(base, size);
}

/* A KHO kexec without a pool handed over: the pool is placed late. */
static bool pool_deferred __initdata;

void __init multikernel_reserve_pool(void)
{
	phys_addr_t size, base;

	/*
	 * After a host update the pool holds running instances: it is where
	 * the old host had it, whatever the command line says now.
	 */
	if (multikernel_handover_early(&base, &size)) {
		if (pool_size_req && ALIGN(pool_size_req, POOL_ALIGN) != size)
			pr_warn("multikernel.pool=%pa ignored: the pool handed over is %pa bytes\n",
				&pool_size_req, &size);
		/*
		 * Running kernels are in it: reserved whatever else is, and
		 * whatever this kernel's memory map says (the header was
		 * checked: aligned, not empty, no wrap).
		 */
		if (memblock_is_region_reserved(base, size) ||
		    !memblock_is_region_memory(base, size))
			pr_warn("host update: the pool %pa+%pa is not all free RAM here\n",
				&base, &size);
		if (memblock_reserve(base, size)) {
			pr_err("host update: cannot reserve the pool %pa+%pa again: its instances are stopped\n",
			       &base, &size);
			multikernel_handover_drop_holds();
			return;
		}
		mk_pool_reserved(base, size);
		return;
	}
	if (!pool_size_req)
		return;
	/*
	 * After a KHO kexec, memblock allocates only from KHO's scratch areas
	 * (too small for a pool), and the memory KHO preserved is not yet
	 * reserved (a fixed address could land on it): place the pool once it
	 * is, in multikernel_reserve_pool_late().
	 */
	if (is_kho_boot()) {
		pool_deferred = true;
		return;
	}
	mk_reserve_requested();
}

void __init multikernel_reserve_pool_late(void)
{
	if (!pool_deferred)
		return;
	/*
	 * KHO has reserved what it preserved (kho_memory_init()); memblock
	 * still allocates only from its scratch areas until
	 * memblock_free_all(): lift that for the pool, which must lie outside
	 * them.
	 */
	memblock_clear_kho_scratch_only();
	mk_reserve_requested();
	memblock_set_kho_scratch_only();
}

bool multikernel_pool_region(phys_addr_t *base, phys_addr_t *size)
{
	if (!pool_res.end)
		return false;
	*base = pool_res.start;
	*size = resource_size(&pool_res);
	return true;
}

/* Show the pool in /proc/iomem, like the crash kernel's region. */
static int __init multikernel_pool_resource(void)
{
	if (pool_res.end && insert_resource(&iomem_resource, &pool_res))
		pr_warn("cannot show the pool in /proc/iomem\n");
	return 0;
}
arch_initcall(multikernel_pool_resource);
