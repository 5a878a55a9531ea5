// SPDX-License-Identifier: GPL-2.0
/*
 * mk_tsc - prints "TSC KHZ": the time stamp counter now, and its rate
 * measured against CLOCK_MONOTONIC over 200 ms. The TSC goes on across a
 * kexec (the machine is not reset), so two readings in two kernels give the
 * time between them (scripts/guest-update-bench.sh: kexec -e to the next
 * kernel's user space).
 */
#include <stdio.h>
#include <time.h>
#include <x86intrin.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(void)
{
	struct timespec pause = { 0, 200000000 };
	unsigned long long t0, t1;
	double n0, n1;

	n0 = now_ns();
	t0 = __rdtsc();
	nanosleep(&pause, NULL);
	t1 = __rdtsc();
	n1 = now_ns();
	printf("%llu %.0f\n", t1, (t1 - t0) / (n1 - n0) * 1e6);
	return 0;
}
