// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark (make bench, not a test): the inter-kernel channel against the
 * same exchanges inside one kernel, measured in the same VM:
 *
 * - round trip: instances/NAME/ping (host kernel -> instance kernel -> host
 *   kernel) with 64-byte and 4 KiB payloads, beside a
 *   smp_call_function_single() round trip to an idle host CPU
 *   (/sys/kernel/multikernel/cpu_call): both wake an idle CPU with an IPI
 *   and spin for the answer. The two are sampled in turn in one loop of
 *   ROUNDS pairs, so drift on a noisy host hits both alike; 5 such runs,
 *   each giving the ratio of the medians, printed with their median and
 *   spread (the goal holds in every run or not at all);
 * - stream: 4 KiB messages written through /dev/mk-NAME to the instance's
 *   discard service (a final ping proves they were all drained), beside an
 *   in-kernel memcpy of 4 KiB.
 *
 *   ikc_bench [ROUNDS]   (needs multikernel.pool=, a CPU besides CPU 0 (the
 *                         highest is taken), $MK_KERNEL_IMAGE, $MK_INITRAMFS)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/multikernel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_util.h"
#include "mk_instance.h"

#define NAME "bench2"
#define INST MK "/instances/" NAME
#define STREAM_MESSAGES 4000

static const char cmdline[] = "console=ttyS1 kunit.enable=0 panic=0 quiet";

/* The value after `key` in the baseline text, -1 if missing. */
static double field(const char *text, const char *key)
{
	const char *at = strstr(text, key);

	return at ? atof(at + strlen(key) + 1) : -1;
}

#define RUNS 5

/*
 * RUNS runs of ROUNDS pairs: a ping of `size` bytes, then a call round trip
 * to an idle CPU. Prints each run's ratio of medians; -1 on error.
 */
static int round_trips(const char *size, int rounds)
{
	static double ping[1001], call[1001];
	double ratio[RUNS], ping_ns[RUNS], call_ns[RUNS];
	char buf[64];
	double mid;
	int run, i, tries;

	if (write_str(INST "/ping", size))
		return -1;
	for (run = 0; run < RUNS; run++) {
		for (i = 0; i < rounds; i++) {
			if (read_file(INST "/ping", buf, sizeof(buf)) <= 0)
				return -1;
			ping[i] = atof(buf);
			/* ENXIO: no other CPU was idle at that moment; read again. */
			for (tries = 0; read_file(MK "/cpu_call", buf, sizeof(buf)) <= 0; tries++) {
				if (tries == 1000)
					return -1;
				usleep(100);
			}
			call[i] = atof(buf);
		}
		ping_ns[run] = median(ping, rounds);
		call_ns[run] = median(call, rounds);
		if (ping_ns[run] <= 0 || call_ns[run] <= 0)
			return -1;
		ratio[run] = ping_ns[run] / call_ns[run];
	}
	/* Sorts: ratio[0] is the lowest, ratio[RUNS - 1] the highest. */
	mid = median(ratio, RUNS);
	printf("ikc: round trip %s B, %d runs of %d interleaved pairs: ping %.0f ns, call to an idle CPU %.0f ns (medians of the runs); ratio median %.2f, lowest %.2f, highest %.2f (goal <= 1.5 in every run: %s)\n",
	       size, RUNS, rounds, median(ping_ns, RUNS), median(call_ns, RUNS),
	       mid, ratio[0], ratio[RUNS - 1], ratio[RUNS - 1] <= 1.5 ? "met" : "not met");
	return 0;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 201, i, fd;
	static struct { struct mk_ikc_msg h; unsigned char data[4096]; } m;
	double copy[5], copy_ns, t0, secs, mbs, copy_mbs;
	char buf[64], base[512];
	cpu_set_t cpu0;

	if (rounds < 1 || rounds > 1001)
		rounds = 201;
	if (start_bench_instance("ikc_bench", NAME, cmdline, sizeof(cmdline)))
		return 1;
	/* Both round trips from CPU 0, so they start from the same CPU each time. */
	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	if (sched_setaffinity(0, sizeof(cpu0), &cpu0))
		fprintf(stderr, "ikc_bench: not pinned to CPU 0 (%s)\n", strerror(errno));
	if (round_trips("64", rounds) || round_trips("4096", rounds)) {
		fprintf(stderr, "ikc_bench: a round trip failed\n");
		return 1;
	}
	/* Each read of the file measures anew. */
	for (i = 0; i < 5; i++) {
		if (read_file(MK "/ikc_baseline", base, sizeof(base)) <= 0)
			base[0] = '\0';
		copy[i] = field(base, "memcpy_4096_ns");
	}
	copy_ns = median(copy, 5);
	if (copy_ns <= 0) {
		fprintf(stderr, "ikc_bench: the memcpy baseline failed\n");
		return 1;
	}

	fd = open("/dev/mk-" NAME, O_WRONLY);
	if (fd < 0)
		return 1;
	m.h.port = MK_IKC_PORT_DISCARD;
	m.h.len = sizeof(m.data);
	t0 = clock_s(CLOCK_MONOTONIC);
	for (i = 0; i < STREAM_MESSAGES; i++)
		if (write(fd, &m, sizeof(m)) != sizeof(m)) {
			fprintf(stderr, "ikc_bench: stream write: %s\n", strerror(errno));
			return 1;
		}
	/* Ordered channel: the answer to this ping comes after every message was drained. */
	if (read_file(INST "/ping", buf, sizeof(buf)) <= 0)
		return 1;
	secs = clock_s(CLOCK_MONOTONIC) - t0;
	close(fd);
	mbs = STREAM_MESSAGES * 4096.0 / secs / 1e6;
	copy_mbs = 4096.0 / copy_ns * 1e3;
	printf("ikc: stream of 4 KiB messages %.1f MB/s, in-kernel memcpy of 4 KiB %.1f MB/s, ratio %.3f\n",
	       mbs, copy_mbs, mbs / copy_mbs);
	control(NAME, "kill");
	write_str(MK "/destroy", NAME);
	return 0;
}
