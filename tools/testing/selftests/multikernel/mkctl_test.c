// SPDX-License-Identifier: GPL-2.0
/*
 * mkctl, the user's tool (tools/multikernel/mkctl), run as a user would:
 *
 * - the lifecycle: create, load, start, ps (table and --json), ping, send
 *   and recv through the echo port, stop, destroy;
 * - run: a dynamically linked program of the host's root file system (the
 *   shell) in a kernel of its own: its stdout and stderr apart, its exit
 *   status; a file given with --file; a program that cannot be found;
 * - run interrupted (SIGINT): exit status 130, the instance removed;
 * - manifests: up and down;
 * - the error messages: not root, no such instance, name taken, CPU taken,
 *   pool exhausted, not a multikernel image, destroy while running, start
 *   with nothing loaded; each with its exit status.
 *
 * Needs $MK_MKCTL (the built mkctl), $MK_KERNEL_IMAGE, $MK_INITRAMFS, a pool
 * of 256 MiB and two CPUs besides CPU 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "mk_util.h"
#include "mk_instance.h"

static const char *mkctl;

/*
 * Runs "mkctl ARGS" through the shell; its stdout in @out, stderr in @err
 * (each truncated to @size); returns its exit status (-1 if it did not exit).
 */
static int mk(char *out, char *err, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int mk(char *out, char *err, size_t size, const char *fmt, ...)
{
	char args[1024], cmd[1400];
	int status;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s %s >/tmp/mkctl.out 2>/tmp/mkctl.err", mkctl, args);
	status = system(cmd);
	if (out && read_file("/tmp/mkctl.out", out, size) < 0)
		out[0] = '\0';
	if (err && read_file("/tmp/mkctl.err", err, size) < 0)
		err[0] = '\0';
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Creates or replaces the file @path with @text; 0 or -errno. */
static int put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int ret = 0;

	if (!f)
		return -errno;
	if (fputs(text, f) < 0)
		ret = -EIO;
	if (fclose(f))
		ret = -errno;
	return ret;
}

#define NEED_MKCTL() do {							\
	const char *lacks = mk_lacks_images(true);				\
	mkctl = getenv("MK_MKCTL");						\
	if (!mkctl || access(mkctl, X_OK))					\
		SKIP(return, "needs $MK_MKCTL, the built mkctl");		\
	if (lacks)								\
		SKIP(return, "needs %s", lacks);				\
	MK_REQUIRE(256, 2);							\
} while (0)

FIXTURE(mkctl) {
	char out[16384], err[16384];
};

FIXTURE_SETUP(mkctl)
{
	mk_remove_prefixed("mc");
	mk_remove_prefixed("run-");
}

FIXTURE_TEARDOWN(mkctl)
{
	mk_remove_prefixed("mc");
	mk_remove_prefixed("run-");
}

/* create, load, start, ps, ping, send/recv (echo), stop, destroy. */
TEST_F_TIMEOUT(mkctl, lifecycle, 240)
{
	int cpu;

	NEED_MKCTL();
	mk_pick_cpus(0, 1, &cpu);
	ASSERT_EQ(0, mk(NULL, self->err, sizeof(self->err),
			"create mc0 --cpus %d --memory 256M --key on_crash=restart", cpu))
		TH_LOG("%s", self->err);
	ASSERT_EQ(0, mk(NULL, self->err, sizeof(self->err),
			"load mc0 %s --initrd %s --cmdline 'console=ttyS1 kunit.enable=0 "
			"mk_sample=graceful'", getenv("MK_KERNEL_IMAGE"), getenv("MK_INITRAMFS")))
		TH_LOG("%s", self->err);
	ASSERT_EQ(0, mk(NULL, self->err, sizeof(self->err), "start mc0")) TH_LOG("%s", self->err);
	wait_started("mc0", self->out, sizeof(self->out));
	ASSERT_STREQ("running\n", self->out);
	ASSERT_EQ(0, mk(self->out, NULL, sizeof(self->out), "ps"));
	EXPECT_NE(NULL, strstr(self->out, "NAME")) TH_LOG("%s", self->out);
	EXPECT_NE(NULL, strstr(self->out, "mc0")) TH_LOG("%s", self->out);
	EXPECT_NE(NULL, strstr(self->out, "running")) TH_LOG("%s", self->out);
	/* --json parses (python's json) and says what sysfs says. */
	snprintf(self->err, sizeof(self->err),
		 "%s ps --json | python3 -c 'import json,sys; i = [x for x in json.load(sys.stdin) "
		 "if x[\"name\"] == \"mc0\"][0]; assert i[\"state\"] == \"running\", i; "
		 "assert i[\"cpus\"] == \"%d\", i; assert i[\"memory_bytes\"] == 256 << 20, i; "
		 "assert i[\"uptime_ms\"] > 0, i'",
		 mkctl, cpu);
	EXPECT_EQ(0, system(self->err));
	EXPECT_EQ(0, mk(self->out, NULL, sizeof(self->out), "ping mc0 -c 2 -s 128"));
	EXPECT_NE(NULL, strstr(self->out, "128 bytes to mc0: seq=1 time=")) TH_LOG("%s", self->out);
	/* The instance kernel's echo port: what goes out comes back. */
	snprintf(self->err, sizeof(self->err),
		 "(sleep 1; echo hello-echo | %s send mc0 7) & timeout 30 %s recv mc0 7 -n 1 | "
		 "grep -q hello-echo", mkctl, mkctl);
	EXPECT_EQ(0, system(self->err));
	/* Its console: the sample init's lines. */
	EXPECT_EQ(0, mk(self->out, NULL, sizeof(self->out), "console mc0 --once"));
	EXPECT_NE(NULL, strstr(self->out, "MULTIKERNEL-SAMPLE-INIT up")) TH_LOG("%.300s", self->out);
	EXPECT_EQ(0, mk(NULL, self->err, sizeof(self->err), "stop mc0")) TH_LOG("%s", self->err);
	wait_state("mc0", "stopped\n", 30, self->out, sizeof(self->out));
	EXPECT_STREQ("stopped\n", self->out);
	EXPECT_EQ(0, mk(NULL, self->err, sizeof(self->err), "destroy mc0")) TH_LOG("%s", self->err);
	EXPECT_NE(0, access(MK "/instances/mc0", F_OK));
}

/* How many CPUs the instance has, in the shell alone (nothing else is in it). */
#define CPUS "n=0; while read -r k rest; do [ \"$k\" = processor ] && n=$((n+1)); done " \
	     "</proc/cpuinfo; echo $n"

/*
 * run: the host's /bin/sh (dynamically linked) in its own kernel; stdout and
 * stderr arrive apart, the exit status is the program's, the instance is gone.
 */
TEST_F_TIMEOUT(mkctl, run_program, 400)
{
	char names[1024] = "";

	NEED_MKCTL();
	EXPECT_EQ(7, mk(self->out, self->err, sizeof(self->out),
			"run --kernel %s -- /bin/sh -c 'echo out-$((6*7)); echo err-$((6*7)) >&2; "
			CPUS "; exit 7'", getenv("MK_KERNEL_IMAGE")));
	EXPECT_STREQ("out-42\n1\n", self->out);
	EXPECT_STREQ("err-42\n", self->err);
	list_dir(MK "/instances", names, sizeof(names));
	EXPECT_EQ(NULL, strstr(names, "run-")) TH_LOG("left: %s", names);
	/* Two CPUs, a file put in, a program from $PATH. */
	ASSERT_EQ(0, put_file("/tmp/mkctl-data", "line-b\nline-a\n"));
	EXPECT_EQ(0, mk(self->out, self->err, sizeof(self->out),
			"run -c 2 --memory 200M --kernel %s --file /tmp/mkctl-data:/data "
			"--file /usr/bin/sort -- sh -c 'sort /data; " CPUS "'",
			getenv("MK_KERNEL_IMAGE")))
		TH_LOG("%s", self->err);
	EXPECT_STREQ("line-a\nline-b\n2\n", self->out);
	/* A path through "..": its directory is resolved. */
	EXPECT_EQ(0, mk(self->out, self->err, sizeof(self->out),
			"run --kernel %s -- /usr/bin/../bin/sh -c 'echo dotdot-$((6*7))'",
			getenv("MK_KERNEL_IMAGE")))
		TH_LOG("%s", self->err);
	EXPECT_STREQ("dotdot-42\n", self->out);
	/* Empty arguments stay; a signal's death is 128 + its number. */
	EXPECT_EQ(0, mk(self->out, self->err, sizeof(self->out),
			"run --kernel %s -- /bin/sh -c 'printf \"[%%s]\" \"$@\"' sh '' x",
			getenv("MK_KERNEL_IMAGE")));
	EXPECT_STREQ("[][x]", self->out);
	EXPECT_EQ(137, mk(NULL, NULL, 0, "run --kernel %s -- /bin/sh -c 'kill -9 $$'",
			  getenv("MK_KERNEL_IMAGE")));
	/* What it leaves behind holding its output does not keep run waiting. */
	EXPECT_EQ(0, mk(self->out, self->err, sizeof(self->out),
			"run --kernel %s -- /bin/sh -c '(while :; do :; done) & echo left-one'",
			getenv("MK_KERNEL_IMAGE")));
	EXPECT_STREQ("left-one\n", self->out);
	/* Nobody reads its output any more: run ends (as under SIGPIPE). */
	snprintf(self->err, sizeof(self->err),
		 "timeout 120 %s run --kernel %s -- /bin/sh -c 'while :; do echo y; done' | head -1 "
		 ">/tmp/mkctl.out", mkctl, getenv("MK_KERNEL_IMAGE"));
	EXPECT_EQ(0, system(self->err));
	read_file("/tmp/mkctl.out", self->out, sizeof(self->out));
	EXPECT_STREQ("y\n", self->out);
	/* Packed but not runnable inside (its interpreter is missing): 127, and why. */
	ASSERT_EQ(0, put_file("/tmp/mkctl-script", "#!/no/such/interpreter\n"));
	chmod("/tmp/mkctl-script", 0755);
	EXPECT_EQ(127, mk(NULL, self->err, sizeof(self->err), "run --kernel %s -- /tmp/mkctl-script",
			  getenv("MK_KERNEL_IMAGE")));
	EXPECT_NE(NULL, strstr(self->err, "mkctl: cannot run /tmp/mkctl-script in the instance"))
		TH_LOG("%s", self->err);
	/* A program that is not there: said, status 127 inside, or refused before. */
	EXPECT_EQ(2, mk(NULL, self->err, sizeof(self->err), "run --kernel %s -- no-such-program",
			getenv("MK_KERNEL_IMAGE")));
	EXPECT_NE(NULL, strstr(self->err, "no-such-program: not found in $PATH"))
		TH_LOG("%s", self->err);
}

/* SIGINT while the program runs: 130, and the instance is removed. */
TEST_F_TIMEOUT(mkctl, run_interrupted, 180)
{
	char names[1024] = "", cmd[512];
	double deadline;
	int status;
	pid_t pid;

	NEED_MKCTL();
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		freopen("/dev/null", "w", stdout);
		execl(mkctl, mkctl, "run", "--kernel", getenv("MK_KERNEL_IMAGE"), "--", "sleep",
		      "1000", NULL);
		_exit(127);
	}
	snprintf(cmd, sizeof(cmd), MK "/instances/run-%d/state", pid);
	deadline = clock_s(CLOCK_MONOTONIC) + 60;
	do {
		if (read_file(cmd, names, sizeof(names)) > 0 && !strcmp(names, "running\n"))
			break;
		usleep(100 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	EXPECT_STREQ("running\n", names);
	usleep(500 * 1000);
	kill(pid, SIGINT);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(130, WEXITSTATUS(status));
	list_dir(MK "/instances", names, sizeof(names));
	EXPECT_EQ(NULL, strstr(names, "run-")) TH_LOG("left: %s", names);
}

/* up and down of a manifest of two instances. */
TEST_F_TIMEOUT(mkctl, manifest, 240)
{
	char manifest[1024], state[64];
	int cpus[2];

	NEED_MKCTL();
	mk_pick_cpus(0, 2, cpus);
	snprintf(manifest, sizeof(manifest),
		 "# two instances\n[mc1]\ncpus = %d\nmemory = 128M\nkernel = %s\ninitrd = %s\n"
		 "cmdline = console=ttyS1 kunit.enable=0\n\n[mc2]\ncpus = %d\nmemory = 128M\n"
		 "kernel = %s\ninitrd = %s\nnet = off\n",
		 cpus[0], getenv("MK_KERNEL_IMAGE"), getenv("MK_INITRAMFS"), cpus[1],
		 getenv("MK_KERNEL_IMAGE"), getenv("MK_INITRAMFS"));
	ASSERT_EQ(0, put_file("/tmp/mkctl.conf", manifest));
	ASSERT_EQ(0, mk(self->out, self->err, sizeof(self->out), "up /tmp/mkctl.conf"))
		TH_LOG("%s", self->err);
	EXPECT_STREQ("mc1: started\nmc2: started\n", self->out);
	wait_started("mc1", state, sizeof(state));
	EXPECT_STREQ("running\n", state);
	wait_started("mc2", state, sizeof(state));
	EXPECT_STREQ("running\n", state);
	instance_file("mc2", "net", state, sizeof(state));
	EXPECT_STREQ("off\n", state);
	EXPECT_EQ(0, mk(self->out, self->err, sizeof(self->out), "down /tmp/mkctl.conf"));
	EXPECT_STREQ("mc2: destroyed\nmc1: destroyed\n", self->out);
	EXPECT_NE(0, access(MK "/instances/mc1", F_OK));
	/* A bad manifest names its line. */
	ASSERT_EQ(0, put_file("/tmp/mkctl.conf", "[mc1]\ncpus 1\n"));
	EXPECT_EQ(2, mk(NULL, self->err, sizeof(self->err), "up /tmp/mkctl.conf"));
	EXPECT_NE(NULL, strstr(self->err, "line 2: not 'key = value'")) TH_LOG("%s", self->err);
}

/* Every error of the table in mkctl.rst: its words and its exit status. */
TEST_F_TIMEOUT(mkctl, errors, 180)
{
	char cmd[512];
	int cpus[2];

	NEED_MKCTL();
	mk_pick_cpus(0, 2, cpus);
	/* Not root. */
	snprintf(cmd, sizeof(cmd), "setpriv --reuid=65534 --regid=65534 --clear-groups %s ps "
		 ">/dev/null 2>/tmp/mkctl.err", mkctl);
	EXPECT_EQ(3, WEXITSTATUS(system(cmd)));
	read_file("/tmp/mkctl.err", self->err, sizeof(self->err));
	EXPECT_NE(NULL, strstr(self->err, "needs root")) TH_LOG("%s", self->err);
	/* No such instance. */
	EXPECT_EQ(4, mk(NULL, self->err, sizeof(self->err), "start nosuch"));
	EXPECT_STREQ("mkctl: no instance named nosuch (mkctl ps)\n", self->err);
	EXPECT_EQ(4, mk(NULL, self->err, sizeof(self->err), "ping nosuch"));
	/* A name taken, a CPU taken. */
	ASSERT_EQ(0, mk(NULL, self->err, sizeof(self->err), "create mc3 --cpus %d --memory 64M",
			cpus[1]));
	EXPECT_EQ(1, mk(NULL, self->err, sizeof(self->err), "create mc3 --cpus %d --memory 64M",
			cpus[0]));
	EXPECT_STREQ("mkctl: an instance named mc3 exists already (mkctl ps)\n", self->err);
	EXPECT_EQ(1, mk(NULL, self->err, sizeof(self->err), "create mc4 --cpus %d --memory 64M",
			cpus[1]));
	snprintf(cmd, sizeof(cmd), "mkctl: CPU %d belongs to instance mc3\n", cpus[1]);
	EXPECT_STREQ(cmd, self->err);
	EXPECT_EQ(1, mk(NULL, self->err, sizeof(self->err), "create mc4 --cpus 0 --memory 64M"));
	EXPECT_STREQ("mkctl: CPU 0 is the boot CPU: it stays with the host\n", self->err);
	/* The pool. */
	EXPECT_EQ(1, mk(NULL, self->err, sizeof(self->err), "create mc4 --cpus %d --memory 64G",
			cpus[0]));
	EXPECT_NE(NULL, strstr(self->err, "mkctl: pool exhausted: ")) TH_LOG("%s", self->err);
	EXPECT_NE(NULL, strstr(self->err, "MiB free, largest range ")) TH_LOG("%s", self->err);
	/* A bad key: the kernel's EINVAL in words. */
	EXPECT_EQ(1, mk(NULL, self->err, sizeof(self->err),
			"create mc4 --cpus %d --memory 64M --key net=maybe", cpus[0]));
	EXPECT_NE(NULL, strstr(self->err, "the kernel refused 'mc4 cpus=")) TH_LOG("%s", self->err);
	/* Not running. */
	EXPECT_EQ(1, mk(NULL, self->err, sizeof(self->err), "ping mc3"));
	EXPECT_STREQ("mkctl: mc3 is not running (mkctl start mc3)\n", self->err);
	/* Start with nothing loaded. */
	EXPECT_EQ(1, mk(NULL, self->err, sizeof(self->err), "start mc3"));
	EXPECT_NE(NULL, strstr(self->err, "mc3 cannot start in its state now"))
		TH_LOG("%s", self->err);
	/* Not a multikernel image. */
	EXPECT_EQ(1, mk(NULL, self->err, sizeof(self->err), "load mc3 /bin/true"));
	EXPECT_STREQ("mkctl: /bin/true cannot run as an instance: it must be an x86-64 bzImage "
		     "built with CONFIG_MULTIKERNEL (a distro kernel is refused)\n", self->err);
	/* An image too big for the instance's memory. */
	ASSERT_EQ(0, mk(NULL, self->err, sizeof(self->err), "create mc5 --cpus %d --memory 8M",
			cpus[0]));
	EXPECT_EQ(1, mk(NULL, self->err, sizeof(self->err), "load mc5 %s --initrd %s",
			getenv("MK_KERNEL_IMAGE"), getenv("MK_INITRAMFS")));
	EXPECT_NE(NULL, strstr(self->err, "do not fit mc5's memory: create it with more"))
		TH_LOG("%s", self->err);
	EXPECT_EQ(0, mk(NULL, NULL, 0, "destroy mc5"));
	/* Destroy while running. */
	ASSERT_EQ(0, mk(NULL, self->err, sizeof(self->err),
			"load mc3 %s --initrd %s --cmdline 'console=ttyS1 kunit.enable=0'",
			getenv("MK_KERNEL_IMAGE"), getenv("MK_INITRAMFS")));
	ASSERT_EQ(0, mk(NULL, self->err, sizeof(self->err), "start mc3"));
	EXPECT_EQ(1, mk(NULL, self->err, sizeof(self->err), "destroy mc3"));
	EXPECT_STREQ("mkctl: mc3 is still starting or running: kill it first (mkctl kill mc3)\n",
		     self->err);
	EXPECT_EQ(0, mk(NULL, NULL, 0, "kill mc3"));
	EXPECT_EQ(0, mk(NULL, NULL, 0, "destroy mc3"));
	/* Usage. */
	EXPECT_EQ(2, mk(NULL, self->err, sizeof(self->err), "run"));
	EXPECT_EQ(0, mk(self->out, NULL, sizeof(self->out), "completion bash"));
	EXPECT_NE(NULL, strstr(self->out, "_mkctl()")) TH_LOG("%.200s", self->out);
}

TEST_HARNESS_MAIN
