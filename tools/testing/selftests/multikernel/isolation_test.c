// SPDX-License-Identifier: GPL-2.0
/*
 * Fault isolation: what an instance does stays inside it.
 *
 * Needs three online CPUs besides CPU 0 and a pool of 512 MiB (make check
 * runs it in the "ikc" VM: 6 CPUs, multikernel.pool=1G), a kernel built with
 * CONFIG_MULTIKERNEL_IKC_FAULT_INJECT and CONFIG_DEVMEM, $MK_KERNEL_IMAGE and
 * the sample initramfs ($MK_INITRAMFS) whose init takes mk_sample= actions;
 * without the CPUs, the pool or the files the tests skip, saying which.
 * Instance "victim" (the two highest CPUs: 4-5 of 6) does something
 * hostile: panic, reboot -f, poweroff -f, halt -f, kexec -e, read host RAM
 * through /dev/mem, flood the host's doorbell, take NMIs while parked.
 * Instance "by" (the next CPU down: 3 of 6) runs beside every test and must
 * answer pings throughout. Meanwhile host threads run on the host's other
 * CPUs (0-2 of 6); after each action every host CPU must still schedule,
 * "by" must answer, and the victim's state and last_stop must say what
 * happened. Also: memory is scrubbed between instances, and an image that
 * is not an instance kernel is refused. The fixture removes the victim
 * after each test, also a failed one; "by" goes in the last test, or when
 * the program ends if that test did not get there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "mk_instance.h"

#define BY "by"
#define VICTIM "victim"
#define BASE "kunit.enable=0 panic=0 loglevel=6 "
/* At most this many host CPUs get a workload thread. */
#define MAX_HOST_THREADS 64

static const char by_cmdline[] = BASE "mk_sample=echo";

/* The instances' create lines and the host's CPUs, from the machine (pick_cpus()). */
static char by_spec[64], victim_spec[64];
#define BY_SPEC by_spec
#define VICTIM_SPEC victim_spec
static int host_cpus[MAX_HOST_THREADS], nr_host_cpus;

/*
 * The victim takes the two highest CPUs, "by" the next one down; the host
 * keeps the others. The same in every test: from the machine as the
 * program found it.
 */
static void pick_cpus(void)
{
	int victim[2], by, cpu;
	char list[32];

	mk_pick_cpus(0, 2, victim);
	mk_pick_cpus(2, 1, &by);
	snprintf(by_spec, sizeof(by_spec), BY " cpus=%d memory=256M", by);
	snprintf(victim_spec, sizeof(victim_spec), VICTIM " cpus=%s memory=256M",
		 mk_cpulist(victim, 2, list, sizeof(list)));
	nr_host_cpus = 0;
	for (cpu = 0; cpu < MK_MAX_CPUS && nr_host_cpus < MAX_HOST_THREADS; cpu++)
		if (mk_cpus_has(&mk_machine.host, cpu) && cpu != by && cpu != victim[0] &&
		    cpu != victim[1])
			host_cpus[nr_host_cpus++] = cpu;
}

/* Threads on the host's CPUs (host_cpus), waking every 100 us while a test runs. */
struct workload {
	pthread_t threads[MAX_HOST_THREADS];
	atomic_ulong count[MAX_HOST_THREADS];
	atomic_int stop;
	bool started[MAX_HOST_THREADS];
};

struct spin_arg {
	struct workload *w;
	int i;		/* index in host_cpus */
};

static struct spin_arg spin_args[MAX_HOST_THREADS];

static void *spin(void *arg)
{
	struct spin_arg *a = arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(host_cpus[a->i], &set);
	sched_setaffinity(0, sizeof(set), &set);
	/*
	 * Wakes every 100 us: the CPU must keep taking timer interrupts and
	 * scheduling. Not a busy loop: on an emulated machine with fewer
	 * physical cores than vCPUs that would slow everything else down.
	 */
	while (!atomic_load(&a->w->stop)) {
		atomic_fetch_add(&a->w->count[a->i], 1);
		usleep(100);
	}
	return NULL;
}

static void workload_start(struct workload *w)
{
	int i;

	memset(w, 0, sizeof(*w));
	for (i = 0; i < nr_host_cpus; i++) {
		spin_args[i] = (struct spin_arg){ .w = w, .i = i };
		w->started[i] = !pthread_create(&w->threads[i], NULL, spin, &spin_args[i]);
	}
}

/* Every spinning thread moved on within the last 500 ms. */
static int workload_progressing(struct workload *w)
{
	unsigned long before[MAX_HOST_THREADS];
	int i, ok = 1;

	for (i = 0; i < nr_host_cpus; i++)
		before[i] = atomic_load(&w->count[i]);
	usleep(500 * 1000);
	for (i = 0; i < nr_host_cpus; i++)
		if (!w->started[i] || atomic_load(&w->count[i]) == before[i])
			ok = 0;
	return ok;
}

static void workload_stop(struct workload *w)
{
	int i;

	atomic_store(&w->stop, 1);
	for (i = 0; i < nr_host_cpus; i++)
		if (w->started[i])
			pthread_join(w->threads[i], NULL);
}

/*
 * Every CPU online in the host runs a short task within 10 s: none is
 * stuck, stopped or gone to another kernel. Returns the number that did not.
 */
static int host_cpus_schedule(void)
{
	int cpu, stuck = 0;

	for (cpu = 0; cpu <= mk_machine.last_possible; cpu++) {
		char path[96];
		double deadline;
		int status;
		pid_t pid;

		/* Not present, or offline (without an online file, CPU 0: always online). */
		snprintf(path, sizeof(path), MK_CPU "/cpu%d", cpu);
		if (mode_of(path) == (mode_t)-1 || cpu_online(cpu) == 0)
			continue;
		pid = fork();
		if (pid == 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			_exit(sched_setaffinity(0, sizeof(set), &set) ? 1 : 0);
		}
		deadline = clock_s(CLOCK_MONOTONIC) + 10;
		while (waitpid(pid, &status, WNOHANG) == 0) {
			if (clock_s(CLOCK_MONOTONIC) > deadline) {
				kill(pid, SIGKILL);
				waitpid(pid, &status, 0);
				status = -1;
				break;
			}
			usleep(10 * 1000);
		}
		if (status != 0)
			stuck++;
	}
	return stuck;
}

/* One ping of instance NAME; 0 if it answered. */
static int pings(const char *name)
{
	char path[128], buf[64];

	snprintf(path, sizeof(path), MK "/instances/%s/ping", name);
	return read_file(path, buf, sizeof(buf)) > 0 ? 0 : -1;
}

static int start_with(const char *name, const char *spec, const char *line)
{
	return start_instance(name, spec, line, strlen(line) + 1);
}

FIXTURE(iso) {
	struct workload w;
	char state[64];
	char buf[8192];
};

FIXTURE_SETUP(iso)
{
	int ret = 0;

	MK_REQUIRE(512, 3);
	MK_REQUIRE_IMAGES();
	pick_cpus();
	/* A victim an earlier test left when it timed out (no teardown then). */
	save_console(VICTIM);
	mk_remove(VICTIM);
	/* The bystander runs across tests; started again if a test lost it. */
	state_of(BY, self->state, sizeof(self->state));
	if (strcmp(self->state, "running\n"))
		ret = start_with(BY, BY_SPEC, by_cmdline);
	if (ret) {
		/* No teardown after a failed setup: clean up here. */
		save_console(BY);
		mk_remove(BY);
	}
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, pings(BY));
	workload_start(&self->w);
}

/* Also after a failed ASSERT: the victim goes; the bystander stays for the next test. */
FIXTURE_TEARDOWN(iso)
{
	workload_stop(&self->w);
	save_console(VICTIM);
	mk_remove(VICTIM);
}

/*
 * zz_everything_returns removes the bystander; if it did not get there (it
 * failed or was not selected), the program does on its way out.
 */
static void __attribute__((destructor)) remove_leftovers(void)
{
	if (!mk_machine.present)
		return;
	save_console(VICTIM);
	mk_remove(VICTIM);
	save_console(BY);
	mk_remove(BY);
}

/* After a hostile action: the host and the bystander are fine. */
static void survived(struct __test_metadata *_metadata, struct workload *w)
{
	EXPECT_TRUE(workload_progressing(w));
	EXPECT_EQ(0, host_cpus_schedule());
	EXPECT_EQ(0, pings(BY));
	EXPECT_EQ(0, pings(BY));
}

/*
 * The victim runs the sample init with @action; it must end in @state with
 * last_stop @reason while the host and the bystander carry on.
 */
static void stops_alone(struct __test_metadata *_metadata, FIXTURE_DATA(iso) *self,
			const char *action, const char *state, const char *reason)
{
	char line[256], last[64];
	int i;

	snprintf(line, sizeof(line), BASE "mk_sample=%s", action);
	ASSERT_EQ(0, start_with(VICTIM, VICTIM_SPEC, line));
	/* The bystander answers while the victim goes down. */
	for (i = 0; i < 5; i++)
		EXPECT_EQ(0, pings(BY));
	wait_state(VICTIM, state, 60, self->state, sizeof(self->state));
	EXPECT_STREQ(state, self->state);
	instance_file(VICTIM, "last_stop", last, sizeof(last));
	EXPECT_STREQ(reason, last);
	survived(_metadata, &self->w);
}

TEST_F_TIMEOUT(iso, smp_panic, 180)
{
	stops_alone(_metadata, self, "exit", "crashed\n", "crashed: panic\n");
}

TEST_F_TIMEOUT(iso, reboot_f, 180)
{
	stops_alone(_metadata, self, "reboot", "stopped\n", "reboot\n");
}

TEST_F_TIMEOUT(iso, poweroff_f, 180)
{
	stops_alone(_metadata, self, "poweroff", "stopped\n", "poweroff\n");
}

TEST_F_TIMEOUT(iso, halt_f, 180)
{
	stops_alone(_metadata, self, "halt", "stopped\n", "halt\n");
}

TEST_F_TIMEOUT(iso, kexec_e, 180)
{
	stops_alone(_metadata, self, "kexec", "stopped\n", "kexec\n");
}

/* A crash kernel loaded in the victim (kexec -p): its panic stops it, nothing enters the crash kernel. */
TEST_F_TIMEOUT(iso, kdump, 180)
{
	ASSERT_EQ(0, start_with(VICTIM, VICTIM_SPEC, BASE "crashkernel=16M mk_sample=kdump"));
	wait_state(VICTIM, "crashed\n", 60, self->state, sizeof(self->state));
	EXPECT_STREQ("crashed\n", self->state);
	instance_file(VICTIM, "last_stop", self->buf, sizeof(self->buf));
	EXPECT_STREQ("crashed: panic\n", self->buf);
	/* The crash kernel was loaded: the check above could fail. */
	instance_file(VICTIM, "console", self->buf, sizeof(self->buf));
	EXPECT_NE(NULL, strstr(self->buf, "kdump: crash kernel loaded at"))
		TH_LOG("console: %s", self->buf);
	survived(_metadata, &self->w);
}

/* A stopped victim starts again: its CPUs came back verified. */
TEST_F_TIMEOUT(iso, restart_after_stop, 180)
{
	stops_alone(_metadata, self, "reboot", "stopped\n", "reboot\n");
	ASSERT_EQ(0, control(VICTIM, "start"));
	wait_started(VICTIM, self->state, sizeof(self->state));
	EXPECT_STREQ("running\n", self->state);
	EXPECT_EQ(0, pings(VICTIM));
	EXPECT_EQ(0, control(VICTIM, "kill"));
	instance_file(VICTIM, "last_stop", self->state, sizeof(self->state));
	EXPECT_STREQ("kill\n", self->state);
}

/* Host RAM through /dev/mem in the victim: refused; its own reserved page: readable. */
TEST_F_TIMEOUT(iso, devmem, 180)
{
	ASSERT_EQ(0, start_with(VICTIM, VICTIM_SPEC, BASE "mk_sample=devmem"));
	ASSERT_TRUE(mk_wait_console(VICTIM, "MULTIKERNEL-SAMPLE-INIT devmem ", 60, self->buf,
				 sizeof(self->buf)));
	EXPECT_NE(NULL, strstr(self->buf, "devmem own=read host=refused low=refused"))
		TH_LOG("console: %s", strstr(self->buf, "MULTIKERNEL-SAMPLE-INIT devmem "));
	state_of(VICTIM, self->state, sizeof(self->state));
	EXPECT_STREQ("running\n", self->state);
	survived(_metadata, &self->w);
}

/* mk_doorbells(), 0 if unreadable. */
static unsigned long long doorbells(const char *what)
{
	long long n = mk_doorbells(what);

	return n < 0 ? 0 : n;
}

/* The victim's kernel rings the host's doorbell as fast as it can for 3 s. */
TEST_F_TIMEOUT(iso, doorbell_flood, 180)
{
	unsigned long long throttled, received;
	double end;
	int answered = 0, asked = 0;

	ASSERT_EQ(0, start_with(VICTIM, VICTIM_SPEC, BASE "multikernel.test_flood=3000"));
	/* From here (the flood starts once init runs), not from before its boot. */
	throttled = doorbells("throttled ");
	received = doorbells("received ");
	end = clock_s(CLOCK_MONOTONIC) + 3;
	while (clock_s(CLOCK_MONOTONIC) < end) {
		asked++;
		answered += pings(BY) == 0;
		EXPECT_TRUE(workload_progressing(&self->w));
	}
	EXPECT_EQ(asked, answered);
	ASSERT_TRUE(mk_wait_console(VICTIM, "test_flood: rang the host", 30, self->buf,
				 sizeof(self->buf)));
	TH_LOG("%s", strstr(self->buf, "test_flood: rang"));
	TH_LOG("doorbells: received %llu, throttled %llu during the flood",
	       doorbells("received ") - received, doorbells("throttled ") - throttled);
	/*
	 * The flood reached the host and was counted. Whether it went over the
	 * budget depends on the machine: the APIC merges a fixed IPI whose vector
	 * is already pending, so the host takes at most one doorbell per handler
	 * run however fast the instance rings (under TCG a few thousand a second
	 * per CPU, below the budget). The budget bounds the drains beyond that.
	 */
	/* Far more than the bystander's pings alone would cause (one doorbell each). */
	EXPECT_LT(received + 100 + 4 * (unsigned long long)asked, doorbells("received "));
	EXPECT_LE(throttled, doorbells("throttled "));
	state_of(VICTIM, self->state, sizeof(self->state));
	EXPECT_STREQ("running\n", self->state);
	EXPECT_EQ(0, pings(VICTIM));
	survived(_metadata, &self->w);
}

/*
 * The victim boots on one CPU (maxcpus=1): its second CPU stays in the park
 * loop. NMIs at both CPUs must be taken in the instance (the park area's own
 * IDT); the parked CPU must then still start when the instance onlines it.
 */
TEST_F_TIMEOUT(iso, nmi_parked, 180)
{
	int i;

	ASSERT_EQ(0, start_with(VICTIM, VICTIM_SPEC, BASE "maxcpus=1 mk_sample=online_later"));
	for (i = 0; i < 5; i++) {
		EXPECT_EQ(0, write_str(MK "/instances/" VICTIM "/ikc/inject", "nmi"));
		usleep(100 * 1000);
	}
	EXPECT_TRUE(mk_wait_console(VICTIM, "MULTIKERNEL-SAMPLE-INIT online_later online=0-1", 60,
				 self->buf, sizeof(self->buf)));
	state_of(VICTIM, self->state, sizeof(self->state));
	EXPECT_STREQ("running\n", self->state);
	EXPECT_EQ(0, pings(VICTIM));
	survived(_metadata, &self->w);
}

/* What one instance leaves in its memory, the next one on the same memory does not see. */
TEST_F_TIMEOUT(iso, scrub, 240)
{
	char line[256], text[64], first[64], second[64], *at;

	snprintf(text, sizeof(text), "MKSTALE%d", getpid());
	snprintf(line, sizeof(line), BASE "multikernel.test_fill=%s", text);
	ASSERT_EQ(0, start_with(VICTIM, VICTIM_SPEC, line));
	ASSERT_TRUE(mk_wait_console(VICTIM, "test_fill: ", 60, self->buf, sizeof(self->buf)));
	at = strstr(self->buf, "test_fill: ");
	TH_LOG("%.80s", at);
	/* The scan sees what was written: the check below can fail. */
	EXPECT_EQ(0, strncmp(at, "test_fill: 4096 pages, ", 23));
	EXPECT_LE(4096, atoi(at + 23));
	instance_file(VICTIM, "memory", first, sizeof(first));
	save_console(VICTIM);
	ASSERT_EQ(0, control(VICTIM, "kill"));
	ASSERT_EQ(0, write_str(MK "/destroy", VICTIM));

	snprintf(line, sizeof(line), BASE "multikernel.test_scan=%s", text);
	ASSERT_EQ(0, start_with(VICTIM, VICTIM_SPEC, line));
	instance_file(VICTIM, "memory", second, sizeof(second));
	ASSERT_STREQ(first, second);
	ASSERT_TRUE(mk_wait_console(VICTIM, "test_scan: ", 60, self->buf, sizeof(self->buf)));
	at = strstr(self->buf, "test_scan: ");
	TH_LOG("%.80s", at);
	EXPECT_EQ(0, strncmp(at, "test_scan: 0 pages start with ", 30));
}

/* An image without the MKIN record (a kernel that cannot run as an instance): ENOEXEC. */
TEST_F_TIMEOUT(iso, refused_image, 120)
{
	const char *kernel = getenv("MK_KERNEL_IMAGE");
	char path[] = "/tmp/mk-not-instance-XXXXXX", *saved;
	struct stat st;
	unsigned char *img;
	size_t i, found = 0;
	int fd, in;

	ASSERT_NE(NULL, kernel);
	in = open(kernel, O_RDONLY);
	ASSERT_LE(0, in);
	ASSERT_EQ(0, fstat(in, &st));
	img = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, in, 0);
	ASSERT_NE(MAP_FAILED, img);
	/* Our kernel with its declaration taken out. */
	for (i = 0; i + 8 <= (size_t)st.st_size; i++) {
		if (!memcmp(img + i, "MKIN\x01\0\0\0", 8)) {
			memcpy(img + i, "XXXX", 4);
			found++;
		}
	}
	ASSERT_EQ(1u, found);
	fd = mkstemp(path);
	ASSERT_LE(0, fd);
	ASSERT_EQ(st.st_size, write(fd, img, st.st_size));
	close(fd);
	close(in);
	ASSERT_EQ(0, write_str(MK "/create", VICTIM_SPEC));
	saved = strdup(kernel);
	setenv("MK_KERNEL_IMAGE", path, 1);
	EXPECT_EQ(-ENOEXEC, load_into(VICTIM, BASE, sizeof(BASE)));
	setenv("MK_KERNEL_IMAGE", saved, 1);
	state_of(VICTIM, self->state, sizeof(self->state));
	EXPECT_STREQ("reserved\n", self->state);
	/* The real one loads. */
	EXPECT_EQ(0, load_into(VICTIM, BASE, sizeof(BASE)));
	unlink(path);
	free(saved);
	munmap(img, st.st_size);
}

/* Last: the bystander goes; the pool and CPUs come back whole. */
TEST_F_TIMEOUT(iso, zz_everything_returns, 120)
{
	char total[64], avail[1024], want[1024];

	ASSERT_EQ(0, pings(BY));
	workload_stop(&self->w);
	memset(self->w.started, 0, sizeof(self->w.started));
	save_console(BY);
	EXPECT_EQ(0, control(BY, "kill"));
	EXPECT_EQ(0, write_str(MK "/destroy", BY));
	write_str(MK "/destroy", VICTIM);
	EXPECT_LT(0, read_file(MK "/pool/total_bytes", total, sizeof(total)));
	EXPECT_LT(0, read_file(MK "/pool/free_bytes", avail, sizeof(avail)));
	EXPECT_STREQ(total, avail);
	EXPECT_EQ(0, host_cpus_schedule());
	EXPECT_LT(0, read_file(MK_CPU "/online", avail, sizeof(avail)));
	EXPECT_STREQ(mk_online_without(NULL, NULL, 0, want, sizeof(want)), avail);
}

TEST_HARNESS_MAIN
