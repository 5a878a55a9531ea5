// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace tests of the Rust kernel::sysfs abstraction through its sample
 * module, samples/rust/rust_sysfs.rs: file modes, the store path and its
 * errors, and removal while files are open or in use.
 *
 * The module is loaded from $MK_MODULES_DIR/samples/rust/rust_sysfs.ko
 * (scripts/guest-check.sh sets it); without it the tests are skipped.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "mk_util.h"

#define DIR_PATH "/sys/kernel/rust_sysfs"
#define MODULE_NAME "rust_sysfs"

static int load_module(void)
{
	const char *dir = getenv("MK_MODULES_DIR");
	char path[4096];
	int fd, ret;

	if (!dir)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/samples/rust/rust_sysfs.ko", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, "", 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

static int unload_module(void)
{
	return syscall(SYS_delete_module, MODULE_NAME, O_NONBLOCK) ? -errno : 0;
}

FIXTURE(sample) {
	bool loaded;
};

FIXTURE_SETUP(sample)
{
	int ret;

	unload_module();
	ret = load_module();
	if (ret == -ENOENT)
		SKIP(return, "rust_sysfs.ko not found (set MK_MODULES_DIR)");
	ASSERT_EQ(0, ret) TH_LOG("loading rust_sysfs.ko: %s", strerror(-ret));
	self->loaded = true;
}

FIXTURE_TEARDOWN(sample)
{
	if (self->loaded)
		unload_module();
}

/* Files, subdirectories and modes are those the sample declares. */
TEST_F(sample, layout_and_modes)
{
	char list[512];

	ASSERT_EQ(0, list_dir(DIR_PATH, list, sizeof(list)));
	EXPECT_STREQ("child reset secret stats value", list);
	EXPECT_EQ(0644U, mode_of(DIR_PATH "/value"));
	EXPECT_EQ(0200U, mode_of(DIR_PATH "/reset"));
	EXPECT_EQ(0400U, mode_of(DIR_PATH "/secret"));
	EXPECT_EQ(0444U, mode_of(DIR_PATH "/stats/writes"));
	EXPECT_EQ(0755U, mode_of(DIR_PATH "/child"));
	EXPECT_EQ(0755U, mode_of(DIR_PATH "/stats"));
}

/* A write reaches store, and show returns the new value. */
TEST_F(sample, store_then_show)
{
	char buf[64];

	ASSERT_EQ(2, read_file(DIR_PATH "/value", buf, sizeof(buf)));
	EXPECT_STREQ("0\n", buf);
	ASSERT_EQ(0, write_str(DIR_PATH "/value", "42\n"));
	ASSERT_GT(read_file(DIR_PATH "/value", buf, sizeof(buf)), 0);
	EXPECT_STREQ("42\n", buf);
	ASSERT_EQ(0, write_str(DIR_PATH "/value", "18446744073709551615"));
	ASSERT_GT(read_file(DIR_PATH "/value", buf, sizeof(buf)), 0);
	EXPECT_STREQ("18446744073709551615\n", buf);
	ASSERT_GT(read_file(DIR_PATH "/stats/writes", buf, sizeof(buf)), 0);
	EXPECT_STREQ("2\n", buf);
	ASSERT_GT(read_file(DIR_PATH "/secret", buf, sizeof(buf)), 0);
	EXPECT_STREQ("42\n", buf);
}

/* The errno store returns is the errno write(2) returns, and nothing changes. */
TEST_F(sample, store_errors)
{
	static const struct {
		const char *input;
		size_t len;
		int err;
	} cases[] = {
		{ "abc", 3, EINVAL },
		{ "\n", 1, EINVAL },
		{ "-1", 2, EINVAL },
		{ "1 2", 3, EINVAL },
		{ "7\0" "8", 3, EINVAL },
		{ "18446744073709551616", 20, ERANGE },
		{ "99999999999999999999", 20, ERANGE },
	};
	char buf[64], junk[4096];
	unsigned int i;

	ASSERT_EQ(0, write_str(DIR_PATH "/value", "5"));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EXPECT_EQ(-cases[i].err, write_file(DIR_PATH "/value", cases[i].input,
						    cases[i].len))
			TH_LOG("input %u", i);
	}
	memset(junk, '7', sizeof(junk));
	/* The longest write store sees (PAGE_SIZE - 1 bytes), refused by the parser. */
	EXPECT_EQ(-EINVAL, write_file(DIR_PATH "/value", junk, sizeof(junk) - 1));
	EXPECT_EQ(-EINVAL, write_str(DIR_PATH "/reset", "2"));
	ASSERT_GT(read_file(DIR_PATH "/value", buf, sizeof(buf)), 0);
	EXPECT_STREQ("5\n", buf);
	ASSERT_GT(read_file(DIR_PATH "/stats/writes", buf, sizeof(buf)), 0);
	EXPECT_STREQ("1\n", buf);

	ASSERT_EQ(0, write_str(DIR_PATH "/reset", "1\n"));
	ASSERT_GT(read_file(DIR_PATH "/value", buf, sizeof(buf)), 0);
	EXPECT_STREQ("0\n", buf);
}

/*
 * Writes of a page or more fail with E2BIG before store runs: sysfs would cut
 * them to a page and report a short write. A valid number padded past a page
 * must not be taken in part.
 */
TEST_F(sample, oversized_write)
{
	char big[8192], buf[64];

	memset(big, '1', sizeof(big));
	EXPECT_EQ(-E2BIG, write_file(DIR_PATH "/value", big, sizeof(big)));
	EXPECT_EQ(-E2BIG, write_file(DIR_PATH "/value", big, 4096));
	ASSERT_GT(read_file(DIR_PATH "/value", buf, sizeof(buf)), 0);
	EXPECT_STREQ("0\n", buf);
	ASSERT_GT(read_file(DIR_PATH "/stats/writes", buf, sizeof(buf)), 0);
	EXPECT_STREQ("0\n", buf);
}

/* Opening against the mode fails, even for root. */
TEST_F(sample, modes_enforced)
{
	int fd;

	fd = open(DIR_PATH "/stats/writes", O_WRONLY);
	EXPECT_EQ(-1, fd);
	EXPECT_EQ(EACCES, errno);
	fd = open(DIR_PATH "/reset", O_RDONLY);
	EXPECT_EQ(-1, fd);
	EXPECT_EQ(EACCES, errno);
}

/* Removing the directory under an open file: later I/O fails cleanly. */
TEST_F(sample, remove_while_open)
{
	char buf[64];
	int fd;

	fd = open(DIR_PATH "/value", O_RDWR);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, unload_module());
	self->loaded = false;
	EXPECT_EQ(-1, pread(fd, buf, sizeof(buf), 0));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-1, pwrite(fd, "1", 1, 0));
	EXPECT_EQ(ENODEV, errno);
	close(fd);
	EXPECT_EQ((mode_t)-1, mode_of(DIR_PATH));
}

/*
 * Create and remove the directory 20 times while two processes read and write
 * its files as fast as they can: every operation either works or fails with
 * ENOENT/ENODEV, and the kernel log stays clean (make check looks).
 */
TEST_F(sample, churn_under_load)
{
	pid_t pids[2];
	int i, status, bad = 0;

	for (i = 0; i < 2; i++) {
		pids[i] = fork();
		ASSERT_GE(pids[i], 0);
		if (pids[i] == 0) {
			char buf[64];

			for (;;) {
				ssize_t r = i ? write_str(DIR_PATH "/value", "9")
					      : read_file(DIR_PATH "/value", buf, sizeof(buf));
				if (r < 0 && r != -ENOENT && r != -ENODEV)
					_exit(1);
			}
		}
	}
	for (i = 0; i < 20; i++) {
		int ret = unload_module();

		/* EAGAIN/EBUSY: a reader held a reference at that instant. */
		if (ret && ret != -EAGAIN && ret != -EBUSY && ret != -EWOULDBLOCK)
			bad++;
		ret = load_module();
		if (ret && ret != -EEXIST)
			bad++;
	}
	for (i = 0; i < 2; i++) {
		kill(pids[i], SIGKILL);
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		EXPECT_TRUE(WIFSIGNALED(status)) TH_LOG("worker %d saw an unexpected error", i);
	}
	EXPECT_EQ(0, bad);
}

TEST_HARNESS_MAIN
