// SPDX-License-Identifier: GPL-2.0
/*
 * Soak: many instance lifecycles with random ends, two instances alive at
 * once, then the host's resources must be back where they were.
 *
 * Two workers (processes), each with an instance of its own (soak0, soak1,
 * one CPU each), run MK_SOAK_CYCLES lifecycles between them (default 50):
 * load with a command line chosen for the end, start, then end it one of
 * seven ways: control stop, kill while running, kill while starting, a
 * panic (its init exits), a start that never reports in (failed, then
 * kill), reboot and poweroff from inside. Each end must give its documented
 * state and last_stop. Every fifth cycle of a worker also destroys and
 * creates its instance again. The seed is printed; MK_SOAK_SEED repeats a
 * run.
 *
 * Afterwards, against a baseline taken after one warm-up lifecycle of each
 * instance: the pool's free bytes, the online CPUs and the present CPUs are
 * exactly as before, and no instance is left; the host's used memory
 * (MemTotal - MemFree - Buffers - Cached - SReclaimable) grew by at most
 * 8 MiB and SUnreclaim by at most 2 MiB (page and slab caches of a busy VM
 * move by about that much; an image kept per lifecycle is 8+ MiB and 50
 * leaked channels or instances are far more). Oopses, WARNs and lockups in
 * the host's log fail the run (make check scans it).
 *
 * Needs two online CPUs besides CPU 0, a pool of 512 MiB, $MK_KERNEL_IMAGE
 * and the sample initramfs ($MK_INITRAMFS); make check runs it in the
 * "spawn" VM, whose pool lies above 4 GiB.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "mk_instance.h"

#define BASE "kunit.enable=0 panic=0 loglevel=4 "

enum end { STOP, KILL, KILL_STARTING, CRASH, FAILED, REBOOT, POWEROFF, ENDS };

static const struct {
	const char *name;
	const char *line;	/* what the instance kernel is given */
	const char *state;	/* the state the end leaves */
	const char *last;	/* and last_stop */
} ends[ENDS] = {
	[STOP]		= { "stop", BASE "mk_sample=graceful", "stopped\n", "stop\n" },
	[KILL]		= { "kill", BASE, "stopped\n", "kill\n" },
	[KILL_STARTING]	= { "kill while starting", BASE, "stopped\n", "kill\n" },
	[CRASH]		= { "panic", BASE "mk_sample=exit", "crashed\n", "crashed: panic\n" },
	[FAILED]	= { "failed start", BASE "initcall_blacklist=mk_report_running",
			    "stopped\n", "kill\n" },
	[REBOOT]	= { "reboot", BASE "mk_sample=reboot", "stopped\n", "reboot\n" },
	[POWEROFF]	= { "poweroff", BASE "mk_sample=poweroff", "stopped\n", "poweroff\n" },
};

struct usage {
	unsigned long long pool_free;
	char online[1024];
	char present[1024];
	char instances[1024];
	long long used_kb;
	long long unreclaim_kb;
};

static long long meminfo_kb(const char *text, const char *field)
{
	const char *at = strstr(text, field);

	return at ? atoll(at + strlen(field)) : -1;
}

static void take_usage(struct usage *u)
{
	char info[8192] = "";

	u->pool_free = read_u64(MK "/pool/free_bytes");
	read_file(MK_CPU "/online", u->online, sizeof(u->online));
	read_file(MK_CPU "/present", u->present, sizeof(u->present));
	list_dir(MK "/instances", u->instances, sizeof(u->instances));
	read_file("/proc/meminfo", info, sizeof(info));
	u->used_kb = meminfo_kb(info, "MemTotal:") - meminfo_kb(info, "MemFree:") -
		     meminfo_kb(info, "Buffers:") - meminfo_kb(info, "Cached:") -
		     meminfo_kb(info, "SReclaimable:");
	u->unreclaim_kb = meminfo_kb(info, "SUnreclaim:");
}

static int create(const char *name, int cpu)
{
	char spec[96];

	snprintf(spec, sizeof(spec), "%s cpus=%d memory=256M", name, cpu);
	return write_str(MK "/create", spec);
}

static int set_file(const char *name, const char *file, const char *value)
{
	char path[256];

	snprintf(path, sizeof(path), MK "/instances/%s/%s", name, file);
	return write_str(path, value);
}

/*
 * One lifecycle of NAME ending in @end; 0, or -1 after saying what went
 * wrong on stderr.
 */
static int lifecycle(const char *name, enum end end)
{
	char state[64], last[64];
	int ret;

#define FAIL(fmt, ...) do {						\
	fprintf(stderr, "# %s, %s: " fmt "\n", name, ends[end].name, ##__VA_ARGS__); \
	return -1;							\
} while (0)

	ret = load_into(name, ends[end].line, strlen(ends[end].line) + 1);
	if (ret)
		FAIL("load: %s", strerror(-ret));
	if (set_file(name, "start_timeout_ms", end == FAILED ? "1000" : "30000"))
		FAIL("start_timeout_ms");
	ret = control(name, "start");
	if (ret)
		FAIL("start: %s", strerror(-ret));
	switch (end) {
	case KILL_STARTING:
		/* Right away: "starting" (or, on a fast machine, already "running"). */
		break;
	case FAILED:
		wait_state(name, "failed\n", 30, state, sizeof(state));
		if (strcmp(state, "failed\n"))
			FAIL("state %s, not failed", strtok(state, "\n"));
		instance_file(name, "last_stop", last, sizeof(last));
		if (strcmp(last, "failed\n"))
			FAIL("last_stop %s, not failed", strtok(last, "\n"));
		break;
	default:
		wait_started(name, state, sizeof(state));
		/* Ends that come from inside may already have come. */
		if (strcmp(state, "running\n") && strcmp(state, ends[end].state))
			FAIL("state %s after starting", strtok(state, "\n"));
	}
	if (end == STOP && control(name, "stop"))
		FAIL("control stop");
	if ((end == KILL || end == KILL_STARTING || end == FAILED) && control(name, "kill"))
		FAIL("control kill");
	wait_state(name, ends[end].state, 60, state, sizeof(state));
	if (strcmp(state, ends[end].state))
		FAIL("state %s, not %s", strtok(state, "\n"), ends[end].state);
	instance_file(name, "last_stop", last, sizeof(last));
	if (strcmp(last, ends[end].last))
		FAIL("last_stop %s", strtok(last, "\n"));
	/* A crashed kernel's CPU is taken back by kill before the next load. */
	if (end == CRASH && control(name, "kill"))
		FAIL("kill after the panic");
	return 0;
#undef FAIL
}

/* A worker: @cycles lifecycles of NAME on @cpu; its exit status is the number that failed. */
static int worker(const char *name, int cpu, int cycles, unsigned int seed)
{
	int failed = 0;

	for (int i = 0; i < cycles; i++) {
		enum end end = rand_r(&seed) % ENDS;

		if (lifecycle(name, end)) {
			failed++;
			/* Start the next one from a clean instance. */
			save_console(name);
			mk_remove(name);
			if (create(name, cpu))
				return 100;
		}
		if (i % 5 == 4) {
			if (write_str(MK "/destroy", name) || create(name, cpu)) {
				fprintf(stderr, "# %s: destroy and create again failed\n", name);
				return 100;
			}
		}
	}
	return failed;
}

FIXTURE(soak) {
	int cpus[2];
};

FIXTURE_SETUP(soak)
{
	MK_REQUIRE(512, 2);
	MK_REQUIRE_IMAGES();
	mk_pick_cpus(0, 2, self->cpus);
	mk_remove("soak0");
	mk_remove("soak1");
}

FIXTURE_TEARDOWN(soak)
{
	save_console("soak0");
	save_console("soak1");
	mk_remove("soak0");
	mk_remove("soak1");
}

TEST_F_TIMEOUT(soak, random_lifecycles, 900)
{
	const char *names[2] = { "soak0", "soak1" };
	const char *env = getenv("MK_SOAK_CYCLES");
	int cycles = env ? atoi(env) : 50;
	unsigned int seed;
	struct usage before, after;
	pid_t pids[2];

	env = getenv("MK_SOAK_SEED");
	seed = env ? strtoul(env, NULL, 0) : (unsigned int)time(NULL);
	TH_LOG("%d lifecycles, MK_SOAK_SEED=%u", cycles, seed);
	ASSERT_GE(cycles, 2);

	/* Warm-up: one lifecycle of each (first-use allocations), then destroy. */
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, create(names[i], self->cpus[i]));
		ASSERT_EQ(0, lifecycle(names[i], KILL));
		ASSERT_EQ(0, write_str(MK "/destroy", names[i]));
	}
	take_usage(&before);

	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, create(names[i], self->cpus[i]));
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (!pids[i])
			_exit(worker(names[i], self->cpus[i], (cycles + 1 - i) / 2, seed + i));
	}
	for (int i = 0; i < 2; i++) {
		int status;

		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("%s: %d lifecycles failed", names[i], WEXITSTATUS(status));
	}
	ASSERT_EQ(0, write_str(MK "/destroy", "soak0"));
	ASSERT_EQ(0, write_str(MK "/destroy", "soak1"));

	/* Deferred frees (RCU, the instances' last works) settle first. */
	sleep(1);
	take_usage(&after);
	EXPECT_EQ(before.pool_free, after.pool_free);
	EXPECT_STREQ(before.online, after.online);
	EXPECT_STREQ(before.present, after.present);
	EXPECT_STREQ(before.instances, after.instances);
	TH_LOG("used memory %+lld KiB, SUnreclaim %+lld KiB",
	       after.used_kb - before.used_kb, after.unreclaim_kb - before.unreclaim_kb);
	EXPECT_LE(after.used_kb - before.used_kb, 8 * 1024);
	EXPECT_LE(after.unreclaim_kb - before.unreclaim_kb, 2 * 1024);
}

TEST_HARNESS_MAIN
