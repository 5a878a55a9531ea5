// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of the multikernel control tree, /sys/kernel/multikernel/, as the
 * running kernel shows it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "mk_util.h"

#define MK_ROOT "/sys/kernel/multikernel"

FIXTURE(tree) {
	bool present;
};

FIXTURE_SETUP(tree)
{
	self->present = mk_machine.present;
	MK_REQUIRE(0, 0);
}

FIXTURE_TEARDOWN(tree)
{
}

/* The root holds what the ABI document lists, and nothing else. */
TEST_F(tree, root_contents)
{
	char names[4096];
	struct stat st;

	ASSERT_EQ(0, stat(MK_ROOT, &st));
	EXPECT_TRUE(S_ISDIR(st.st_mode));
	ASSERT_EQ(0, list_dir(MK_ROOT, names, sizeof(names)));
	EXPECT_STREQ("cpu_call create destroy doorbells ikc_baseline instances pool unpack version", names);
}

/* version: one line, MAJOR.MINOR.PATCH, readable by all, root-owned. */
TEST_F(tree, version_format)
{
	regex_t re;
	char buf[4096];
	struct stat st;
	ssize_t len;

	len = read_file(MK_ROOT "/version", buf, sizeof(buf));
	ASSERT_GT(len, 0) TH_LOG("read version: %s", strerror((int)-len));
	ASSERT_EQ(0, regcomp(&re, "^[0-9]+\\.[0-9]+\\.[0-9]+\n$", REG_EXTENDED | REG_NOSUB));
	EXPECT_EQ(0, regexec(&re, buf, 0, NULL, 0)) TH_LOG("version is '%s'", buf);
	regfree(&re);

	ASSERT_EQ(0, stat(MK_ROOT "/version", &st));
	EXPECT_TRUE(S_ISREG(st.st_mode));
	EXPECT_EQ(0444U, st.st_mode & 07777);
	EXPECT_EQ(0U, st.st_uid);
	EXPECT_EQ(0U, st.st_gid);
}

/* Reading at an offset past the end returns nothing; short reads reassemble. */
TEST_F(tree, version_offsets)
{
	char whole[4096], part[4096];
	ssize_t len, n;
	int fd;

	len = read_file(MK_ROOT "/version", whole, sizeof(whole));
	ASSERT_GT(len, 1);
	fd = open(MK_ROOT "/version", O_RDONLY);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(0, pread(fd, part, sizeof(part), len));
	n = pread(fd, part, 1, 1);
	EXPECT_EQ(1, n);
	EXPECT_EQ(whole[1], part[0]);
	close(fd);
}

/* A read-only file cannot be opened for writing, not even by root. */
TEST_F(tree, version_read_only)
{
	int fd = open(MK_ROOT "/version", O_WRONLY);

	EXPECT_EQ(-1, fd);
	EXPECT_EQ(EACCES, errno);
	if (fd >= 0)
		close(fd);
}

/* instances/ is a directory, empty while no instance exists. */
TEST_F(tree, instances_empty)
{
	char names[4096];
	struct stat st;

	ASSERT_EQ(0, stat(MK_ROOT "/instances", &st));
	EXPECT_TRUE(S_ISDIR(st.st_mode));
	EXPECT_EQ(0755U, st.st_mode & 07777);
	ASSERT_EQ(0, list_dir(MK_ROOT "/instances", names, sizeof(names)));
	EXPECT_STREQ("", names);
}

/* Nothing can be created in the tree by hand: sysfs directories are the kernel's. */
TEST_F(tree, no_user_files)
{
	int fd = open(MK_ROOT "/instances/foo", O_CREAT | O_WRONLY, 0600);

	EXPECT_EQ(-1, fd);
	EXPECT_EQ(-1, mkdir(MK_ROOT "/instances/foo", 0755));
	if (fd >= 0)
		close(fd);
}

TEST_HARNESS_MAIN
