/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small helpers shared by the multikernel selftests: whole-file sysfs reads
 * and writes that return -errno, modes, directory listings; the machine's
 * CPUs and pool as the program found them, the CPUs a test gives to its
 * instances, and why a machine cannot run a test (a kselftest skip).
 */
#ifndef MK_UTIL_H
#define MK_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The multikernel control tree. */
#define MK "/sys/kernel/multikernel"
/* The host's CPUs: possible, online, cpuN/online. */
#define MK_CPU "/sys/devices/system/cpu"

/* Reads a whole file into buf (NUL-terminated); returns its length or -errno. */
static inline ssize_t read_file(const char *path, char *buf, size_t size)
{
	ssize_t len, total = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -errno;
	while ((len = read(fd, buf + total, size - 1 - total)) > 0)
		total += len;
	if (len < 0)
		total = -errno;
	close(fd);
	if (total >= 0)
		buf[total] = '\0';
	return total;
}

/* One write(2) of len bytes; returns 0 or -errno (-EIO for a short write). */
static inline int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY), ret = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, data, len);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
	close(fd);
	return ret;
}

static inline int write_str(const char *path, const char *s)
{
	return write_file(path, s, strlen(s));
}

/* A file holding one number (decimal, or hexadecimal with 0x); ~0 if unreadable. */
static inline unsigned long long read_u64(const char *path)
{
	char buf[64];

	if (read_file(path, buf, sizeof(buf)) <= 0)
		return ~0ULL;
	return strtoull(buf, NULL, 0);
}

/* cpuN/online: 1 or 0; -1 where there is no such file (CPU 0 on most x86). */
static inline int cpu_online(int cpu)
{
	char path[128];

	snprintf(path, sizeof(path), MK_CPU "/cpu%d/online", cpu);
	return (int)read_u64(path);
}

/* Takes a host CPU offline or brings it online; 0 or -errno. */
static inline int set_cpu_online(int cpu, int online)
{
	char path[128];

	snprintf(path, sizeof(path), MK_CPU "/cpu%d/online", cpu);
	return write_str(path, online ? "1" : "0");
}

/* Sets of CPUs, read and written as the kernel's CPU lists ("0-2,5"). */
#define MK_MAX_CPUS 8192
#define MK_LONG_BITS (8 * sizeof(unsigned long))

struct mk_cpus {
	unsigned long bits[MK_MAX_CPUS / MK_LONG_BITS];
};

static inline void mk_cpus_add(struct mk_cpus *set, int cpu)
{
	if (cpu >= 0 && cpu < MK_MAX_CPUS)
		set->bits[cpu / MK_LONG_BITS] |= 1UL << (cpu % MK_LONG_BITS);
}

static inline void mk_cpus_del(struct mk_cpus *set, int cpu)
{
	if (cpu >= 0 && cpu < MK_MAX_CPUS)
		set->bits[cpu / MK_LONG_BITS] &= ~(1UL << (cpu % MK_LONG_BITS));
}

static inline bool mk_cpus_has(const struct mk_cpus *set, int cpu)
{
	return cpu >= 0 && cpu < MK_MAX_CPUS &&
	       (set->bits[cpu / MK_LONG_BITS] >> (cpu % MK_LONG_BITS)) & 1;
}

static inline int mk_cpus_count(const struct mk_cpus *set)
{
	int cpu, n = 0;

	for (cpu = 0; cpu < MK_MAX_CPUS; cpu++)
		n += mk_cpus_has(set, cpu);
	return n;
}

/* Adds the CPUs of a list ("0-2,5", one trailing newline allowed); 0 or -EINVAL. */
static inline int mk_cpus_parse(struct mk_cpus *set, const char *list)
{
	const char *p = list;
	char *end;
	long a, b;

	while (*p && *p != '\n') {
		a = strtol(p, &end, 10);
		if (end == p || a < 0)
			return -EINVAL;
		b = a;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p || b < a)
				return -EINVAL;
		}
		if (b >= MK_MAX_CPUS)
			return -EINVAL;
		for (; a <= b; a++)
			mk_cpus_add(set, a);
		p = end;
		if (*p == ',')
			p++;
		else if (*p && *p != '\n')
			return -EINVAL;
	}
	return 0;
}

/* Writes set as a CPU list, as the kernel would: "0-2,5", "" if empty. */
static inline char *mk_cpus_format(const struct mk_cpus *set, char *buf, size_t size)
{
	size_t len = 0;
	int cpu = 0, last, n;

	buf[0] = '\0';
	while (cpu < MK_MAX_CPUS) {
		if (!mk_cpus_has(set, cpu)) {
			cpu++;
			continue;
		}
		for (last = cpu; mk_cpus_has(set, last + 1); last++)
			;
		if (cpu == last)
			n = snprintf(buf + len, size - len, "%s%d", len ? "," : "", cpu);
		else
			n = snprintf(buf + len, size - len, "%s%d-%d", len ? "," : "", cpu, last);
		if (n < 0 || (size_t)n >= size - len)
			break;
		len += n;
		cpu = last + 1;
	}
	return buf;
}

/* Reads a CPU list file into set (emptied first); its number of CPUs, or -errno. */
static inline int mk_cpus_read(struct mk_cpus *set, const char *path)
{
	char buf[4096];
	ssize_t len = read_file(path, buf, sizeof(buf));

	memset(set, 0, sizeof(*set));
	if (len < 0)
		return len;
	if (mk_cpus_parse(set, buf))
		return -EINVAL;
	return mk_cpus_count(set);
}

/* Reads instances/NAME/FILE into buf; an empty string if it cannot be read. */
static inline void instance_file(const char *name, const char *file, char *buf, size_t size)
{
	char path[256];

	snprintf(path, sizeof(path), MK "/instances/%s/%s", name, file);
	if (read_file(path, buf, size) < 0)
		buf[0] = '\0';
}

/*
 * The host's doorbell count after WHAT ("received ", "throttled ") in
 * MK/doorbells, over all its CPUs; -1 if unreadable or not there.
 */
static inline long long mk_doorbells(const char *what)
{
	char buf[256], *at;

	if (read_file(MK "/doorbells", buf, sizeof(buf)) <= 0)
		return -1;
	at = strstr(buf, what);
	return at ? strtoll(at + strlen(what), NULL, 10) : -1;
}

/* Permission bits of path, or (mode_t)-1 if it does not exist. */
static inline mode_t mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? (mode_t)-1 : st.st_mode & 07777;
}

/*
 * Whether the host shows @cpu: its cpuN directory exists and MK_CPU/present
 * lists it (an owned CPU is neither while an instance holds it).
 */
static inline bool cpu_shown(int cpu)
{
	struct mk_cpus present;
	char path[64];

	snprintf(path, sizeof(path), MK_CPU "/cpu%d", cpu);
	if (mode_of(path) == (mode_t)-1)
		return false;
	return mk_cpus_read(&present, MK_CPU "/present") > 0 && mk_cpus_has(&present, cpu);
}

/* Names in a directory, apart from "." and "..", sorted and space-separated. */
static inline int list_dir(const char *path, char *out, size_t size)
{
	struct dirent **names;
	int n, i;

	n = scandir(path, &names, NULL, alphasort);
	if (n < 0)
		return -errno;
	out[0] = '\0';
	for (i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
			if (out[0])
				strncat(out, " ", size - strlen(out) - 1);
			strncat(out, names[i]->d_name, size - strlen(out) - 1);
		}
		free(names[i]);
	}
	free(names);
	return 0;
}

/* Removes cap from the calling process's effective set; returns 0 or -errno. */
static inline int drop_effective_cap(int cap)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[CAP_TO_INDEX(cap)].effective &= ~CAP_TO_MASK(cap);
	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

/*
 * The machine as the test program found it, read once before main(): every
 * test runs in a child of the program and sees this copy, so all of them
 * choose the same CPUs whatever instances the earlier ones left running.
 */
struct mk_machine {
	bool present;			/* MK exists: CONFIG_MULTIKERNEL */
	unsigned long long pool;	/* pool/total_bytes; 0 without a pool */
	int last_possible;		/* the highest CPU in MK_CPU/possible */
	/* The host's CPUs: online, or owned by an instance (taken from those online). */
	struct mk_cpus host;
};

static struct mk_machine mk_machine;

static void __attribute__((constructor)) mk_read_machine(void)
{
	char names[4096], path[300], list[4096], *name, *save;
	struct mk_cpus possible;
	int cpu;

	mk_machine.present = mode_of(MK) != (mode_t)-1;
	if (mk_machine.present) {
		mk_machine.pool = read_u64(MK "/pool/total_bytes");
		if (mk_machine.pool == ~0ULL)
			mk_machine.pool = 0;
	}
	mk_cpus_read(&possible, MK_CPU "/possible");
	for (cpu = 0; cpu < MK_MAX_CPUS; cpu++)
		if (mk_cpus_has(&possible, cpu))
			mk_machine.last_possible = cpu;
	mk_cpus_read(&mk_machine.host, MK_CPU "/online");
	if (!mk_machine.present || list_dir(MK "/instances", names, sizeof(names)))
		return;
	for (name = strtok_r(names, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
		snprintf(path, sizeof(path), MK "/instances/%s/cpus", name);
		if (read_file(path, list, sizeof(list)) > 0)
			mk_cpus_parse(&mk_machine.host, list);
	}
}

/*
 * Chooses n CPUs for instances among the host's CPUs other than CPU 0 (the
 * boot CPU, which stays with the host): the highest-numbered ones after
 * passing over the `skip` highest, so that calls with different skip give
 * disjoint sets. Fills cpus[] in ascending order; 0, or -ENODEV (and -1
 * in what is missing) if the machine has too few.
 */
static inline int mk_pick_cpus(int skip, int n, int *cpus)
{
	int cpu, found = 0;

	for (cpu = 0; cpu < n; cpu++)
		cpus[cpu] = -1;
	for (cpu = MK_MAX_CPUS - 1; cpu > 0 && found < skip + n; cpu--) {
		if (!mk_cpus_has(&mk_machine.host, cpu))
			continue;
		if (found >= skip)
			cpus[n - 1 - (found - skip)] = cpu;
		found++;
	}
	return found == skip + n ? 0 : -ENODEV;
}

/* n CPUs as a CPU list, the form create takes: "2-3", "1,3". */
static inline char *mk_cpulist(const int *cpus, int n, char *buf, size_t size)
{
	struct mk_cpus set;
	int i;

	memset(&set, 0, sizeof(set));
	for (i = 0; i < n; i++)
		mk_cpus_add(&set, cpus[i]);
	return mk_cpus_format(&set, buf, size);
}

/*
 * What MK_CPU/online reads ("0-1\n") once the n CPUs are taken from the CPU
 * list `from` (NULL: the host's CPUs as the program found them).
 */
static inline char *mk_online_without(const char *from, const int *cpus, int n,
				      char *buf, size_t size)
{
	struct mk_cpus set = mk_machine.host;
	size_t len;
	int i;

	if (from) {
		memset(&set, 0, sizeof(set));
		mk_cpus_parse(&set, from);
	}
	for (i = 0; i < n; i++)
		mk_cpus_del(&set, cpus[i]);
	mk_cpus_format(&set, buf, size - 1);
	len = strlen(buf);
	buf[len] = '\n';
	buf[len + 1] = '\0';
	return buf;
}

/*
 * Why this machine cannot run a test that needs a pool of pool_mib MiB and
 * ncpus CPUs for its instances (CPUs of the host other than CPU 0), as a
 * skip reason; NULL if it can.
 */
static inline const char *mk_lacks(unsigned long long pool_mib, int ncpus)
{
	static char why[200];
	int spare = mk_cpus_count(&mk_machine.host) - mk_cpus_has(&mk_machine.host, 0);

	if (!mk_machine.present)
		return "needs CONFIG_MULTIKERNEL: " MK " is missing";
	if (mk_machine.pool < pool_mib << 20) {
		if (mk_machine.pool)
			snprintf(why, sizeof(why),
				 "needs multikernel.pool= of at least %llu MiB, this kernel has %llu MiB",
				 pool_mib, mk_machine.pool >> 20);
		else
			snprintf(why, sizeof(why),
				 "needs multikernel.pool= of at least %llu MiB, this kernel has none",
				 pool_mib);
		return why;
	}
	if (spare < ncpus) {
		snprintf(why, sizeof(why),
			 "needs %d online CPU%s besides CPU 0 for instances, this machine has %d",
			 ncpus, ncpus == 1 ? "" : "s", spare);
		return why;
	}
	return NULL;
}

/*
 * In a kselftest_harness.h test or fixture setup, before any check: skips
 * (with the reason) unless the machine has what mk_lacks() asks for.
 */
#define MK_REQUIRE(pool_mib, ncpus) do {				\
	const char *__why = mk_lacks(pool_mib, ncpus);			\
									\
	if (__why)							\
		SKIP(return, "%s", __why);				\
} while (0)

/*
 * Removes instance NAME whatever its state, as a setup or teardown does
 * with what a failed or timed-out case left behind: kills it if it runs,
 * starts, failed or crashed, then destroys it. Never a test failure: true
 * if NAME is gone.
 */
static inline bool mk_remove(const char *name)
{
	char path[256], state[64];

	snprintf(path, sizeof(path), MK "/instances/%s", name);
	if (mode_of(path) == (mode_t)-1)
		return true;
	snprintf(path, sizeof(path), MK "/instances/%s/state", name);
	if (read_file(path, state, sizeof(state)) > 0 &&
	    (!strcmp(state, "starting\n") || !strcmp(state, "running\n") ||
	     !strcmp(state, "stopping\n") ||
	     !strcmp(state, "failed\n") || !strcmp(state, "crashed\n"))) {
		snprintf(path, sizeof(path), MK "/instances/%s/control", name);
		write_str(path, "kill");
	}
	write_str(MK "/destroy", name);
	snprintf(path, sizeof(path), MK "/instances/%s", name);
	return mode_of(path) == (mode_t)-1;
}

/* mk_remove() of every instance whose name starts with prefix. */
static inline void mk_remove_prefixed(const char *prefix)
{
	char names[4096], *name, *save;

	if (list_dir(MK "/instances", names, sizeof(names)))
		return;
	for (name = strtok_r(names, " ", &save); name; name = strtok_r(NULL, " ", &save))
		if (!strncmp(name, prefix, strlen(prefix)))
			mk_remove(name);
}

/* A clock's time in seconds. */
static inline double clock_s(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Waits up to SECS for instance NAME's console to show TEXT; BUF, SIZE hold
 * what was read last. Whether it did.
 */
static inline bool mk_wait_console(const char *name, const char *text, int secs, char *buf,
				   size_t size)
{
	double deadline = clock_s(CLOCK_MONOTONIC) + secs;

	do {
		instance_file(name, "console", buf, size);
		if (strstr(buf, text))
			return true;
		usleep(200 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	return false;
}

static inline int mk_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of n values (sorts them). */
static inline double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), mk_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif /* MK_UTIL_H */
