// SPDX-License-Identifier: GPL-2.0
/*
 * x86 spawn (experimental): start a loaded kernel on an instance's CPU and
 * see it report in, while a host workload keeps running and the host's
 * clocks keep pace. The instance's console is the VM's second serial port;
 * make check reads it (the sample init's marker, the CPUs and memory it
 * saw) after the VM is gone.
 *
 * A started instance cannot be stopped yet (kill comes later), so this runs
 * in a VM of its own, last. Needs multikernel.pool=512M, 4 CPUs,
 * $MK_KERNEL_IMAGE and $MK_INITRAMFS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kexec.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "mk_util.h"

#define MK "/sys/kernel/multikernel"
#define INST MK "/instances/sp0"

static const char cmdline[] =
	"console=ttyS1 earlyprintk=serial,ttyS1,115200 kunit.enable=0 panic=0 loglevel=6";

static double now(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void read_state(char *buf, size_t size)
{
	if (read_file(INST "/state", buf, size) < 0)
		buf[0] = '\0';
}

static int load(void)
{
	const char *kernel = getenv("MK_KERNEL_IMAGE"), *initrd = getenv("MK_INITRAMFS");
	int kfd, ifd, id;
	char buf[32];
	long ret;

	if (!kernel || !initrd)
		return -ENOENT;
	kfd = open(kernel, O_RDONLY);
	ifd = open(initrd, O_RDONLY);
	if (kfd < 0 || ifd < 0)
		return -errno;
	if (read_file(INST "/id", buf, sizeof(buf)) <= 0)
		return -ENOENT;
	id = atoi(buf);
	ret = syscall(SYS_kexec_file_load, kfd, ifd, sizeof(cmdline), cmdline,
		      KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_MK_ID(id)) ? -errno : 0;
	close(kfd);
	close(ifd);
	return ret;
}

/* The control file refuses what it cannot do, without side effects. */
TEST(control_errors)
{
	char state[64];

	if (mode_of(MK "/create") == (mode_t)-1)
		SKIP(return, "kernel without CONFIG_MULTIKERNEL");
	write_str(MK "/destroy", "sp1");
	ASSERT_EQ(0, write_str(MK "/create", "sp1 cpus=2 memory=64M"));
	EXPECT_EQ(0200U, mode_of(MK "/instances/sp1/control"));
	EXPECT_EQ(-EINVAL, write_str(MK "/instances/sp1/control", "bogus"));
	/* Nothing loaded: nothing to start. */
	EXPECT_EQ(-EBUSY, write_str(MK "/instances/sp1/control", "start"));
	read_file(MK "/instances/sp1/state", state, sizeof(state));
	EXPECT_STREQ("reserved\n", state);
	EXPECT_EQ(0, write_str(MK "/destroy", "sp1"));
}

/*
 * Start a kernel on CPU 3 and wait until it reports in, while a host process
 * counts; afterwards the host's clocks agree and CPU 3 is still the instance's.
 */
TEST(start_runs)
{
	volatile unsigned long *progress;
	double mono0, real0, mono1, real1, deadline;
	char state[64], online[64];
	unsigned long before;
	pid_t worker;

	if (mode_of(MK "/create") == (mode_t)-1)
		SKIP(return, "kernel without CONFIG_MULTIKERNEL");
	if (sysconf(_SC_NPROCESSORS_CONF) < 4)
		SKIP(return, "needs 4 CPUs");
	write_str(MK "/destroy", "sp0");
	ASSERT_EQ(0, write_str(MK "/create", "sp0 cpus=3 memory=256M"));
	ASSERT_EQ(0, load()) TH_LOG("set MK_KERNEL_IMAGE and MK_INITRAMFS");
	read_state(state, sizeof(state));
	ASSERT_STREQ("loaded\n", state);

	progress = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, progress);
	worker = fork();
	ASSERT_GE(worker, 0);
	if (worker == 0)
		for (;;)
			(*progress)++;

	mono0 = now(CLOCK_MONOTONIC);
	real0 = now(CLOCK_REALTIME);
	ASSERT_EQ(0, write_str(INST "/control", "start"));
	read_state(state, sizeof(state));
	EXPECT_TRUE(!strcmp(state, "starting\n") || !strcmp(state, "running\n")) TH_LOG("%s", state);

	deadline = now(CLOCK_MONOTONIC) + 90;
	while (now(CLOCK_MONOTONIC) < deadline) {
		read_state(state, sizeof(state));
		if (strcmp(state, "starting\n"))
			break;
		before = *progress;
		usleep(200 * 1000);
		/* The host keeps running its own work while the instance boots. */
		EXPECT_GT(*progress, before);
	}
	EXPECT_STREQ("running\n", state);
	mono1 = now(CLOCK_MONOTONIC);
	real1 = now(CLOCK_REALTIME);
	kill(worker, SIGKILL);
	waitpid(worker, NULL, 0);
	/* CLOCK_MONOTONIC kept pace with CLOCK_REALTIME (within 1%). */
	EXPECT_LT((mono1 - mono0) - (real1 - real0), 0.01 * (real1 - real0) + 0.01);
	EXPECT_GT((mono1 - mono0) - (real1 - real0), -0.01 * (real1 - real0) - 0.01);

	/* CPU 3 is the instance's: offline in the host, and the host cannot take it back. */
	read_file("/sys/devices/system/cpu/online", online, sizeof(online));
	EXPECT_STREQ("0-2\n", online);
	EXPECT_EQ(-EBUSY, write_str("/sys/devices/system/cpu/cpu3/online", "1"));
	/* A running instance is neither destroyed nor reloaded nor started again. */
	EXPECT_EQ(-EBUSY, write_str(MK "/destroy", "sp0"));
	EXPECT_EQ(-EBUSY, load());
	EXPECT_EQ(-EBUSY, write_str(INST "/control", "start"));
	/* Host CPU hotplug of its own CPUs still works. */
	EXPECT_EQ(0, write_str("/sys/devices/system/cpu/cpu2/online", "0"));
	EXPECT_EQ(0, write_str("/sys/devices/system/cpu/cpu2/online", "1"));
	TH_LOG("instance sp0 %s after %.1f s", state, mono1 - mono0);
}

TEST_HARNESS_MAIN
