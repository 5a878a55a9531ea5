// SPDX-License-Identifier: GPL-2.0
/*
 * A kernel booted without multikernel.pool=: the pool files read 0, there is
 * no pool in /proc/iomem, and creating an instance fails with ENOMEM without
 * touching any CPU; mkctl says so in words. make check runs this in a VM of
 * its own; elsewhere it skips if the kernel has a pool, or no CPU besides
 * CPU 0 to ask for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "mk_util.h"


static void read_str(const char *path, char *buf, size_t size)
{
	if (read_file(path, buf, size) < 0)
		buf[0] = '\0';
}

TEST(no_pool)
{
	char buf[4096], online[1024], after[1024], spec[64];
	FILE *f;
	int cpu;

	MK_REQUIRE(0, 1);
	read_str("/proc/cmdline", buf, sizeof(buf));
	if (strstr(buf, "multikernel.pool="))
		SKIP(return, "needs a kernel booted without multikernel.pool=, this one has it");
	/* A CPU create would take: the pool is what is missing. */
	mk_pick_cpus(0, 1, &cpu);

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

	read_str(MK_CPU "/online", online, sizeof(online));
	snprintf(spec, sizeof(spec), "kst0 cpus=%d memory=2M", cpu);
	EXPECT_EQ(-ENOMEM, write_str(MK "/create", spec));
	read_str(MK_CPU "/online", after, sizeof(after));
	EXPECT_STREQ(online, after);
	read_str(MK "/pool/total_bytes", buf, sizeof(buf));
	EXPECT_STREQ("0\n", buf);
	ASSERT_EQ(0, list_dir(MK "/instances", buf, sizeof(buf)));
	EXPECT_STREQ("", buf);
	/* Syntax is still checked first. */
	snprintf(spec, sizeof(spec), "kst0 cpus=%d", cpu);
	EXPECT_EQ(-EINVAL, write_str(MK "/create", spec));
}

/* mkctl says what to do about it (exit status 3). */
TEST(mkctl_names_the_fix)
{
	const char *mkctl = getenv("MK_MKCTL");
	char cmd[512], err[512] = "";
	FILE *p;
	int status;

	if (!mkctl || access(mkctl, X_OK))
		SKIP(return, "needs $MK_MKCTL, the built mkctl");
	snprintf(cmd, sizeof(cmd), "%s create kst0 --cpus 1 --memory 2M 2>&1", mkctl);
	p = popen(cmd, "r");
	ASSERT_NE(NULL, p);
	if (!fgets(err, sizeof(err), p))
		err[0] = '\0';
	status = pclose(p);
	EXPECT_EQ(3, WEXITSTATUS(status));
	EXPECT_STREQ("mkctl: the host was booted without multikernel.pool= (add e.g. "
		     "multikernel.pool=1G to its command line)\n", err);
}

TEST_HARNESS_MAIN
