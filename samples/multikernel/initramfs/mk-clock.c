// SPDX-License-Identifier: GPL-2.0
/*
 * mk-clock - a workload that counts and stamps time, for the host update's
 * test (scripts/guest-kexec-reboot.sh) and benchmark: a loop that reads
 * CLOCK_MONOTONIC every millisecond and keeps the longest gap between two
 * reads. Every PERIOD seconds it writes one line to the kernel log (which
 * reaches the host as the instance's console):
 *
 *   MK-CLOCK boot=BOOT_ID n=COUNT max_us=LONGEST win_us=LONGEST_SINCE_LAST
 *
 * A kernel that stopped running the loop (its CPUs paused, or rebooted)
 * shows as a long gap, or as a new boot id and a count that started over.
 *   mk-clock [PERIOD]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	long long period = (argc > 1 ? atoll(argv[1]) : 2) * 1000000LL;
	long long prev, next_report, gap, max_us = 0, win_us = 0;
	unsigned long long n = 0;
	char boot[64] = "?", line[256];
	struct timespec ms = { 0, 1000000 };
	int fd, kmsg, len;

	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY);
	if (fd >= 0) {
		len = read(fd, boot, sizeof(boot) - 1);
		boot[len > 0 ? len : 0] = 0;
		boot[strcspn(boot, "\n")] = 0;
		close(fd);
	}
	kmsg = open("/dev/kmsg", O_WRONLY);
	prev = now_us();
	next_report = prev + period;
	for (;;) {
		long long t;

		nanosleep(&ms, NULL);
		t = now_us();
		gap = t - prev;
		prev = t;
		n++;
		if (gap > win_us)
			win_us = gap;
		if (gap > max_us)
			max_us = gap;
		if (t < next_report)
			continue;
		len = snprintf(line, sizeof(line), "MK-CLOCK boot=%s n=%llu max_us=%lld win_us=%lld\n",
			       boot, n, max_us, win_us);
		if (kmsg < 0 || write(kmsg, line, len) < 0)
			fputs(line, stdout);
		win_us = 0;
		next_report = t + period;
	}
}
