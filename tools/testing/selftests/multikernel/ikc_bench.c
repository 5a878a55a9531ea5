// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark (make bench, not a test): the inter-kernel channel against the
 * same exchanges inside one kernel, measured in the same VM:
 *
 * - round trip: instances/NAME/ping (host kernel -> instance kernel -> host
 *   kernel) with 64-byte and 4 KiB payloads, median of ROUNDS, beside a
 *   smp_call_function_single() round trip to another host CPU
 *   (/sys/kernel/multikernel/ikc_baseline);
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

/* Median of ROUNDS pings of `size` bytes, in ns; -1 on error. */
static double ping_median(const char *size, int rounds)
{
	double t[1001];
	char buf[64];
	int i;

	if (write_str(INST "/ping", size))
		return -1;
	for (i = 0; i < rounds; i++) {
		if (read_file(INST "/ping", buf, sizeof(buf)) <= 0)
			return -1;
		t[i] = atof(buf);
	}
	return median(t, rounds);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 201, i, fd;
	static struct { struct mk_ikc_msg h; unsigned char data[4096]; } m;
	double rtt64, rtt4k, call[5], copy[5], call_ns, copy_ns, t0, secs, mbs, copy_mbs;
	char buf[64], base[512];

	if (rounds < 1 || rounds > 1001)
		rounds = 201;
	if (start_bench_instance("ikc_bench", NAME, cmdline, sizeof(cmdline)))
		return 1;
	rtt64 = ping_median("64", rounds);
	rtt4k = ping_median("4096", rounds);
	/* Each read of the file measures anew: one read gives both numbers of a round. */
	for (i = 0; i < 5; i++) {
		if (read_file(MK "/ikc_baseline", base, sizeof(base)) <= 0)
			base[0] = '\0';
		call[i] = field(base, "cpu_call_round_trip_ns");
		copy[i] = field(base, "memcpy_4096_ns");
	}
	call_ns = median(call, 5);
	copy_ns = median(copy, 5);
	if (rtt64 <= 0 || rtt4k <= 0 || call_ns <= 0 || copy_ns <= 0) {
		fprintf(stderr, "ikc_bench: a measurement failed\n");
		return 1;
	}
	printf("ikc: round trip 64 B %.0f ns, in-kernel cross-CPU call round trip %.0f ns, ratio %.2f (goal <= 1.5)\n",
	       rtt64, call_ns, rtt64 / call_ns);
	printf("ikc: round trip 4 KiB %.0f ns, in-kernel cross-CPU call round trip %.0f ns, ratio %.2f (goal <= 1.5)\n",
	       rtt4k, call_ns, rtt4k / call_ns);

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
