// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark (make bench, not a test): create+destroy of a 1-CPU instance,
 * beside a plain offline+online cycle of the same CPU measured in the same
 * run, since an instance's cost is mostly that hotplug cycle; and the same
 * with net=off (no network device mkvN), which shows what the device costs.
 * The halves of each cycle are printed too (offline and online, create and
 * destroy: the "split" lines), to show which side grew.
 *
 *   reserve_bench [ROUNDS]     (needs multikernel.pool= and a CPU besides CPU 0:
 *                               the highest is used)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mk_util.h"

static double now_us(void)
{
	return clock_s(CLOCK_MONOTONIC) * 1e6;
}

/*
 * One create and destroy of instance bench0 from spec: microseconds, or -1;
 * the create's part in *create.
 */
static double create_destroy(const char *spec, double *create)
{
	double t = now_us();

	if (write_str(MK "/create", spec))
		return -1;
	*create = now_us() - t;
	if (write_str(MK "/destroy", "bench0"))
		return -1;
	return now_us() - t;
}

/* A cycle's two halves: the medians of the first (a) and of the rest (whole - a). */
static void print_split(const char *what, const char *first, double *a, const char *second,
			const double *whole, int rounds)
{
	double *b = calloc(rounds, sizeof(*b));
	int i;

	if (!b)
		return;
	for (i = 0; i < rounds; i++)
		b[i] = whole[i] - a[i];
	printf("reserve: split, median us: %s: %s %.0f, %s %.0f\n", what, first,
	       median(a, rounds), second, median(b, rounds));
	free(b);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 50, i, cpu;
	double *inst, *nonet, *plug, *inst_c, *nonet_c, *plug_off, t;
	char spec[64], spec_nonet[sizeof(spec) + 8];

	if (rounds < 1)
		rounds = 1;
	inst = calloc(rounds, sizeof(*inst));
	plug = calloc(rounds, sizeof(*plug));
	nonet = calloc(rounds, sizeof(*nonet));
	inst_c = calloc(rounds, sizeof(*inst_c));
	plug_off = calloc(rounds, sizeof(*plug_off));
	nonet_c = calloc(rounds, sizeof(*nonet_c));
	if (!inst || !plug || !nonet || !inst_c || !plug_off || !nonet_c)
		return 1;
	if (mk_pick_cpus(0, 1, &cpu)) {
		fprintf(stderr, "no CPU besides CPU 0 to take\n");
		return 1;
	}
	snprintf(spec, sizeof(spec), "bench0 cpus=%d memory=2M", cpu);
	snprintf(spec_nonet, sizeof(spec_nonet), "%s net=off", spec);
	/* Interleave the three so drift on a noisy host hits all alike. */
	for (i = 0; i < rounds; i++) {
		t = now_us();
		if (set_cpu_online(cpu, 0)) {
			fprintf(stderr, "cpu%d offline failed\n", cpu);
			return 1;
		}
		plug_off[i] = now_us() - t;
		if (set_cpu_online(cpu, 1)) {
			fprintf(stderr, "cpu%d online failed\n", cpu);
			return 1;
		}
		plug[i] = now_us() - t;
		inst[i] = create_destroy(spec, &inst_c[i]);
		if (inst[i] < 0) {
			fprintf(stderr, "create/destroy failed (booted with multikernel.pool=?)\n");
			return 1;
		}
		nonet[i] = create_destroy(spec_nonet, &nonet_c[i]);
		if (nonet[i] < 0) {
			fprintf(stderr, "create/destroy with net=off failed\n");
			return 1;
		}
	}
	/* Where the time goes (before the medians below sort the wholes). */
	print_split("cpu", "offline", plug_off, "online", plug, rounds);
	print_split("instance", "create", inst_c, "destroy", inst, rounds);
	print_split("instance net=off", "create", nonet_c, "destroy", nonet, rounds);
	printf("reserve: %d rounds, median us: create+destroy(1 CPU, 2M) %.0f, "
	       "cpu offline+online %.0f, ratio %.2f\n",
	       rounds, median(inst, rounds), median(plug, rounds),
	       median(inst, rounds) / median(plug, rounds));
	printf("reserve: %d rounds, median us: create+destroy(1 CPU, 2M, net=off) %.0f, "
	       "ratio to cpu offline+online %.2f\n",
	       rounds, median(nonet, rounds), median(nonet, rounds) / median(plug, rounds));
	return 0;
}
