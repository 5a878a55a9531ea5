// SPDX-License-Identifier: GPL-2.0
/*
 * A kernel booted without multikernel.pool=: the pool files read 0, there is
 * no pool in /proc/iomem, and creating an instance fails with ENOMEM without
 * touching any CPU. make check runs this in a VM of its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kselftest_harness.h"
#include "mk_util.h"


static void read_str(const char *path, char *buf, size_t size)
{
	if (read_file(path, buf, size) < 0)
		buf[0] = '\0';
}

TEST(no_pool)
{
	char buf[4096], online[64], after[64];
	FILE *f;

	if (mode_of(MK "/create") == (mode_t)-1)
		SKIP(return, "kernel without CONFIG_MULTIKERNEL");
	read_str("/proc/cmdline", buf, sizeof(buf));
	if (strstr(buf, "multikernel.pool="))
		SKIP(return, "booted with multikernel.pool=");

	read_str(MK "/pool/total_bytes", buf, sizeof(buf));
	EXPECT_STREQ("0\n", buf);
	read_str(MK "/pool/free_bytes", buf, sizeof(buf));
	EXPECT_STREQ("0\n", buf);
	read_str(MK "/pool/largest_free_bytes", buf, sizeof(buf));
	EXPECT_STREQ("0\n", buf);

	f = fopen("/proc/iomem", "r");
	ASSERT_NE(NULL, f);
	while (fgets(buf, sizeof(buf), f))
		EXPECT_EQ(NULL, strstr(buf, "Multikernel pool"));
	fclose(f);

	read_str("/sys/devices/system/cpu/online", online, sizeof(online));
	EXPECT_EQ(-ENOMEM, write_str(MK "/create", "kst0 cpus=1 memory=2M"));
	read_str("/sys/devices/system/cpu/online", after, sizeof(after));
	EXPECT_STREQ(online, after);
	read_str(MK "/pool/total_bytes", buf, sizeof(buf));
	EXPECT_STREQ("0\n", buf);
	ASSERT_EQ(0, list_dir(MK "/instances", buf, sizeof(buf)));
	EXPECT_STREQ("", buf);
	/* Syntax is still checked first. */
	EXPECT_EQ(-EINVAL, write_str(MK "/create", "kst0 cpus=1"));
}

TEST_HARNESS_MAIN
