// SPDX-License-Identifier: GPL-2.0
/*
 * mk-jitter: a small cyclictest, for make bench (scripts/guest-jitter-bench.sh).
 * On one CPU, at real-time priority, it sleeps to an absolute deadline every
 * INTERVAL_US microseconds and records how late each wakeup was; at the end
 * it prints:
 *
 *   MK-JITTER label=LABEL n=SAMPLES max_us=MAX p999_us=P99.9 p99_us=P99 avg_us=AVG rt=RT
 *
 *   mk-jitter LABEL SECONDS [CPU [INTERVAL_US]]
 *
 * CPU: the CPU to run on (default: where it starts); INTERVAL_US: 1000.
 * Without the right to SCHED_FIFO or to lock memory it says so and goes on,
 * with rt=0 (1 otherwise).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Latencies in whole microseconds, 0 .. BUCKETS - 1; the last bucket holds the rest. */
#define BUCKETS 100000

static unsigned long long hist[BUCKETS];

static long long ns_of(const struct timespec *t)
{
	return t->tv_sec * 1000000000LL + t->tv_nsec;
}

/* The smallest latency that `part` of the n samples do not exceed (nearest rank). */
static long percentile(unsigned long long n, double part)
{
	double rank = n * part;
	unsigned long long want = (unsigned long long)rank, seen = 0;
	long us;

	if (want < rank)
		want++;

	for (us = 0; us < BUCKETS; us++) {
		seen += hist[us];
		if (seen >= want && seen)
			return us;
	}
	return BUCKETS - 1;
}

int main(int argc, char **argv)
{
	const char *label = argc > 1 ? argv[1] : "?";
	int secs = argc > 2 ? atoi(argv[2]) : 10;
	long interval = argc > 4 ? atol(argv[4]) : 1000;
	struct sched_param sp = { .sched_priority = 80 };
	unsigned long long n = 0, sum = 0;
	long long max = 0, late, end;
	struct timespec next, now;
	char line[256];
	cpu_set_t set;

	int rt = 1;

	if (secs < 1 || interval < 50 || interval > 1000000) {
		fprintf(stderr, "usage: mk-jitter LABEL SECONDS [CPU [INTERVAL_US]]\n");
		return 2;
	}
	if (argc > 3) {
		CPU_ZERO(&set);
		CPU_SET(atoi(argv[3]), &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			perror("mk-jitter: sched_setaffinity");
			return 1;
		}
	}
	if (mlockall(MCL_CURRENT | MCL_FUTURE)) {
		perror("mk-jitter: mlockall (going on)");
		rt = 0;
	}
	if (sched_setscheduler(0, SCHED_FIFO, &sp)) {
		perror("mk-jitter: SCHED_FIFO (going on)");
		rt = 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &next);
	end = ns_of(&next) + secs * 1000000000LL;
	for (;;) {
		next.tv_nsec += interval * 1000;
		while (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		/* Interrupted by a signal: sleep on to the same deadline. */
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		clock_gettime(CLOCK_MONOTONIC, &now);
		late = (ns_of(&now) - ns_of(&next)) / 1000;
		if (late < 0)
			late = 0;
		hist[late < BUCKETS ? late : BUCKETS - 1]++;
		sum += late;
		n++;
		if (late > max)
			max = late;
		if (ns_of(&now) >= end)
			break;
	}
	snprintf(line, sizeof(line),
		 "MK-JITTER label=%s n=%llu max_us=%lld p999_us=%ld p99_us=%ld avg_us=%.1f rt=%d\n",
		 label, n, max, percentile(n, 0.999), percentile(n, 0.99), (double)sum / n, rt);
	fputs(line, stdout);
	return 0;
}
