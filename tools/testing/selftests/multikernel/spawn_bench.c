// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark (make bench, not a test): time from "start" to state "running"
 * of an instance booting the sample initramfs, median of ROUNDS starts
 * (kill between them). scripts/bench.sh prints it beside a cold QEMU boot of
 * the same kernel and initramfs to its init, measured in the same run.
 *
 *   spawn_bench [ROUNDS]   (needs multikernel.pool=, CPU 3, $MK_KERNEL_IMAGE,
 *                           $MK_INITRAMFS)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kexec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mk_util.h"


static const char cmdline[] = "console=ttyS1 kunit.enable=0 panic=0 quiet";

static double now_ms(void)
{
	return clock_s(CLOCK_MONOTONIC) * 1e3;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 3, i, kfd, ifd, id;
	double t[16], start, deadline;
	char buf[64];

	if (rounds < 1 || rounds > 16)
		rounds = 3;
	write_str(MK "/destroy", "bench1");
	if (write_str(MK "/create", "bench1 cpus=3 memory=256M") ||
	    read_file(MK "/instances/bench1/id", buf, sizeof(buf)) <= 0) {
		fprintf(stderr, "spawn_bench: cannot create an instance on CPU 3\n");
		return 1;
	}
	id = atoi(buf);
	kfd = open(getenv("MK_KERNEL_IMAGE") ?: "", O_RDONLY);
	ifd = open(getenv("MK_INITRAMFS") ?: "", O_RDONLY);
	if (kfd < 0 || ifd < 0 ||
	    syscall(SYS_kexec_file_load, kfd, ifd, sizeof(cmdline), cmdline,
		    KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_MK_ID(id))) {
		fprintf(stderr, "spawn_bench: load failed: %s\n", strerror(errno));
		return 1;
	}
	for (i = 0; i < rounds; i++) {
		start = now_ms();
		if (write_str(MK "/instances/bench1/control", "start"))
			return 1;
		deadline = start + 90000;
		do {
			read_file(MK "/instances/bench1/state", buf, sizeof(buf));
			if (strcmp(buf, "starting\n"))
				break;
			usleep(10000);
		} while (now_ms() < deadline);
		t[i] = now_ms() - start;
		if (strcmp(buf, "running\n")) {
			fprintf(stderr, "spawn_bench: instance %s", buf);
			return 1;
		}
		write_str(MK "/instances/bench1/control", "kill");
	}
	write_str(MK "/destroy", "bench1");
	printf("spawn: %d rounds, median start-to-running ms %.0f\n", rounds, median(t, rounds));
	return 0;
}
