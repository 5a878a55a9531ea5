// SPDX-License-Identifier: GPL-2.0
/*
 * x86 spawn (experimental): start a loaded kernel on an instance's CPU and
 * see it report in, while a host workload keeps running and the host's
 * clocks keep pace; kill it and start it again; two instances at once; kill
 * and destroy give the CPUs and memory back. The instances' consoles are the
 * VM's second and third serial ports; make check reads them (the sample
 * init's marker, the CPUs and memory it saw) after the VM is gone.
 *
 * Needs a pool (256 MiB; 400 MiB for two instances), one or two online
 * CPUs besides CPU 0 (the instances take the highest-numbered: CPU 3, or
 * 2 and 3, on a 4-CPU machine), $MK_KERNEL_IMAGE and $MK_INITRAMFS; each
 * test skips, saying what is missing, on a machine without them. The
 * fixture kills and destroys the instances (sp*) a failed test left.
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

static const char *const names[] = { "sp0", "sp1", "sp2", "sp3", "sp4", "sp5" };

static const char cmdline[] =
	"console=ttyS1 earlyprintk=serial,ttyS1,115200 kunit.enable=0 panic=0 loglevel=6";
/*
 * The same, and the sample init takes CPU 1 offline and online 20 times. It
 * ends with an argument for init after "--": the loader's parameters must go
 * before it, or the kernel would not read them and boot as if it owned the
 * machine.
 */
static const char cmdline_hotplug[] =
	"console=ttyS1 earlyprintk=serial,ttyS1,115200 kunit.filter_glob=multikernel_cpus "
	"panic=0 loglevel=7 mk_sample=hotplug -- mk_init_arg";
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

/* Removes every instance of this program, whatever its state. */
static void remove_instances(void)
{
	unsigned int i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		mk_remove(names[i]);
}

/* Instances boot in seconds under TCG; give each test room (the default is 30 s). */
FIXTURE(spawn) {
	pid_t worker;	/* start_runs' host workload while it runs */
};

FIXTURE_SETUP(spawn)
{
	self->worker = 0;
	MK_REQUIRE(0, 0);
	/* What an earlier test left when it failed part-way or timed out. */
	remove_instances();
}

/* Also after a failed ASSERT: nothing is left for the next test. */
FIXTURE_TEARDOWN(spawn)
{
	if (self->worker > 0) {
		kill(self->worker, SIGKILL);
		waitpid(self->worker, NULL, 0);
	}
	remove_instances();
}

/* The control file refuses what it cannot do, without side effects. */
TEST_F_TIMEOUT(spawn, control_errors, 180)
{
	char state[64], spec[64];
	int cpu;

	MK_REQUIRE(64, 1);
	mk_pick_cpus(0, 1, &cpu);
	snprintf(spec, sizeof(spec), "sp1 cpus=%d memory=64M", cpu);
	ASSERT_EQ(0, write_str(MK "/create", spec));
	EXPECT_EQ(0200U, mode_of(MK "/instances/sp1/control"));
	EXPECT_EQ(-EINVAL, write_str(MK "/instances/sp1/control", "bogus"));
	/* Nothing loaded: nothing to start. */
	EXPECT_EQ(-EBUSY, write_str(MK "/instances/sp1/control", "start"));
	read_file(MK "/instances/sp1/state", state, sizeof(state));
	EXPECT_STREQ("reserved\n", state);
	EXPECT_EQ(0, write_str(MK "/destroy", "sp1"));
}

/*
 * Start a kernel on the highest CPU (3 on a 4-CPU machine) and wait until it
 * reports in, while a host process counts; afterwards the host's clocks
 * agree and the CPU is still the instance's. The next CPU down (2) stays
 * the host's, to check that host hotplug still works.
 */
TEST_F_TIMEOUT(spawn, start_runs, 180)
{
	volatile unsigned long *progress;
	double mono0, real0, mono1, real1, deadline;
	char state[64], online[1024], without[1024], all[1024], spec[64], image[4096];
	unsigned long before;
	int cpu, host_cpu, ret;
	pid_t worker;

	MK_REQUIRE(256, 2);
	MK_REQUIRE_IMAGES();
	mk_pick_cpus(0, 1, &cpu);
	mk_pick_cpus(1, 1, &host_cpu);
	mk_online_without(NULL, &cpu, 1, without, sizeof(without));
	mk_online_without(NULL, NULL, 0, all, sizeof(all));
	snprintf(spec, sizeof(spec), "sp0 cpus=%d memory=256M", cpu);
	ASSERT_EQ(0, write_str(MK "/create", spec));
	ASSERT_EQ(0, load());
	read_state(state, sizeof(state));
	ASSERT_STREQ("loaded\n", state);

	progress = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, progress);
	worker = fork();
	ASSERT_GE(worker, 0);
	if (worker == 0)
		for (;;)
			(*progress)++;
	self->worker = worker;

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
	self->worker = 0;
	/* CLOCK_MONOTONIC kept pace with CLOCK_REALTIME (within 1%). */
	EXPECT_LT((mono1 - mono0) - (real1 - real0), 0.01 * (real1 - real0) + 0.01);
	EXPECT_GT((mono1 - mono0) - (real1 - real0), -0.01 * (real1 - real0) - 0.01);

	/* The CPU is the instance's: out of the host's view, which cannot take it back. */
	read_file(MK_CPU "/online", online, sizeof(online));
	EXPECT_STREQ(without, online);
	EXPECT_FALSE(cpu_shown(cpu));
	EXPECT_EQ(-ENOENT, set_cpu_online(cpu, 1));
	/* A running instance is neither destroyed nor reloaded nor started again. */
	EXPECT_EQ(-EINVAL, control("sp0", "bogus"));
	EXPECT_EQ(-EBUSY, write_str(MK "/destroy", "sp0"));
	EXPECT_EQ(-EBUSY, load());
	EXPECT_EQ(-EBUSY, write_str(INST "/control", "start"));
	/* Host CPU hotplug of its own CPUs still works. */
	EXPECT_EQ(0, set_cpu_online(host_cpu, 0));
	EXPECT_EQ(0, set_cpu_online(host_cpu, 1));
	TH_LOG("instance sp0 running after %.1f s", mono1 - mono0);

	/* Kill and start again, three times: the image stays loaded. */
	for (int round = 0; round < 3; round++) {
		ASSERT_EQ(0, control("sp0", "kill")) TH_LOG("round %d", round);
		state_of("sp0", state, sizeof(state));
		EXPECT_STREQ("stopped\n", state);
		EXPECT_EQ(-EBUSY, control("sp0", "kill"));
		read_file(MK_CPU "/online", online, sizeof(online));
		EXPECT_STREQ(without, online);
		ASSERT_EQ(0, control("sp0", "start")) TH_LOG("round %d", round);
		wait_started("sp0", state, sizeof(state));
		EXPECT_STREQ("running\n", state) TH_LOG("round %d", round);
	}

	/*
	 * Loaded with unpack 0, the kernel stays compressed and is entered at
	 * the bzImage's 64-bit entry, decompressing itself: it boots too.
	 */
	ASSERT_EQ(0, control("sp0", "kill"));
	ASSERT_EQ(0, write_str(MK "/unpack", "0"));
	ret = load();
	write_str(MK "/unpack", "1");
	ASSERT_EQ(0, ret);
	instance_file("sp0", "image", image, sizeof(image));
	EXPECT_NE(NULL, strstr(image, "\nboot bzimage\n")) TH_LOG("%s", image);
	ASSERT_EQ(0, control("sp0", "start"));
	wait_started("sp0", state, sizeof(state));
	EXPECT_STREQ("running\n", state);

	/* Kill, destroy: the CPU comes back online and the memory goes back to the pool. */
	ASSERT_EQ(0, control("sp0", "kill"));
	ASSERT_EQ(0, write_str(MK "/destroy", "sp0"));
	read_file(MK_CPU "/online", online, sizeof(online));
	EXPECT_STREQ(all, online);
	read_file(MK "/pool/free_bytes", state, sizeof(state));
	read_file(MK "/pool/total_bytes", online, sizeof(online));
	EXPECT_STREQ(online, state);
}

/* Two instances at once, one CPU each (2 and 3 of 4), each with its own console. */
TEST_F_TIMEOUT(spawn, two_instances, 180)
{
	char state[64], online[1024], without[1024], all[1024], spec[64];
	int cpus[2];

	MK_REQUIRE(400, 2);
	MK_REQUIRE_IMAGES();
	mk_pick_cpus(0, 2, cpus);
	mk_online_without(NULL, cpus, 2, without, sizeof(without));
	mk_online_without(NULL, NULL, 0, all, sizeof(all));
	snprintf(spec, sizeof(spec), "sp2 cpus=%d memory=200M", cpus[0]);
	ASSERT_EQ(0, write_str(MK "/create", spec));
	snprintf(spec, sizeof(spec), "sp3 cpus=%d memory=200M", cpus[1]);
	ASSERT_EQ(0, write_str(MK "/create", spec));
	ASSERT_EQ(0, load_into("sp2", cmdline2, sizeof(cmdline2)));
	ASSERT_EQ(0, load_into("sp3", cmdline, sizeof(cmdline)));
	ASSERT_EQ(0, control("sp2", "start"));
	ASSERT_EQ(0, control("sp3", "start"));
	wait_started("sp2", state, sizeof(state));
	EXPECT_STREQ("running\n", state);
	wait_started("sp3", state, sizeof(state));
	EXPECT_STREQ("running\n", state);
	read_file(MK_CPU "/online", online, sizeof(online));
	EXPECT_STREQ(without, online);
	EXPECT_EQ(0, control("sp2", "kill"));
	EXPECT_EQ(0, control("sp3", "kill"));
	EXPECT_EQ(0, write_str(MK "/destroy", "sp2"));
	EXPECT_EQ(0, write_str(MK "/destroy", "sp3"));
	read_file(MK_CPU "/online", online, sizeof(online));
	EXPECT_STREQ(all, online);
}

/*
 * Waits up to 60 s for a line containing both needles in the instance console
 * log; copies it into out. False if none came.
 */
static bool console_line(const char *needle, const char *needle2, char *out, size_t size)
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
				found = strstr(line, needle) && strstr(line, needle2);
			fclose(f);
		}
		if (found) {
			snprintf(out, size, "%s", line);
			return true;
		}
		usleep(200 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	return false;
}

/* Waits up to 60 s for a line containing needle in the instance console log. */
static bool console_shows(const char *needle)
{
	char line[1024];

	return console_line(needle, "", line, sizeof(line));
}

/*
 * An SMP instance: two CPUs (2-3 on a 4-CPU machine) boot one kernel (the
 * second waits in the park loop until the kernel starts it); its init sees
 * two CPUs; its network link carries pings both ways.
 */
TEST_F_TIMEOUT(spawn, smp_instance, 180)
{
	char state[64], online[1024], without[1024], all[1024], spec[64], list[32], id[16];
	char cmd[256], clock[32] = "", line[1024];
	bool host_tsc;
	int cpus[2], n;

	MK_REQUIRE(256, 2);
	MK_REQUIRE_IMAGES();
	if (!getenv("MK_INSTANCE_CONSOLE"))
		SKIP(return, "needs $MK_INSTANCE_CONSOLE, the file capturing the instance's ttyS1");
	mk_pick_cpus(0, 2, cpus);
	mk_online_without(NULL, cpus, 2, without, sizeof(without));
	mk_online_without(NULL, NULL, 0, all, sizeof(all));
	snprintf(spec, sizeof(spec), "sp4 cpus=%s memory=256M",
		 mk_cpulist(cpus, 2, list, sizeof(list)));
	ASSERT_EQ(0, write_str(MK "/create", spec));
	read_file("/sys/devices/system/clocksource/clocksource0/current_clocksource",
		  clock, sizeof(clock));
	host_tsc = !strncmp(clock, "tsc", 3);
	TH_LOG("host clocksource: %s", clock);
	ASSERT_EQ(0, load_into("sp4", cmdline_hotplug, sizeof(cmdline_hotplug)));
	ASSERT_EQ(0, control("sp4", "start"));
	wait_started("sp4", state, sizeof(state));
	EXPECT_STREQ("running\n", state);
	/* Its network link (its doorbells go to its first CPU): the host's side gets an address. */
	instance_file("sp4", "id", id, sizeof(id));
	n = atoi(id);
	snprintf(cmd, sizeof(cmd), "ip addr add 169.254.%d.1/24 dev mkv%d && ip link set mkv%d up",
		 n % 256, n, n);
	EXPECT_EQ(0, system(cmd));
	/*
	 * The KUnit suite that takes a CPU offline and online ran at the
	 * instance's boot (only that one: kunit.filter_glob; loglevel=7 shows
	 * its results) and passed, and left it both CPUs.
	 */
	EXPECT_TRUE(console_shows("ok 1 multikernel_cpus"));
	EXPECT_TRUE(console_shows("MULTIKERNEL-SAMPLE-INIT cpus=2 online=0-1 "));
	/*
	 * The loader's parameters came before the user's "--" (the kernel read
	 * them: it runs as an instance), init's argument stayed after it.
	 */
	ASSERT_TRUE(console_line("MULTIKERNEL-SAMPLE-INIT cmdline: ", "mk_sample=hotplug",
				 line, sizeof(line)));
	EXPECT_NE(NULL, strstr(line, " multikernel.instance=")) TH_LOG("%s", line);
	EXPECT_NE(NULL, strstr(line, " -- mk_init_arg")) TH_LOG("%s", line);
	EXPECT_EQ(NULL, strstr(strstr(line, " -- ") ?: line, "multikernel.")) TH_LOG("%s", line);
	/*
	 * A host that keeps time with the TSC (read before the load, which
	 * decides) has the loader append tsc=reliable: the instance, which has
	 * no clocksource to check the TSC against, runs its timers in
	 * high-resolution mode on it.
	 */
	if (host_tsc) {
		EXPECT_NE(NULL, strstr(line, " tsc=reliable")) TH_LOG("%s", line);
		EXPECT_TRUE(console_line("MULTIKERNEL-SAMPLE-INIT clock: tsc", " hres=1 cpus=2",
					 line, sizeof(line)));
	} else {
		EXPECT_EQ(NULL, strstr(line, " tsc=reliable")) TH_LOG("%s", line);
	}
	/*
	 * CPU hotplug inside the instance: a CPU it takes offline waits in the
	 * park loop again, so it comes back every time (console_shows waits).
	 */
	EXPECT_TRUE(console_shows("MULTIKERNEL-SAMPLE-INIT hotplug ok=20 fail=0 online=0-1"));
	read_file(MK_CPU "/online", online, sizeof(online));
	EXPECT_STREQ(without, online);
	/* The link works both ways, after the hotplug cycles too. */
	EXPECT_TRUE(console_shows("MULTIKERNEL-SAMPLE-INIT net: ping host ok"));
	snprintf(cmd, sizeof(cmd), "busybox ping -c 3 -W 10 169.254.%d.2 >/dev/null", n % 256);
	EXPECT_EQ(0, system(cmd));
	/* Kill stops both CPUs; destroy brings both back to the host. */
	EXPECT_EQ(0, control("sp4", "kill"));
	EXPECT_EQ(0, write_str(MK "/destroy", "sp4"));
	read_file(MK_CPU "/online", online, sizeof(online));
	EXPECT_STREQ(all, online);
}

/*
 * A kernel that never reports in (its report initcall blacklisted) leaves
 * "starting" for "failed" after the 30 s timeout; kill and destroy then give
 * its CPU back.
 */
#define INST5 MK "/instances/sp5"

TEST_F_TIMEOUT(spawn, no_report_fails, 180)
{
	static const char silent[] = "console=ttyS1 kunit.enable=0 panic=0 loglevel=6 "
				     "initcall_blacklist=mk_report_running";
	char state[64], online[1024], all[1024], spec[64];
	double deadline;
	int cpu;

	MK_REQUIRE(256, 1);
	MK_REQUIRE_IMAGES();
	mk_pick_cpus(0, 1, &cpu);
	mk_online_without(NULL, NULL, 0, all, sizeof(all));
	snprintf(spec, sizeof(spec), "sp5 cpus=%d memory=256M", cpu);
	ASSERT_EQ(0, write_str(MK "/create", spec));
	ASSERT_EQ(0, load_into("sp5", silent, sizeof(silent)));
	/* 30 s by default; 3 s here, then 999 and junk are refused. */
	read_file(INST5 "/start_timeout_ms", state, sizeof(state));
	EXPECT_STREQ("30000\n", state);
	EXPECT_EQ(-EINVAL, write_str(INST5 "/start_timeout_ms", "999"));
	EXPECT_EQ(-EINVAL, write_str(INST5 "/start_timeout_ms", "600001"));
	EXPECT_EQ(-EINVAL, write_str(INST5 "/start_timeout_ms", "3s"));
	ASSERT_EQ(0, write_str(INST5 "/start_timeout_ms", "3000"));
	ASSERT_EQ(0, control("sp5", "start"));
	deadline = clock_s(CLOCK_MONOTONIC) + 60;
	do {
		state_of("sp5", state, sizeof(state));
		if (strcmp(state, "starting\n"))
			break;
		usleep(500 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	EXPECT_STREQ("failed\n", state);
	/* Not before the 3 s it had. */
	EXPECT_LE(3.0, clock_s(CLOCK_MONOTONIC) - (deadline - 60));
	EXPECT_EQ(-EBUSY, write_str(MK "/destroy", "sp5"));
	EXPECT_EQ(0, control("sp5", "kill"));
	EXPECT_EQ(0, write_str(MK "/destroy", "sp5"));
	read_file(MK_CPU "/online", online, sizeof(online));
	EXPECT_STREQ(all, online);
}

TEST_HARNESS_MAIN
