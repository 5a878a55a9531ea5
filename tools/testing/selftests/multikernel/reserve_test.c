// SPDX-License-Identifier: GPL-2.0
/*
 * CPU and memory reservation through /sys/kernel/multikernel: create and
 * destroy instances, and check the real sysfs and CPU hotplug state.
 *
 * Needs a kernel booted with multikernel.pool=512M (or larger) and three
 * online CPUs besides CPU 0 (the boot CPU): the three highest-numbered
 * (1-3 on a 4-CPU machine) are taken by tests; otherwise the tests skip.
 * Memory sizes that depend on the pool are computed from its size.
 * Instances made here are called kst*; the fixture removes leftovers
 * before and after each test, also when one failed part-way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "mk_util.h"

#define CREATE MK "/create"
#define DESTROY MK "/destroy"
#define MIB (1ULL << 20)

static unsigned long long pool_free(void)
{
	return read_u64(MK "/pool/free_bytes");
}

/* The CPU online mask as the host reports it, e.g. "0-3\n". */
static void online_cpus(char *buf, size_t size)
{
	if (read_file("/sys/devices/system/cpu/online", buf, size) < 0)
		buf[0] = '\0';
}

/* Writes a formatted line to a control file; 0 or -errno. */
static int __attribute__((format(printf, 2, 3))) write_fmt(const char *path, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return write_str(path, buf);
}

/* The pool as /proc/iomem shows it; 0 if absent. */
static int iomem_pool(unsigned long long *start, unsigned long long *end)
{
	char line[256];
	FILE *f = fopen("/proc/iomem", "r");
	int found = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "Multikernel pool") &&
		    sscanf(line, " %llx-%llx", start, end) == 2) {
			found = 1;
			break;
		}
	}
	fclose(f);
	return found;
}

struct snapshot {
	unsigned long long free;
	char online[1024];
	char instances[4096];
};

static void take_snapshot(struct snapshot *s)
{
	s->free = pool_free();
	online_cpus(s->online, sizeof(s->online));
	list_dir(MK "/instances", s->instances, sizeof(s->instances));
}

#define EXPECT_UNCHANGED(before) do {					\
	struct snapshot __now;						\
	take_snapshot(&__now);						\
	EXPECT_EQ((before)->free, __now.free);				\
	EXPECT_STREQ((before)->online, __now.online);			\
	EXPECT_STREQ((before)->instances, __now.instances);		\
} while (0)

FIXTURE(mk) {
	struct snapshot start;
	/* The CPUs taken by tests, ascending (1, 2, 3 on a 4-CPU machine). */
	int cpu[3];
	char all[64];		/* the three as a CPU list: "1-3" */
	char upper[64];		/* cpu[1] and cpu[2]: "2-3" */
	unsigned long long pool_mib;
};

FIXTURE_SETUP(mk)
{
	MK_REQUIRE(512, 3);
	mk_pick_cpus(0, 3, self->cpu);
	mk_cpulist(self->cpu, 3, self->all, sizeof(self->all));
	mk_cpulist(self->cpu + 1, 2, self->upper, sizeof(self->upper));
	self->pool_mib = mk_machine.pool >> 20;
	/* What an earlier test left when it failed part-way or timed out. */
	mk_remove_prefixed("kst");
	for (int i = 0; i < 3; i++)
		set_cpu_online(self->cpu[i], 1);
	take_snapshot(&self->start);
}

FIXTURE_TEARDOWN(mk)
{
	char path[96];

	/* A hotplug fault injection (offline_refused) not used: it would fail a bring-up too. */
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), MK_CPU "/cpu%d/hotplug/fail", self->cpu[i]);
		write_str(path, "-1");
	}
	mk_remove_prefixed("kst");
	for (int i = 0; i < 3; i++)
		set_cpu_online(self->cpu[i], 1);
}

/* The files and their modes are the documented ones. */
TEST_F(mk, layout)
{
	char names[512];

	ASSERT_EQ(0, list_dir(MK, names, sizeof(names)));
	EXPECT_STREQ("cpu_call create destroy doorbells ikc_baseline instances pool unpack version", names);
	ASSERT_EQ(0, list_dir(MK "/pool", names, sizeof(names)));
	EXPECT_STREQ("free_bytes largest_free_bytes total_bytes", names);
	EXPECT_EQ(0200U, mode_of(CREATE));
	EXPECT_EQ(0200U, mode_of(DESTROY));
	EXPECT_EQ(0444U, mode_of(MK "/pool/total_bytes"));
	EXPECT_EQ(0444U, mode_of(MK "/pool/free_bytes"));
	EXPECT_EQ(0444U, mode_of(MK "/pool/largest_free_bytes"));
	EXPECT_EQ(0400U, mode_of(MK "/cpu_call"));
	EXPECT_EQ(0644U, mode_of(MK "/unpack"));
}

/*
 * cpu_call: one call round trip to an idle CPU other than the reader's,
 * "NS CPU". Pinned to CPU 0, the reader never gets its own. ENXIO means no
 * other CPU was idle at that instant (a kworker ran): read again.
 */
TEST_F(mk, cpu_call)
{
	unsigned long long ns;
	cpu_set_t set, old;
	char buf[64];
	int cpu, n, tries = 0;
	ssize_t len;

	ASSERT_EQ(0, sched_getaffinity(0, sizeof(old), &old));
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(set), &set));
	for (n = 0; n < 20 && tries < 1000; tries++) {
		len = read_file(MK "/cpu_call", buf, sizeof(buf));
		if (len == -ENXIO) {
			usleep(1000);
			continue;
		}
		ASSERT_GT(len, 0) TH_LOG("%s", strerror((int)-len));
		ASSERT_EQ(2, sscanf(buf, "%llu %d", &ns, &cpu)) TH_LOG("%s", buf);
		EXPECT_GT(ns, 0ULL);
		EXPECT_NE(0, cpu);
		EXPECT_EQ(1, cpu_online(cpu));
		n++;
	}
	EXPECT_EQ(20, n);
	sched_setaffinity(0, sizeof(old), &old);
}

/* The pool is in /proc/iomem, 2 MiB aligned, as large as total_bytes, all free. */
TEST_F(mk, pool_in_iomem)
{
	unsigned long long start, end, total = read_u64(MK "/pool/total_bytes");

	ASSERT_TRUE(iomem_pool(&start, &end));
	EXPECT_EQ(0ULL, start % (2 * MIB));
	EXPECT_EQ(total, end - start + 1);
	EXPECT_EQ(total, self->start.free);
	EXPECT_EQ(total, read_u64(MK "/pool/largest_free_bytes"));
}

/* Create, look at everything it changed, destroy, and everything is back. */
TEST_F(mk, create_destroy_round_trip)
{
	unsigned long long start, end, mstart, mend;
	char buf[1024], want[1024];

	ASSERT_EQ(0, write_fmt(CREATE, "kst0 cpus=%s memory=256M\n", self->upper));
	instance_file("kst0", "cpus", buf, sizeof(buf));
	snprintf(want, sizeof(want), "%s\n", self->upper);
	EXPECT_STREQ(want, buf);
	instance_file("kst0", "state", buf, sizeof(buf));
	EXPECT_STREQ("reserved\n", buf);
	instance_file("kst0", "id", buf, sizeof(buf));
	EXPECT_GE(atoi(buf), 1);
	EXPECT_EQ(0444U, mode_of(MK "/instances/kst0/memory"));

	instance_file("kst0", "memory", buf, sizeof(buf));
	ASSERT_EQ(2, sscanf(buf, "0x%llx-0x%llx", &mstart, &mend)) TH_LOG("memory: %s", buf);
	ASSERT_TRUE(iomem_pool(&start, &end));
	EXPECT_GE(mstart, start);
	EXPECT_LE(mend, end);
	EXPECT_EQ(256 * MIB, mend - mstart + 1);
	EXPECT_EQ(0ULL, mstart % (2 * MIB));
	EXPECT_EQ(self->start.free - 256 * MIB, pool_free());

	/* The owned CPUs are offline and out of the host's view; the other one is not. */
	EXPECT_FALSE(cpu_shown(self->cpu[1]));
	EXPECT_FALSE(cpu_shown(self->cpu[2]));
	EXPECT_TRUE(cpu_shown(self->cpu[0]));
	EXPECT_EQ(1, cpu_online(self->cpu[0]));
	online_cpus(buf, sizeof(buf));
	EXPECT_STREQ(mk_online_without(self->start.online, self->cpu + 1, 2, want, sizeof(want)),
		     buf);

	ASSERT_EQ(0, write_str(DESTROY, "kst0\n"));
	EXPECT_EQ((mode_t)-1, mode_of(MK "/instances/kst0"));
	EXPECT_EQ(1, cpu_online(self->cpu[1]));
	EXPECT_EQ(1, cpu_online(self->cpu[2]));
	EXPECT_UNCHANGED(&self->start);
}

/*
 * While owned, a CPU is out of the host's view (not present, no cpuN, so
 * nothing can bring it online); after destroy it is back, online, and the
 * host can take it down again.
 */
TEST_F(mk, owned_cpu_stays_offline)
{
	char driver[256] = "", firmware[256] = "", after[256] = "", path[96];
	char files[2][1024] = { "", "" }, hotplug[2][256] = { "", "" };
	int cpu = self->cpu[2];

	/* Its driver (ACPI's "processor") and firmware node, to compare after. */
	snprintf(path, sizeof(path), MK_CPU "/cpu%d/driver", cpu);
	readlink(path, driver, sizeof(driver) - 1);
	snprintf(path, sizeof(path), MK_CPU "/cpu%d/firmware_node", cpu);
	readlink(path, firmware, sizeof(firmware) - 1);
	/* Its files, hotplug/ among them, to compare after. */
	snprintf(path, sizeof(path), MK_CPU "/cpu%d", cpu);
	list_dir(path, files[0], sizeof(files[0]));
	snprintf(path, sizeof(path), MK_CPU "/cpu%d/hotplug", cpu);
	list_dir(path, hotplug[0], sizeof(hotplug[0]));
	ASSERT_NE(NULL, strstr(hotplug[0], "state")) TH_LOG("cpu%d/hotplug: %s", cpu, hotplug[0]);
	ASSERT_EQ(0, write_fmt(CREATE, "kst0 cpus=%d memory=2M", cpu));
	EXPECT_FALSE(cpu_shown(cpu));
	EXPECT_EQ(-ENOENT, set_cpu_online(cpu, 1));
	/* A second instance asking for it is told it is owned, not absent. */
	EXPECT_EQ(-EBUSY, write_fmt(CREATE, "kst1 cpus=%d memory=2M", cpu));
	ASSERT_EQ(0, write_str(DESTROY, "kst0"));
	EXPECT_TRUE(cpu_shown(cpu));
	EXPECT_EQ(1, cpu_online(cpu));
	/* Back as it was: the same driver bound, the same firmware node. */
	snprintf(path, sizeof(path), MK_CPU "/cpu%d/driver", cpu);
	readlink(path, after, sizeof(after) - 1);
	EXPECT_STREQ(driver, after);
	memset(after, 0, sizeof(after));
	snprintf(path, sizeof(path), MK_CPU "/cpu%d/firmware_node", cpu);
	readlink(path, after, sizeof(after) - 1);
	EXPECT_STREQ(firmware, after);
	snprintf(path, sizeof(path), MK_CPU "/cpu%d", cpu);
	list_dir(path, files[1], sizeof(files[1]));
	EXPECT_STREQ(files[0], files[1]);
	snprintf(path, sizeof(path), MK_CPU "/cpu%d/hotplug", cpu);
	list_dir(path, hotplug[1], sizeof(hotplug[1]));
	EXPECT_STREQ(hotplug[0], hotplug[1]);
	TH_LOG("cpu%d: driver %s, firmware node %s", cpu, driver[0] ? driver : "none",
	       firmware[0] ? firmware : "none");
	/* Host hotplug of its own CPUs still works. */
	EXPECT_EQ(0, set_cpu_online(cpu, 0));
	EXPECT_EQ(0, set_cpu_online(cpu, 1));
	EXPECT_EQ(1, cpu_online(cpu));
}

/* Runs @cmd through the shell; its exit status, or -1. */
static int run(const char *cmd)
{
	int status = system(cmd);

	return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * Host tools that walk every CPU keep working while an instance owns one:
 * lscpu, chcpu -e over the CPUs it shows, and the kernel's own CPU hotplug
 * selftest (tools/testing/selftests/cpu-hotplug/cpu-on-off-test.sh, one CPU
 * and all CPUs), which failed when an owned CPU looked like a host CPU that
 * refuses to come online.
 */
TEST_F_TIMEOUT(mk, host_tools_with_owned_cpu, 300)
{
	const char *script = getenv("MK_CPU_ON_OFF_TEST");
	char cmd[512], online[1024], after[1024];
	int cpu = self->cpu[2];

	if (!script || access(script, R_OK))
		SKIP(return, "needs $MK_CPU_ON_OFF_TEST, the kernel's cpu-on-off-test.sh");
	if (run("command -v lscpu chcpu taskset >/dev/null"))
		SKIP(return, "needs lscpu, chcpu and taskset (util-linux)");
	ASSERT_EQ(0, write_fmt(CREATE, "kst0 cpus=%d memory=2M", cpu));
	online_cpus(online, sizeof(online));
	EXPECT_EQ(0, run("lscpu >/dev/null"));
	/* Every CPU the host shows as hot-pluggable (all but CPU 0). */
	snprintf(cmd, sizeof(cmd), "chcpu -e $(cd %s && ls -d cpu[0-9]*/online | "
		 "sed 's|cpu\\([0-9]*\\)/online|\\1|' | paste -sd,) >/dev/null", MK_CPU);
	EXPECT_EQ(0, run(cmd));
	snprintf(cmd, sizeof(cmd), "bash %s >/dev/null", script);
	EXPECT_EQ(0, run(cmd));
	snprintf(cmd, sizeof(cmd), "bash %s -a >/dev/null", script);
	EXPECT_EQ(0, run(cmd));
	/* The host's CPUs are as they were; the owned one is still out of view. */
	EXPECT_FALSE(cpu_shown(cpu));
	online_cpus(after, sizeof(after));
	EXPECT_STREQ(online, after);
	ASSERT_EQ(0, write_str(DESTROY, "kst0"));
	EXPECT_UNCHANGED(&self->start);
}

/* Ids are the smallest free ones, unique while alive; sizes round up to 2 MiB. */
TEST_F(mk, ids_and_rounding)
{
	char a[32], b[32], c[32], mem[128];
	unsigned long long s, e;

	ASSERT_EQ(0, write_fmt(CREATE, "kst_a cpus=%d memory=1", self->cpu[0]));
	ASSERT_EQ(0, write_fmt(CREATE, "kst_b cpus=%d memory=3M", self->cpu[1]));
	instance_file("kst_a", "id", a, sizeof(a));
	instance_file("kst_b", "id", b, sizeof(b));
	EXPECT_STRNE(a, b);
	instance_file("kst_a", "memory", mem, sizeof(mem));
	ASSERT_EQ(2, sscanf(mem, "0x%llx-0x%llx", &s, &e));
	EXPECT_EQ(2 * MIB, e - s + 1);
	instance_file("kst_b", "memory", mem, sizeof(mem));
	ASSERT_EQ(2, sscanf(mem, "0x%llx-0x%llx", &s, &e));
	EXPECT_EQ(4 * MIB, e - s + 1);
	EXPECT_EQ(self->start.free - 6 * MIB, pool_free());

	ASSERT_EQ(0, write_str(DESTROY, "kst_a"));
	ASSERT_EQ(0, write_fmt(CREATE, "kst_c cpus=%d memory=2M", self->cpu[2]));
	instance_file("kst_c", "id", c, sizeof(c));
	EXPECT_STREQ(a, c);
}

/*
 * Every bad input fails with its errno and changes nothing. The CPU numbers
 * in the table do not matter (bad syntax, or CPU 0, the boot CPU); those
 * that do come from the machine, below.
 */
TEST_F(mk, bad_inputs)
{
	static const struct {
		const char *input;
		size_t len;	/* 0: strlen(input) */
		int err;
	} cases[] = {
		{ "\n", 0, EINVAL },
		{ "   ", 0, EINVAL },
		{ "kst0", 0, EINVAL },
		{ "kst0 cpus=2", 0, EINVAL },
		{ "kst0 memory=2M", 0, EINVAL },
		{ "KST0 cpus=2 memory=2M", 0, EINVAL },
		{ "kst.0 cpus=2 memory=2M", 0, EINVAL },
		{ "kst01234567890123456789012345678 cpus=2 memory=2M", 0, EINVAL },
		{ "kst0 cpus=2 memory=2M foo=1", 0, EINVAL },
		{ "kst0 cpus=2 memory=2M cpus=3", 0, EINVAL },
		{ "kst0 cpus=2 2M", 0, EINVAL },
		{ "kst0 cpus=3-2 memory=2M", 0, EINVAL },
		{ "kst0 cpus=2,,3 memory=2M", 0, EINVAL },
		{ "kst0 cpus=4096 memory=2M", 0, EINVAL },
		{ "kst0 cpus= memory=2M", 0, EINVAL },
		{ "kst0 cpus=-1 memory=2M", 0, EINVAL },
		{ "kst0 cpus=2 memory=", 0, EINVAL },
		{ "kst0 cpus=2 memory=0", 0, EINVAL },
		{ "kst0 cpus=2 memory=2MB", 0, EINVAL },
		{ "kst0 cpus=2 memory=99999999999999G", 0, EINVAL },
		{ "kst0\0 cpus=2 memory=2M", 22, EINVAL },
		{ "kst0 cpus=2\0memory=2M", 22, EINVAL },
		{ "kst0 cpus=2 memory=2M\r\n", 0, EINVAL },
		{ "kst0 cpus=0 memory=2M", 0, EBUSY },
		{ "kst0 cpus=0-1 memory=2M", 0, EBUSY },
		{ "kst0 cpus=2 memory=16E", 0, EINVAL },
	};
	char junk[4096];
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].input);

		EXPECT_EQ(-cases[i].err, write_file(CREATE, cases[i].input, len))
			TH_LOG("case %u: '%s'", i, cases[i].input);
	}
	/* A CPU that is not present (past the last possible one), and more than the pool. */
	EXPECT_EQ(-EINVAL,
		  write_fmt(CREATE, "kst0 cpus=%d memory=2M", mk_machine.last_possible + 1));
	EXPECT_EQ(-ENOSPC, write_fmt(CREATE, "kst0 cpus=%d memory=%lluM", self->cpu[1],
				     2 * self->pool_mib));
	memset(junk, 'x', sizeof(junk));
	EXPECT_EQ(-E2BIG, write_file(CREATE, junk, sizeof(junk)));
	EXPECT_EQ(-E2BIG, write_file(CREATE, junk, 300));
	memcpy(junk, "kst0 cpus=2 memory=2M", 21);
	memset(junk + 21, ' ', 280);
	EXPECT_EQ(-E2BIG, write_file(CREATE, junk, 301));

	EXPECT_EQ(-ENOENT, write_str(DESTROY, "kst_nope"));
	EXPECT_EQ(-EINVAL, write_str(DESTROY, "\n"));
	EXPECT_EQ(-EINVAL, write_str(DESTROY, "kst0 kst1"));
	EXPECT_EQ(-EINVAL, write_str(DESTROY, "Kst0"));
	EXPECT_EQ(-E2BIG, write_file(DESTROY, junk, sizeof(junk)));
	EXPECT_UNCHANGED(&self->start);
}

/* Errors that depend on what exists: duplicates, owned and offline CPUs, a full pool. */
TEST_F(mk, conflicts)
{
	/* Half the pool (256M of 512M), in whole 2 MiB, and the rest. */
	unsigned long long half = (self->pool_mib / 2) & ~1ULL, rest = self->pool_mib - half;
	int c1 = self->cpu[0], c2 = self->cpu[1], c3 = self->cpu[2], odd[2] = { c1, c3 };
	struct snapshot after_first;
	char list[64];

	ASSERT_EQ(0, write_fmt(CREATE, "kst0 cpus=%d memory=%lluM", c2, half));
	take_snapshot(&after_first);
	EXPECT_EQ(-EEXIST, write_fmt(CREATE, "kst0 cpus=%d memory=2M", c3));
	EXPECT_EQ(-EBUSY, write_fmt(CREATE, "kst1 cpus=%d memory=2M", c2));
	EXPECT_EQ(-EBUSY, write_fmt(CREATE, "kst1 cpus=%s memory=2M", self->all));
	EXPECT_EQ(-ENOSPC, write_fmt(CREATE, "kst1 cpus=%d memory=%lluM", c3, rest + 2));
	EXPECT_UNCHANGED(&after_first);

	/* A CPU the administrator took offline is not the host's to give. */
	ASSERT_EQ(0, set_cpu_online(c3, 0));
	take_snapshot(&after_first);
	EXPECT_EQ(-EBUSY, write_fmt(CREATE, "kst1 cpus=%d memory=2M", c3));
	EXPECT_EQ(-EBUSY, write_fmt(CREATE, "kst1 cpus=%s memory=2M",
				    mk_cpulist(odd, 2, list, sizeof(list))));
	EXPECT_UNCHANGED(&after_first);
	ASSERT_EQ(0, set_cpu_online(c3, 1));

	/* The rest of the pool still fits exactly. */
	ASSERT_EQ(0, write_fmt(CREATE, "kst1 cpus=%d memory=%lluM", c3, rest));
	EXPECT_EQ(0ULL, pool_free());
	EXPECT_EQ(-ENOSPC, write_fmt(CREATE, "kst2 cpus=%d memory=2M", c1));
	ASSERT_EQ(0, write_str(DESTROY, "kst0"));
	ASSERT_EQ(0, write_str(DESTROY, "kst1"));
	EXPECT_UNCHANGED(&self->start);
}

/* The number of CPU hotplug state @name (/sys/devices/system/cpu/hotplug/states), or -1. */
static int hotplug_state(const char *name)
{
	char line[128], found[96];
	FILE *f = fopen(MK_CPU "/hotplug/states", "r");
	int state, ret = -1;

	if (!f)
		return -1;
	while (ret < 0 && fgets(line, sizeof(line), f))
		if (sscanf(line, " %d: %95s", &state, found) == 2 && !strcmp(found, name))
			ret = state;
	fclose(f);
	return ret;
}

/*
 * create takes the CPUs offline while it makes the instance's directory
 * and devices: a CPU that refuses to go offline (the hotplug core's own
 * fault injection, cpuN/hotplug/fail, fails its next teardown of
 * "sched:active") makes create fail with EBUSY and leaves nothing: no
 * directory, no /dev/mk-NAME, no mkvID, the CPU taken before it online
 * again, the pool as it was. The same create then succeeds.
 */
TEST_F(mk, offline_refused)
{
	int c2 = self->cpu[1], c3 = self->cpu[2], state = hotplug_state("sched:active");
	char path[96], buf[32], nets[4096], nets_after[4096];

	ASSERT_GT(state, 0) TH_LOG("no sched:active in " MK_CPU "/hotplug/states");
	list_dir("/sys/class/net", nets, sizeof(nets));
	snprintf(path, sizeof(path), MK_CPU "/cpu%d/hotplug/fail", c3);
	snprintf(buf, sizeof(buf), "%d", state);
	ASSERT_EQ(0, write_str(path, buf));
	EXPECT_EQ(-EBUSY, write_fmt(CREATE, "kst0 cpus=%d,%d memory=2M", c2, c3));
	EXPECT_UNCHANGED(&self->start);
	EXPECT_EQ((mode_t)-1, mode_of("/dev/mk-kst0"));
	EXPECT_EQ((mode_t)-1, mode_of("/dev/mk-kst0.console"));
	list_dir("/sys/class/net", nets_after, sizeof(nets_after));
	EXPECT_STREQ(nets, nets_after);
	EXPECT_EQ(1, cpu_online(c2));
	EXPECT_EQ(1, cpu_online(c3));
	/* The injection was used up by that offline (the teardown disarms it otherwise). */
	ASSERT_LT(0, read_file(path, buf, sizeof(buf)));
	ASSERT_EQ(-1, atoi(buf));

	ASSERT_EQ(0, write_fmt(CREATE, "kst0 cpus=%d,%d memory=2M", c2, c3));
	EXPECT_FALSE(cpu_shown(c2));
	EXPECT_FALSE(cpu_shown(c3));
	ASSERT_EQ(0, write_str(DESTROY, "kst0"));
	EXPECT_UNCHANGED(&self->start);
}

/* Without CAP_SYS_ADMIN (even as root) writes fail with EPERM; as nobody, EACCES. */
TEST_F(mk, needs_cap_sys_admin)
{
	pid_t pid = fork();
	char buf[64];
	int status;

	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (drop_effective_cap(CAP_SYS_ADMIN))
			_exit(11);
		if (write_fmt(CREATE, "kst0 cpus=%d memory=2M", self->cpu[1]) != -EPERM)
			_exit(12);
		if (write_str(DESTROY, "kst0") != -EPERM)
			_exit(13);
		if (read_file(MK "/cpu_call", buf, sizeof(buf)) != -EPERM ||
		    write_str(MK "/unpack", "1") != -EPERM)
			_exit(16);
		if (setgid(65534) || setuid(65534))
			_exit(14);
		if (write_fmt(CREATE, "kst0 cpus=%d memory=2M", self->cpu[1]) != -EACCES)
			_exit(15);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_UNCHANGED(&self->start);
}

/* 100 create/destroy cycles leave the pool and the online CPUs as they were. */
TEST_F_TIMEOUT(mk, hundred_cycles, 120)
{
	char spec[128], list[64];

	mk_cpulist(self->cpu, 2, list, sizeof(list));
	snprintf(spec, sizeof(spec), "kst0 cpus=%s memory=64M", list);
	for (int i = 0; i < 100; i++) {
		ASSERT_EQ(0, write_str(CREATE, spec)) TH_LOG("cycle %d", i);
		ASSERT_EQ(0, write_str(DESTROY, "kst0")) TH_LOG("cycle %d", i);
	}
	EXPECT_UNCHANGED(&self->start);
	EXPECT_EQ(read_u64(MK "/pool/total_bytes"), read_u64(MK "/pool/largest_free_bytes"));
}

/*
 * Four processes, WRITER_ROUNDS create/destroy rounds each, competing for
 * the three CPUs and the pool. Each round either works or fails with EBUSY
 * (CPU taken) or ENOSPC (pool full); each success is visible in sysfs with
 * the right CPU. Afterwards nothing is left over. (Each successful round
 * hides a CPU from the host and shows it again: 100 rounds each took 40 s
 * under TCG; the races are between the four, whatever their number of
 * rounds.)
 */
#define WRITER_ROUNDS 40

TEST_F_TIMEOUT(mk, concurrent_writers, 180)
{
	pid_t pids[4];
	int i, status, made = 0;

	for (i = 0; i < 4; i++) {
		pids[i] = fork();
		ASSERT_GE(pids[i], 0);
		if (pids[i] == 0) {
			char spec[128], name[16], path[128], buf[64];
			int cpu = self->cpu[i % 3], round, ret;

			/* A writer never outlives the test (a timeout kills only the test). */
			prctl(PR_SET_PDEATHSIG, SIGKILL);

			snprintf(name, sizeof(name), "kst_p%d", i);
			snprintf(spec, sizeof(spec), "%s cpus=%d memory=%dM", name, cpu, 64 * (i + 1));
			snprintf(path, sizeof(path), MK "/instances/%s/cpus", name);
			for (round = 0; round < WRITER_ROUNDS; round++) {
				ret = write_str(CREATE, spec);
				if (ret == -EBUSY || ret == -ENOSPC)
					continue;
				if (ret)
					_exit(200);
				if (read_file(path, buf, sizeof(buf)) < 0 || atoi(buf) != cpu)
					_exit(201);
				if (write_str(DESTROY, name))
					_exit(202);
				made++;
			}
			_exit(made);	/* 0..WRITER_ROUNDS; errors are 200 and up */
		}
	}
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		EXPECT_TRUE(WIFEXITED(status));
		EXPECT_LE(WEXITSTATUS(status), WRITER_ROUNDS) TH_LOG("writer %d failed", i);
		made += WEXITSTATUS(status);
	}
	EXPECT_GT(made, 0);
	TH_LOG("%d of %d rounds created an instance", made, 4 * WRITER_ROUNDS);
	EXPECT_UNCHANGED(&self->start);
	EXPECT_EQ(read_u64(MK "/pool/total_bytes"), read_u64(MK "/pool/largest_free_bytes"));
}

TEST_HARNESS_MAIN
