// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark (make bench, not a test): time from "start" to state "running"
 * of an instance booting the sample initramfs, median of ROUNDS starts
 * (kill between them). scripts/bench.sh prints it beside a cold QEMU boot of
 * the same kernel and initramfs to its init, measured in the same run.
 * Then, with the sample init answering a stop (mk_sample=graceful), the
 * graceful stop ("stop" to "stopped", once its init is up) and the restart
 * ("restart" to "running" again), medians of ROUNDS each.
 *
 *   spawn_bench [ROUNDS]   (needs multikernel.pool=, a CPU besides CPU 0 (the
 *                           highest is taken), $MK_KERNEL_IMAGE, $MK_INITRAMFS)
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
#include "mk_instance.h"

static const char cmdline[] = "console=ttyS1 kunit.enable=0 panic=0 quiet";

/* loglevel=6: what its init says through /dev/kmsg reaches the console log. */
static const char graceful[] = "console=ttyS1 kunit.enable=0 panic=0 loglevel=6 mk_sample=graceful";

static double now_ms(void)
{
	return clock_s(CLOCK_MONOTONIC) * 1e3;
}

/* Polls NAME's state every 10 ms until it is @want; ms waited, or -1 (said why). */
static double wait_for(const char *name, const char *want, double ms)
{
	double start = now_ms();
	char buf[64];

	do {
		state_of(name, buf, sizeof(buf));
		if (!strcmp(buf, want))
			return now_ms() - start;
		usleep(10000);
	} while (now_ms() - start < ms);
	fprintf(stderr, "spawn_bench: %s is %s", name, buf);
	return -1;
}

/*
 * Waits until the sample init of NAME's current run said it answers a stop:
 * its console log shows the marker after the last "up" line of an init.
 */
static bool init_ready(const char *name)
{
	static char buf[8192];
	double deadline = now_ms() + 60000;

	do {
		char *up = NULL;

		instance_file(name, "console", buf, sizeof(buf));
		for (char *at = strstr(buf, "MULTIKERNEL-SAMPLE-INIT up:"); at;
		     at = strstr(at + 1, "MULTIKERNEL-SAMPLE-INIT up:"))
			up = at;
		if (up && strstr(up, "MULTIKERNEL-SAMPLE-INIT stop handling ready"))
			return true;
		usleep(20000);
	} while (now_ms() < deadline);
	fprintf(stderr, "spawn_bench: %s's init did not get ready\n", name);
	return false;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 3, i, ret, cpu;
	double t[16], start, deadline;
	char buf[64], spec[64];

	if (rounds < 1 || rounds > 16)
		rounds = 3;
	if (mk_pick_cpus(0, 1, &cpu)) {
		fprintf(stderr, "spawn_bench: no CPU besides CPU 0 for the instance\n");
		return 1;
	}
	mk_remove("bench1");
	snprintf(spec, sizeof(spec), "bench1 cpus=%d memory=256M", cpu);
	if (write_str(MK "/create", spec)) {
		fprintf(stderr, "spawn_bench: cannot create an instance on CPU %d\n", cpu);
		return 1;
	}
	ret = load_into("bench1", cmdline, sizeof(cmdline));
	if (ret) {
		fprintf(stderr, "spawn_bench: load failed: %s\n", strerror(-ret));
		return 1;
	}
	for (i = 0; i < rounds; i++) {
		start = now_ms();
		if (control("bench1", "start"))
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
		control("bench1", "kill");
	}
	printf("spawn: %d rounds, median start-to-running ms %.0f\n", rounds, median(t, rounds));
	ret = load_into("bench1", graceful, sizeof(graceful));
	if (ret) {
		fprintf(stderr, "spawn_bench: load failed: %s\n", strerror(-ret));
		return 1;
	}
	if (control("bench1", "start") || wait_for("bench1", "running\n", 90000) < 0)
		return 1;
	for (i = 0; i < rounds; i++) {
		if (!init_ready("bench1"))
			return 1;
		start = now_ms();
		if (control("bench1", "stop") || wait_for("bench1", "stopped\n", 60000) < 0)
			return 1;
		t[i] = now_ms() - start;
		if (control("bench1", "start") || wait_for("bench1", "running\n", 90000) < 0)
			return 1;
	}
	printf("stop: %d rounds, median stop-to-stopped ms %.0f\n", rounds, median(t, rounds));
	for (i = 0; i < rounds; i++) {
		if (!init_ready("bench1"))
			return 1;
		start = now_ms();
		if (control("bench1", "restart") || wait_for("bench1", "running\n", 90000) < 0)
			return 1;
		t[i] = now_ms() - start;
	}
	printf("restart: %d rounds, median restart-to-running ms %.0f\n", rounds, median(t, rounds));
	control("bench1", "kill");
	write_str(MK "/destroy", "bench1");
	return 0;
}
