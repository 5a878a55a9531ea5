// SPDX-License-Identifier: GPL-2.0
/*
 * Instance lifecycle: a graceful stop (the instance kernel is asked over IKC
 * to shut down in order and its user space sees it), a stop that times out
 * and kills, restart, restart policies (on_reboot=, on_crash=) bounded by
 * the restart limit, what control and stop_timeout_ms refuse, a host
 * kexec -e and suspend refused while an instance runs.
 *
 * Needs one online CPU besides CPU 0, a pool of 256 MiB, $MK_KERNEL_IMAGE and
 * the sample initramfs ($MK_INITRAMFS), whose init shuts down in order on
 * mk_sample=graceful and ignores the request on mk_sample=ignore_stop; make
 * check runs it in the "ikc" VM. Without them the tests skip, saying which.
 * The instance "lc" takes the highest CPU; the fixture removes it after each
 * test, also a failed one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "mk_instance.h"

#define LC "lc"
#define BASE "kunit.enable=0 panic=0 loglevel=6 "

static char lc_spec[64];

static bool wait_console(const char *text, int n, int secs);

/*
 * Starts LC with the sample init's @sample mode and waits until its init has
 * set up how it answers a stop ("running" only means the kernel reported in:
 * a stop before user space is up powers off by force, with no user space to
 * ask).
 */
static int start_lc(const char *sample)
{
	char line[256];
	int ret;

	snprintf(line, sizeof(line), BASE "mk_sample=%s", sample);
	ret = start_instance(LC, lc_spec, line, strlen(line) + 1);
	if (!ret && !wait_console("MULTIKERNEL-SAMPLE-INIT stop handling ready", 1, 60))
		ret = -ETIMEDOUT;
	return ret;
}

/* How many times LC's console (the last 4000 bytes kept) shows @text. */
static int console_count(const char *text)
{
	char buf[8192], *at;
	int n = 0;

	instance_file(LC, "console", buf, sizeof(buf));
	for (at = strstr(buf, text); at; at = strstr(at + 1, text))
		n++;
	return n;
}

/* Waits up to @secs for LC's console to show @text at least @n times. */
static bool wait_console(const char *text, int n, int secs)
{
	double deadline = clock_s(CLOCK_MONOTONIC) + secs;

	do {
		if (console_count(text) >= n)
			return true;
		usleep(200 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	return false;
}

FIXTURE(lc) {
	char state[64];
	char last[64];
};

FIXTURE_SETUP(lc)
{
	int cpu;

	MK_REQUIRE(256, 1);
	MK_REQUIRE_IMAGES();
	mk_pick_cpus(0, 1, &cpu);
	snprintf(lc_spec, sizeof(lc_spec), LC " cpus=%d memory=256M", cpu);
	/* A leftover of a test that timed out (no teardown then). */
	mk_remove(LC);
}

FIXTURE_TEARDOWN(lc)
{
	/* A host kexec image host_kexec_refused loaded goes, whatever happened. */
	syscall(SYS_kexec_file_load, -1, -1, 0, NULL, KEXEC_FILE_UNLOAD);
	/* And sleep_refused's pm_test setting. */
	write_str("/sys/power/pm_test", "none");
	save_console(LC);
	mk_remove(LC);
}

/*
 * control stop: "stopping" until the kernel reports, then "stopped" with
 * last_stop "stop"; its init saw the request (SIGUSR2 from the poweroff the
 * kernel ran) and said so before powering off.
 */
TEST_F_TIMEOUT(lc, graceful_stop, 180)
{
	ASSERT_EQ(0, start_lc("graceful"));
	ASSERT_EQ(0, control(LC, "stop"));
	state_of(LC, self->state, sizeof(self->state));
	EXPECT_TRUE(!strcmp(self->state, "stopping\n") || !strcmp(self->state, "stopped\n"))
		TH_LOG("state right after stop: %s", self->state);
	wait_state(LC, "stopped\n", 60, self->state, sizeof(self->state));
	EXPECT_STREQ("stopped\n", self->state);
	instance_file(LC, "last_stop", self->last, sizeof(self->last));
	EXPECT_STREQ("stop\n", self->last);
	EXPECT_TRUE(wait_console("the host asks this kernel to stop", 1, 10));
	EXPECT_TRUE(wait_console("MULTIKERNEL-SAMPLE-INIT shutdown requested", 1, 10));
	/* User space ran the shutdown, not the kernel's fallback. */
	EXPECT_EQ(0, console_count("Failed to start orderly shutdown"));
	/* Stopped: the CPU is out, the image stays: it starts again. */
	EXPECT_EQ(0, control(LC, "start"));
	wait_started(LC, self->state, sizeof(self->state));
	EXPECT_STREQ("running\n", self->state);
}

/* A kernel that ignores the request is killed after stop_timeout_ms. */
TEST_F_TIMEOUT(lc, stop_timeout_kills, 180)
{
	ASSERT_EQ(0, start_lc("ignore_stop"));
	ASSERT_EQ(0, write_str(MK "/instances/" LC "/stop_timeout_ms", "1500"));
	ASSERT_EQ(0, control(LC, "stop"));
	state_of(LC, self->state, sizeof(self->state));
	EXPECT_STREQ("stopping\n", self->state);
	wait_state(LC, "stopped\n", 60, self->state, sizeof(self->state));
	EXPECT_STREQ("stopped\n", self->state);
	instance_file(LC, "last_stop", self->last, sizeof(self->last));
	EXPECT_STREQ("stop: timed out, killed\n", self->last);
	EXPECT_TRUE(wait_console("the host asks this kernel to stop", 1, 10));
}

/* kill while stopping decides: stopped, last_stop "kill", and no kill later. */
TEST_F_TIMEOUT(lc, kill_while_stopping, 180)
{
	ASSERT_EQ(0, start_lc("ignore_stop"));
	ASSERT_EQ(0, write_str(MK "/instances/" LC "/stop_timeout_ms", "1500"));
	ASSERT_EQ(0, control(LC, "stop"));
	EXPECT_EQ(0, control(LC, "kill"));
	state_of(LC, self->state, sizeof(self->state));
	EXPECT_STREQ("stopped\n", self->state);
	instance_file(LC, "last_stop", self->last, sizeof(self->last));
	EXPECT_STREQ("kill\n", self->last);
	/* Started again: the old stop's timeout (1.5 s) must not touch the new run. */
	EXPECT_EQ(0, control(LC, "start"));
	wait_started(LC, self->state, sizeof(self->state));
	EXPECT_STREQ("running\n", self->state);
	sleep(3);
	state_of(LC, self->state, sizeof(self->state));
	EXPECT_STREQ("running\n", self->state);
}

/*
 * restart: a graceful stop (its init saw the request: read on the live
 * console, which a later boot cannot push out of the buffer first), then the
 * loaded image starts again.
 */
TEST_F_TIMEOUT(lc, restart, 180)
{
	static char live[1 << 20];
	size_t len = 0;
	double deadline;
	ssize_t n;
	int fd;

	ASSERT_EQ(0, start_lc("graceful"));
	instance_file(LC, "last_stop", self->last, sizeof(self->last));
	ASSERT_STREQ("none\n", self->last);
	fd = open("/dev/mk-" LC ".console", O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, control(LC, "restart"));
	/* Running again after a stop: last_stop says the stop happened. */
	deadline = clock_s(CLOCK_MONOTONIC) + 90;
	do {
		usleep(200 * 1000);
		while (len < sizeof(live) - 1 &&
		       (n = read(fd, live + len, sizeof(live) - 1 - len)) > 0)
			len += n;
		state_of(LC, self->state, sizeof(self->state));
		instance_file(LC, "last_stop", self->last, sizeof(self->last));
	} while ((strcmp(self->state, "running\n") || strcmp(self->last, "stop\n")) &&
		 clock_s(CLOCK_MONOTONIC) < deadline);
	close(fd);
	live[len] = '\0';
	EXPECT_STREQ("running\n", self->state);
	EXPECT_STREQ("stop\n", self->last);
	EXPECT_NE(NULL, memmem(live, len, "MULTIKERNEL-SAMPLE-INIT shutdown requested", 42));
	EXPECT_EQ(NULL, memmem(live, len, "Failed to start orderly shutdown", 32));
	/* restart of a stopped instance is a start. */
	EXPECT_EQ(0, control(LC, "kill"));
	EXPECT_EQ(0, control(LC, "restart"));
	wait_started(LC, self->state, sizeof(self->state));
	EXPECT_STREQ("running\n", self->state);
}

/*
 * Waits up to @secs for LC to be in @state with last_stop @last and policy
 * @policy (all with their newline); false if it did not get there.
 */
static bool wait_settled(const char *state, const char *last, const char *policy, int secs)
{
	double deadline = clock_s(CLOCK_MONOTONIC) + secs;
	char s[64], l[64], p[128];

	do {
		state_of(LC, s, sizeof(s));
		instance_file(LC, "last_stop", l, sizeof(l));
		instance_file(LC, "policy", p, sizeof(p));
		if (!strcmp(s, state) && !strcmp(l, last) && !strcmp(p, policy))
			return true;
		usleep(200 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	fprintf(stderr, "# lc: %s, last_stop %s, %s", s, l, p);
	return false;
}

/*
 * LC created with @key (a restart policy) runs the sample init's @sample,
 * which ends its kernel at once, every run: it is started again 3 times,
 * then stays in @state with last_stop @last and policy @policy.
 */
static bool policy_loop(const char *key, const char *sample, const char *state,
			const char *last, const char *policy)
{
	char spec[96], line[128];

	snprintf(spec, sizeof(spec), "%s %s", lc_spec, key);
	snprintf(line, sizeof(line), BASE "mk_sample=%s", sample);
	if (start_instance(LC, spec, line, strlen(line) + 1))
		return false;
	return wait_settled(state, last, policy, 150);
}

/* on_reboot=restart: 3 reboots are restarted, the fourth leaves it stopped. */
TEST_F_TIMEOUT(lc, on_reboot_restart, 240)
{
	EXPECT_TRUE(policy_loop("on_reboot=restart", "reboot", "stopped\n", "reboot\n",
				"on_reboot=restart on_crash=stop restarts=3\n"));
}

/* on_crash=restart: a crash loop ends in "crashed" after 3 restarts in a row. */
TEST_F_TIMEOUT(lc, crash_loop_bounded, 240)
{
	EXPECT_TRUE(policy_loop("on_crash=restart", "exit", "crashed\n", "crashed: panic\n",
				"on_reboot=stop on_crash=restart restarts=3\n"));
}

/*
 * As crash_loop_bounded, while another process writes an unknown command
 * into LC's control file every millisecond: each write looks at the kernel
 * first (EINVAL after), so it is usually the write that finds each crash,
 * not the instance's work. The policy must still restart it 3 times.
 */
TEST_F_TIMEOUT(lc, crash_seen_by_a_write_first, 240)
{
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (!pid) {
		for (;;) {
			write_str(MK "/instances/" LC "/control", "look");
			usleep(1000);
		}
	}
	EXPECT_TRUE(policy_loop("on_crash=restart", "exit", "crashed\n", "crashed: panic\n",
				"on_reboot=stop on_crash=restart restarts=3\n"));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* What is refused, with which errno; a refusal changes nothing. */
TEST_F_TIMEOUT(lc, bad_input, 120)
{
	char buf[64];

	ASSERT_EQ(0, write_str(MK "/create", lc_spec));
	/* Nothing runs: nothing to stop. */
	EXPECT_EQ(-EBUSY, control(LC, "stop"));
	state_of(LC, self->state, sizeof(self->state));
	EXPECT_STREQ("reserved\n", self->state);
	EXPECT_EQ(-EINVAL, control(LC, "pause"));
	instance_file(LC, "policy", buf, sizeof(buf));
	EXPECT_STREQ("on_reboot=stop on_crash=stop restarts=0\n", buf);
	instance_file(LC, "stop_timeout_ms", buf, sizeof(buf));
	EXPECT_STREQ("10000\n", buf);
	EXPECT_EQ(-EINVAL, write_str(MK "/instances/" LC "/stop_timeout_ms", "99"));
	EXPECT_EQ(-EINVAL, write_str(MK "/instances/" LC "/stop_timeout_ms", "600001"));
	EXPECT_EQ(-EINVAL, write_str(MK "/instances/" LC "/stop_timeout_ms", "ten"));
	EXPECT_EQ(-EINVAL, write_str(MK "/instances/" LC "/stop_timeout_ms", "-1"));
	instance_file(LC, "stop_timeout_ms", buf, sizeof(buf));
	EXPECT_STREQ("10000\n", buf);
	EXPECT_EQ(0, write_str(MK "/instances/" LC "/stop_timeout_ms", "2500\n"));
	instance_file(LC, "stop_timeout_ms", buf, sizeof(buf));
	EXPECT_STREQ("2500\n", buf);
	/* Stopping is not destroyable: kill first. */
	ASSERT_EQ(0, load_into(LC, BASE "mk_sample=ignore_stop",
			       sizeof(BASE "mk_sample=ignore_stop")));
	ASSERT_EQ(0, control(LC, "start"));
	wait_started(LC, self->state, sizeof(self->state));
	ASSERT_STREQ("running\n", self->state);
	ASSERT_TRUE(wait_console("MULTIKERNEL-SAMPLE-INIT stop handling ready", 1, 60));
	ASSERT_EQ(0, control(LC, "stop"));
	EXPECT_EQ(-EBUSY, write_str(MK "/destroy", LC));
	EXPECT_EQ(-EBUSY, control(LC, "stop"));
	EXPECT_EQ(-EBUSY, control(LC, "start"));
}

/*
 * kexec -e of the host would hand the instance's CPUs and memory to the next
 * kernel: refused with EBUSY while it runs (the host carries on, and so does
 * the instance); allowed again once it stopped (not tried: that reboots).
 */
TEST_F_TIMEOUT(lc, host_kexec_refused, 180)
{
	int kfd;

	ASSERT_EQ(0, start_lc("graceful"));
	kfd = open(getenv("MK_KERNEL_IMAGE"), O_RDONLY);
	ASSERT_LE(0, kfd);
	/* An ordinary kexec_file_load of the host: the image to kexec -e into. */
	ASSERT_EQ(0, syscall(SYS_kexec_file_load, kfd, -1, 1, "", KEXEC_FILE_NO_INITRAMFS))
		TH_LOG("host kexec_file_load: %s", strerror(errno));
	close(kfd);
	errno = 0;
	EXPECT_EQ(-1, syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
			      LINUX_REBOOT_CMD_KEXEC, NULL));
	EXPECT_EQ(EBUSY, errno);
	state_of(LC, self->state, sizeof(self->state));
	EXPECT_STREQ("running\n", self->state);
	EXPECT_EQ(0, syscall(SYS_kexec_file_load, -1, -1, 0, NULL, KEXEC_FILE_UNLOAD));
}

/*
 * poll(2) on state wakes when the state changes, with nobody reading it in
 * between: the instance's work moves the life cycle on, not its readers.
 * loaded -> starting (the start), -> running (the kernel reports in), ->
 * stopped (kill).
 */
static bool poll_state(int fd, const char *want, int secs, char *buf, size_t size)
{
	double deadline = clock_s(CLOCK_MONOTONIC) + secs;
	struct pollfd pfd = { .fd = fd, .events = POLLPRI };
	ssize_t n;

	do {
		if (poll(&pfd, 1, 1000 * secs) != 1)
			break;
		n = pread(fd, buf, size - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		if (!strcmp(buf, want))
			return true;
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	return false;
}

TEST_F_TIMEOUT(lc, state_poll, 180)
{
	static const char line[] = BASE;
	char buf[64];
	int fd;

	ASSERT_EQ(0, write_str(MK "/create", lc_spec));
	ASSERT_EQ(0, load_into(LC, line, sizeof(line)));
	fd = open(MK "/instances/" LC "/state", O_RDONLY);
	ASSERT_LE(0, fd);
	ASSERT_LT(0, pread(fd, buf, sizeof(buf) - 1, 0));
	ASSERT_EQ(0, control(LC, "start"));
	/* starting, then running: each change wakes the poller (running may come first). */
	if (poll_state(fd, "starting\n", 10, buf, sizeof(buf))) {
		EXPECT_TRUE(poll_state(fd, "running\n", 90, buf, sizeof(buf))) TH_LOG("state %s", buf);
	} else {
		EXPECT_STREQ("running\n", buf);
	}
	ASSERT_EQ(0, control(LC, "kill"));
	EXPECT_TRUE(poll_state(fd, "stopped\n", 10, buf, sizeof(buf))) TH_LOG("state %s", buf);
	close(fd);
}

/*
 * Suspend is refused (EBUSY) while an instance runs and allowed again once
 * none does; the instance kernel refuses it always (its init tried and said
 * so). Hibernation goes through the same notifier (not tried: the test
 * kernel has no block layer, hence no swap to hibernate to). With pm_test
 * at "freezer", a suspend that is not refused returns once tasks froze
 * instead of suspending the VM.
 */
TEST_F_TIMEOUT(lc, sleep_refused, 180)
{
	char states[128] = "";

	if (read_file("/sys/power/state", states, sizeof(states)) < 0 ||
	    !strstr(states, "freeze"))
		SKIP(return, "kernel built without CONFIG_SUSPEND: no suspend to refuse");
	if (access("/sys/power/pm_test", W_OK))
		SKIP(return, "no /sys/power/pm_test (CONFIG_PM_DEBUG): a suspend not refused would suspend the machine");
	ASSERT_EQ(0, write_str("/sys/module/suspend/parameters/pm_test_delay", "0"));
	ASSERT_EQ(0, write_str("/sys/power/pm_test", "freezer"));
	ASSERT_EQ(0, start_lc("graceful"));
	EXPECT_TRUE(wait_console("MULTIKERNEL-SAMPLE-INIT suspend refused", 1, 10));
	EXPECT_TRUE(wait_console("suspend refused: this kernel is a multikernel instance", 1, 10));
	EXPECT_EQ(-EBUSY, write_str("/sys/power/state", "freeze"));
	/* Refused by us, naming the instance (not busy for another reason). */
	EXPECT_EQ(0, system("dmesg | grep -q 'suspend refused: 1 instance(s) run: " LC "'"));
	state_of(LC, self->state, sizeof(self->state));
	EXPECT_STREQ("running\n", self->state);
	ASSERT_EQ(0, control(LC, "kill"));
	EXPECT_EQ(0, write_str("/sys/power/state", "freeze"));
	EXPECT_EQ(0, write_str("/sys/power/pm_test", "none"));
	/* Starts, refused from the allowed suspend's check to its end, work again after it. */
	EXPECT_EQ(0, control(LC, "start"));
	wait_started(LC, self->state, sizeof(self->state));
	EXPECT_STREQ("running\n", self->state);
}

TEST_HARNESS_MAIN
