// SPDX-License-Identifier: GPL-2.0
/*
 * x86 spawn (experimental): start a loaded kernel on an instance's CPU and
 * see it report in, while a host workload keeps running and the host's
 * clocks keep pace; kill it and start it again; two instances at once; kill
 * and destroy give the CPUs and memory back. The instances' consoles are the
 * VM's second and third serial ports; make check reads them (the sample
 * init's marker, the CPUs and memory it saw) after the VM is gone.
 *
 * Needs multikernel.pool=512M, 4 CPUs, $MK_KERNEL_IMAGE and $MK_INITRAMFS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
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
#include "mk_instance.h"

#define INST MK "/instances/sp0"

static const char cmdline[] =
	"console=ttyS1 earlyprintk=serial,ttyS1,115200 kunit.enable=0 panic=0 loglevel=6";
/* earlyprintk knows ttyS0/1 by name only; "keep" keeps it as the console. */
static const char cmdline2[] =
	"earlyprintk=serial,0x3e8,115200,keep kunit.enable=0 panic=0 loglevel=6";

static void read_state(char *buf, size_t size)
{
	if (read_file(INST "/state", buf, size) < 0)
		buf[0] = '\0';
}

static int load(void)
{
	return load_into("sp0", cmdline, sizeof(cmdline));
}

/* Instances boot in seconds under TCG; give each test room (the default is 30 s). */
FIXTURE(spawn) {
	int unused;
};

FIXTURE_SETUP(spawn)
{
}

FIXTURE_TEARDOWN(spawn)
{
}

/* The control file refuses what it cannot do, without side effects. */
TEST_F_TIMEOUT(spawn, control_errors, 180)
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
TEST_F_TIMEOUT(spawn, start_runs, 180)
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

	mono0 = clock_s(CLOCK_MONOTONIC);
	real0 = clock_s(CLOCK_REALTIME);
	ASSERT_EQ(0, write_str(INST "/control", "start"));
	read_state(state, sizeof(state));
	EXPECT_TRUE(!strcmp(state, "starting\n") || !strcmp(state, "running\n")) TH_LOG("%s", state);

	deadline = clock_s(CLOCK_MONOTONIC) + 90;
	while (clock_s(CLOCK_MONOTONIC) < deadline) {
		read_state(state, sizeof(state));
		if (strcmp(state, "starting\n"))
			break;
		before = *progress;
		usleep(200 * 1000);
		/* The host keeps running its own work while the instance boots. */
		EXPECT_GT(*progress, before);
	}
	EXPECT_STREQ("running\n", state);
	mono1 = clock_s(CLOCK_MONOTONIC);
	real1 = clock_s(CLOCK_REALTIME);
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
	EXPECT_EQ(-EINVAL, control("sp0", "bogus"));
	EXPECT_EQ(-EBUSY, write_str(MK "/destroy", "sp0"));
	EXPECT_EQ(-EBUSY, load());
	EXPECT_EQ(-EBUSY, write_str(INST "/control", "start"));
	/* Host CPU hotplug of its own CPUs still works. */
	EXPECT_EQ(0, write_str("/sys/devices/system/cpu/cpu2/online", "0"));
	EXPECT_EQ(0, write_str("/sys/devices/system/cpu/cpu2/online", "1"));
	TH_LOG("instance sp0 running after %.1f s", mono1 - mono0);

	/* Kill and start again, three times: the image stays loaded. */
	for (int round = 0; round < 3; round++) {
		ASSERT_EQ(0, control("sp0", "kill")) TH_LOG("round %d", round);
		state_of("sp0", state, sizeof(state));
		EXPECT_STREQ("stopped\n", state);
		EXPECT_EQ(-EBUSY, control("sp0", "kill"));
		read_file("/sys/devices/system/cpu/online", online, sizeof(online));
		EXPECT_STREQ("0-2\n", online);
		ASSERT_EQ(0, control("sp0", "start")) TH_LOG("round %d", round);
		wait_started("sp0", state, sizeof(state));
		EXPECT_STREQ("running\n", state) TH_LOG("round %d", round);
	}

	/* Kill, destroy: the CPU comes back online and the memory goes back to the pool. */
	ASSERT_EQ(0, control("sp0", "kill"));
	ASSERT_EQ(0, write_str(MK "/destroy", "sp0"));
	read_file("/sys/devices/system/cpu/online", online, sizeof(online));
	EXPECT_STREQ("0-3\n", online);
	read_file(MK "/pool/free_bytes", state, sizeof(state));
	read_file(MK "/pool/total_bytes", online, sizeof(online));
	EXPECT_STREQ(online, state);
}

/* Two instances at once, one CPU each, each with its own console. */
TEST_F_TIMEOUT(spawn, two_instances, 180)
{
	char state[64], online[64];

	if (mode_of(MK "/create") == (mode_t)-1)
		SKIP(return, "kernel without CONFIG_MULTIKERNEL");
	ASSERT_EQ(0, write_str(MK "/create", "sp2 cpus=2 memory=200M"));
	ASSERT_EQ(0, write_str(MK "/create", "sp3 cpus=3 memory=200M"));
	ASSERT_EQ(0, load_into("sp2", cmdline2, sizeof(cmdline2)));
	ASSERT_EQ(0, load_into("sp3", cmdline, sizeof(cmdline)));
	ASSERT_EQ(0, control("sp2", "start"));
	ASSERT_EQ(0, control("sp3", "start"));
	wait_started("sp2", state, sizeof(state));
	EXPECT_STREQ("running\n", state);
	wait_started("sp3", state, sizeof(state));
	EXPECT_STREQ("running\n", state);
	read_file("/sys/devices/system/cpu/online", online, sizeof(online));
	EXPECT_STREQ("0-1\n", online);
	EXPECT_EQ(0, control("sp2", "kill"));
	EXPECT_EQ(0, control("sp3", "kill"));
	EXPECT_EQ(0, write_str(MK "/destroy", "sp2"));
	EXPECT_EQ(0, write_str(MK "/destroy", "sp3"));
	read_file("/sys/devices/system/cpu/online", online, sizeof(online));
	EXPECT_STREQ("0-3\n", online);
}

/* Waits up to 60 s for a line containing needle in the instance console log. */
static bool console_shows(const char *needle)
{
	const char *path = getenv("MK_INSTANCE_CONSOLE");
	double deadline = clock_s(CLOCK_MONOTONIC) + 60;
	char line[1024];

	if (!path)
		return false;
	do {
		FILE *f = fopen(path, "r");
		bool found = false;

		if (f) {
			while (!found && fgets(line, sizeof(line), f))
				found = strstr(line, needle) != NULL;
			fclose(f);
		}
		if (found)
			return true;
		usleep(200 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	return false;
}

/*
 * An SMP instance: cpus=2-3 boots one kernel on both CPUs (the second waits
 * in the park loop until the kernel starts it); its init sees two CPUs.
 */
TEST_F_TIMEOUT(spawn, smp_instance, 180)
{
	char state[64], online[64];

	if (mode_of(MK "/create") == (mode_t)-1)
		SKIP(return, "kernel without CONFIG_MULTIKERNEL");
	if (!getenv("MK_INSTANCE_CONSOLE"))
		SKIP(return, "set MK_INSTANCE_CONSOLE to the file capturing ttyS1");
	ASSERT_EQ(0, write_str(MK "/create", "sp4 cpus=2-3 memory=256M"));
	ASSERT_EQ(0, load_into("sp4", cmdline, sizeof(cmdline)));
	ASSERT_EQ(0, control("sp4", "start"));
	wait_started("sp4", state, sizeof(state));
	EXPECT_STREQ("running\n", state);
	EXPECT_TRUE(console_shows("MULTIKERNEL-SAMPLE-INIT cpus=2 online=0-1 "));
	read_file("/sys/devices/system/cpu/online", online, sizeof(online));
	EXPECT_STREQ("0-1\n", online);
	/* Kill stops both CPUs; destroy brings both back to the host. */
	EXPECT_EQ(0, control("sp4", "kill"));
	EXPECT_EQ(0, write_str(MK "/destroy", "sp4"));
	read_file("/sys/devices/system/cpu/online", online, sizeof(online));
	EXPECT_STREQ("0-3\n", online);
}

/*
 * A kernel that never reports in (its report initcall blacklisted) leaves
 * "starting" for "failed" after the 30 s timeout; kill and destroy then give
 * its CPU back.
 */
TEST_F_TIMEOUT(spawn, no_report_fails, 180)
{
	static const char silent[] = "console=ttyS1 kunit.enable=0 panic=0 loglevel=6 "
				     "initcall_blacklist=mk_report_running";
	char state[64], online[64];
	double deadline;

	if (mode_of(MK "/create") == (mode_t)-1)
		SKIP(return, "kernel without CONFIG_MULTIKERNEL");
	ASSERT_EQ(0, write_str(MK "/create", "sp5 cpus=3 memory=256M"));
	ASSERT_EQ(0, load_into("sp5", silent, sizeof(silent)));
	ASSERT_EQ(0, control("sp5", "start"));
	deadline = clock_s(CLOCK_MONOTONIC) + 60;
	do {
		state_of("sp5", state, sizeof(state));
		if (strcmp(state, "starting\n"))
			break;
		usleep(500 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	EXPECT_STREQ("failed\n", state);
	EXPECT_EQ(-EBUSY, write_str(MK "/destroy", "sp5"));
	EXPECT_EQ(0, control("sp5", "kill"));
	EXPECT_EQ(0, write_str(MK "/destroy", "sp5"));
	read_file("/sys/devices/system/cpu/online", online, sizeof(online));
	EXPECT_STREQ("0-3\n", online);
}

TEST_HARNESS_MAIN
