// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark (make bench, not a test): create+destroy of a 1-CPU instance,
 * beside a plain offline+online cycle of the same CPU measured in the same
 * run, since an instance's cost is mostly that hotplug cycle; and the same
 * with net=off (no network device mkvN), which shows what the device costs.
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

/* One create and destroy of instance bench0 from spec: microseconds, or -1. */
static double create_destroy(const char *spec)
{
	double t = now_us();

	if (write_str(MK "/create", spec) || write_str(MK "/destroy", "bench0"))
		return -1;
	return now_us() - t;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 50, i, cpu;
	double *inst, *nonet, *plug, t;
	char spec[64], spec_nonet[sizeof(spec) + 8];

	if (rounds < 1)
		rounds = 1;
	inst = calloc(rounds, sizeof(*inst));
	plug = calloc(rounds, sizeof(*plug));
	nonet = calloc(rounds, sizeof(*nonet));
	if (!inst || !plug || !nonet)
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
		if (set_cpu_online(cpu, 0) || set_cpu_online(cpu, 1)) {
			fprintf(stderr, "cpu%d offline/online failed\n", cpu);
			return 1;
		}
		plug[i] = now_us() - t;
		inst[i] = create_destroy(spec);
		if (inst[i] < 0) {
			fprintf(stderr, "create/destroy failed (booted with multikernel.pool=?)\n");
			return 1;
		}
		nonet[i] = create_destroy(spec_nonet);
		if (nonet[i] < 0) {
			fprintf(stderr, "create/destroy with net=off failed\n");
			return 1;
		}
	}
	printf("reserve: %d rounds, median us: create+destroy(1 CPU, 2M) %.0f, "
	       "cpu offline+online %.0f, ratio %.2f\n",
	       rounds, median(inst, rounds), median(plug, rounds),
	       median(inst, rounds) / median(plug, rounds));
	printf("reserve: %d rounds, median us: create+destroy(1 CPU, 2M, net=off) %.0f, "
	       "ratio to cpu offline+online %.2f\n",
	       rounds, median(nonet, rounds), median(nonet, rounds) / median(plug, rounds));
	return 0;
}
