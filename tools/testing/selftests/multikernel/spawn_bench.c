// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark (make bench, not a test): a load and a start of an instance
 * booting the sample initramfs, ROUNDS times (kill between them): the
 * kexec_file_load(2) itself, then the start in phases:
 * "start" to state "running" (the kernel reported in), "start" to its init
 * running (the sample init's "up" line of this boot in the console log), and
 * the instance's own clock when its init ran (the line says): what comes
 * before is entering the kernel and, for a compressed kernel, decompressing
 * it. Each round loads afresh, as a user's load and start does: a start
 * after a kill writes the image again first (spawn.rst, "Where a start's
 * time goes"). Once with the kernel unpacked at load (the default), once left
 * compressed (/sys/kernel/multikernel/unpack 0). scripts/bench.sh prints them
 * beside a cold QEMU boot of the same kernel and initramfs to its init,
 * measured in the same run. Then, with the sample init answering a stop
 * (mk_sample=graceful), the graceful stop ("stop" to "stopped", once its init
 * is up) and the restart ("restart" to "running" again). Each: the median,
 * and the spread (lowest and highest).
 *
 *   spawn_bench [ROUNDS]   (5 by default; needs multikernel.pool=, a CPU
 *                           besides CPU 0 (the highest is taken),
 *                           $MK_KERNEL_IMAGE, $MK_INITRAMFS)
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

/*
 * loglevel=5 rather than quiet (4): the init's "up" line, written to /dev/kmsg at
 * the default level 4, reaches the console log; kernel info messages do not.
 */
static const char cmdline[] = "console=ttyS1 kunit.enable=0 panic=0 loglevel=5";

/* loglevel=6: what its init says through /dev/kmsg reaches the console log. */
static const char graceful[] = "console=ttyS1 kunit.enable=0 panic=0 loglevel=6 mk_sample=graceful";

static double now_ms(void)
{
	return clock_s(CLOCK_MONOTONIC) * 1e3;
}

/* "median M (lowest L, highest H)" of n values (sorts them). */
static const char *spread(double *v, int n)
{
	static char buf[96];
	double m = median(v, n);

	snprintf(buf, sizeof(buf), "%.0f (%.0f-%.0f)", m, v[0], v[n - 1]);
	return buf;
}

/*
 * The sample init's last "up" line in NAME's console log: its boot id and
 * its uptime in ms. False if there is none.
 */
static bool last_up(const char *name, char *boot, size_t size, double *uptime_ms)
{
	static char buf[16384];
	char *up = NULL, *at, id[64];
	double s;

	instance_file(name, "console", buf, sizeof(buf));
	for (at = strstr(buf, "MULTIKERNEL-SAMPLE-INIT up:"); at;
	     at = strstr(at + 1, "MULTIKERNEL-SAMPLE-INIT up:"))
		up = at;
	if (!up)
		return false;
	at = strstr(up, " boot ");
	if (!at || sscanf(at, " boot %63s uptime %lf", id, &s) != 2)
		return false;
	snprintf(boot, size, "%s", id);
	*uptime_ms = s * 1e3;
	return true;
}

/*
 * ROUNDS loads and starts of bench1 (created), the kernel unpacked at load or
 * not (@unpack): load time, start-to-running, start-to-init and the
 * instance's clock at init, printed as "spawn (WHAT): ...". -1 on failure.
 */
static int spawn_rounds(const char *what, bool unpack, int rounds)
{
	double running[16], init[16], clock[16], before[16], load[16], start, deadline, uptime;
	char buf[64], boot[64] = "", last[64] = "";
	int i, ret;

	for (i = 0; i < rounds; i++) {
		if (write_str(MK "/unpack", unpack ? "1" : "0"))
			return -1;
		start = now_ms();
		ret = load_into("bench1", cmdline, sizeof(cmdline));
		load[i] = now_ms() - start;
		write_str(MK "/unpack", "1");
		if (ret) {
			fprintf(stderr, "spawn_bench: load failed: %s\n", strerror(-ret));
			return -1;
		}
		last_up("bench1", last, sizeof(last), &uptime);
		start = now_ms();
		if (control("bench1", "start"))
			return -1;
		deadline = start + 90000;
		do {
			read_file(MK "/instances/bench1/state", buf, sizeof(buf));
			if (strcmp(buf, "starting\n"))
				break;
			usleep(2000);
		} while (now_ms() < deadline);
		running[i] = now_ms() - start;
		if (strcmp(buf, "running\n")) {
			fprintf(stderr, "spawn_bench: instance %s", buf);
			return -1;
		}
		/* This boot's "up" line: a boot id the console has not shown last. */
		while (now_ms() < deadline &&
		       (!last_up("bench1", boot, sizeof(boot), &uptime) || !strcmp(boot, last)))
			usleep(2000);
		init[i] = now_ms() - start;
		if (!strcmp(boot, last)) {
			fprintf(stderr, "spawn_bench: %s's init did not say it is up\n", what);
			return -1;
		}
		clock[i] = uptime;
		before[i] = init[i] - uptime;
		control("bench1", "kill");
	}
	printf("spawn (%s): %d rounds, load ms %s", what, rounds, spread(load, rounds));
	printf(", start-to-running ms %s", spread(running, rounds));
	printf(", start-to-init ms %s", spread(init, rounds));
	printf(", instance clock at init ms %s", spread(clock, rounds));
	printf(", before its clock ms %s\n", spread(before, rounds));
	return 0;
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
	int rounds = argc > 1 ? atoi(argv[1]) : 5, i, ret, cpu;
	double t[16], start;
	char spec[64];

	if (rounds < 1 || rounds > 16)
		rounds = 5;
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
	/* The kernel unpacked at load (the default), then left compressed. */
	if (spawn_rounds("unpacked", true, rounds) || spawn_rounds("compressed", false, rounds))
		return 1;
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
	printf("stop: %d rounds, stop-to-stopped ms %s\n", rounds, spread(t, rounds));
	for (i = 0; i < rounds; i++) {
		if (!init_ready("bench1"))
			return 1;
		start = now_ms();
		if (control("bench1", "restart") || wait_for("bench1", "running\n", 90000) < 0)
			return 1;
		t[i] = now_ms() - start;
	}
	printf("restart: %d rounds, restart-to-running ms %s\n", rounds, spread(t, rounds));
	control("bench1", "kill");
	write_str(MK "/destroy", "bench1");
	return 0;
}
