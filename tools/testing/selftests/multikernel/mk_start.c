// SPDX-License-Identifier: GPL-2.0
/*
 * mk_start NAME SPEC CMDLINE [TEXT] - create instance NAME from SPEC (the
 * create line without the name, e.g. "cpus=3 memory=256M"), load
 * $MK_KERNEL_IMAGE and $MK_INITRAMFS with CMDLINE, start it, wait until it
 * runs and, given TEXT, until its console shows TEXT; then exit and leave it
 * running. For scenario scripts (scripts/guest-kexec-reboot.sh). Exit 0 on
 * success, 1 with a message otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_instance.h"

int main(int argc, char **argv)
{
	char spec[256], buf[8192];
	double deadline;
	int ret;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: %s NAME SPEC CMDLINE [TEXT]\n", argv[0]);
		return 1;
	}
	snprintf(spec, sizeof(spec), "%s %s", argv[1], argv[2]);
	ret = start_instance(argv[1], spec, argv[3], strlen(argv[3]) + 1);
	if (ret) {
		fprintf(stderr, "%s: start: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	if (argc == 5) {
		deadline = clock_s(CLOCK_MONOTONIC) + 60;
		do {
			instance_file(argv[1], "console", buf, sizeof(buf));
			if (strstr(buf, argv[4]))
				return 0;
			usleep(200 * 1000);
		} while (clock_s(CLOCK_MONOTONIC) < deadline);
		fprintf(stderr, "%s: console does not show \"%s\"\n", argv[1], argv[4]);
		return 1;
	}
	return 0;
}
