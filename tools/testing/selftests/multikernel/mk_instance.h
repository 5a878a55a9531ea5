/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers of the selftests that run instance kernels: load a kernel into an
 * instance with kexec_file_load(KEXEC_FILE_MULTIKERNEL), control it, wait
 * for it to start. The kernel and initramfs come from $MK_KERNEL_IMAGE and
 * $MK_INITRAMFS.
 */
#ifndef MK_INSTANCE_H
#define MK_INSTANCE_H

#include <linux/kexec.h>
#include "mk_util.h"

/*
 * Why the files an instance boots are missing, as a skip reason; NULL if
 * they are there: the kernel ($MK_KERNEL_IMAGE, a bzImage of the kernel
 * under test) and, if initramfs, the sample initramfs ($MK_INITRAMFS).
 */
static inline const char *mk_lacks_images(bool initramfs)
{
	const char *kernel = getenv("MK_KERNEL_IMAGE"), *initrd = getenv("MK_INITRAMFS");

	if (!kernel || access(kernel, R_OK))
		return "needs $MK_KERNEL_IMAGE, a bzImage of the kernel under test";
	if (initramfs && (!initrd || access(initrd, R_OK)))
		return "needs $MK_INITRAMFS, the sample initramfs (samples/multikernel/initramfs)";
	return NULL;
}

/* Skips, like MK_REQUIRE(), unless the kernel and the sample initramfs are there. */
#define MK_REQUIRE_IMAGES() do {					\
	const char *__why = mk_lacks_images(true);			\
									\
	if (__why)							\
		SKIP(return, "%s", __why);				\
} while (0)

static inline int load_into(const char *name, const char *line, size_t len)
{
	const char *kernel = getenv("MK_KERNEL_IMAGE"), *initrd = getenv("MK_INITRAMFS");
	char path[256], buf[32];
	int kfd, ifd, id;
	long ret;

	if (!kernel || !initrd)
		return -ENOENT;
	snprintf(path, sizeof(path), MK "/instances/%s/id", name);
	if (read_file(path, buf, sizeof(buf)) <= 0)
		return -ENOENT;
	id = atoi(buf);
	kfd = open(kernel, O_RDONLY);
	ifd = open(initrd, O_RDONLY);
	if (kfd < 0 || ifd < 0)
		ret = -ENOENT;
	else
		ret = syscall(SYS_kexec_file_load, kfd, ifd, len, line,
			      KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_MK_ID(id)) ? -errno : 0;
	if (kfd >= 0)
		close(kfd);
	if (ifd >= 0)
		close(ifd);
	return ret;
}

static inline void state_of(const char *name, char *buf, size_t size)
{
	instance_file(name, "state", buf, size);
}

static inline int control(const char *name, const char *cmd)
{
	char path[256];

	snprintf(path, sizeof(path), MK "/instances/%s/control", name);
	return write_str(path, cmd);
}

/* Waits up to 90 s for an instance to leave "starting"; returns its state. */
static inline void wait_started(const char *name, char *state, size_t size)
{
	double deadline = clock_s(CLOCK_MONOTONIC) + 90;

	do {
		state_of(name, state, size);
		if (strcmp(state, "starting\n"))
			return;
		usleep(100 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
}

/* Waits up to @secs for NAME's state to be @want (with newline); returns the last state. */
static inline void wait_state(const char *name, const char *want, int secs, char *state, size_t size)
{
	double deadline = clock_s(CLOCK_MONOTONIC) + secs;

	do {
		state_of(name, state, size);
		if (!strcmp(state, want))
			return;
		usleep(100 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
}

/*
 * Starts instance NAME afresh: kills and destroys a leftover, creates it
 * from SPEC, loads the kernel with the command line and starts it; 0 once
 * it runs, else -errno (-EIO if it did not come up).
 */
static inline int start_instance(const char *name, const char *spec, const char *line, size_t len)
{
	char state[64];
	int ret;

	control(name, "kill");
	write_str(MK "/destroy", name);
	ret = write_str(MK "/create", spec);
	if (!ret)
		ret = load_into(name, line, len);
	if (!ret)
		ret = control(name, "start");
	if (ret)
		return ret;
	wait_started(name, state, sizeof(state));
	return strcmp(state, "running\n") ? -EIO : 0;
}

/*
 * For the benchmarks: starts instance NAME (256 MiB) on the highest CPU
 * besides CPU 0 with the command line; 0 once it runs, else -1 after saying
 * why on stderr, prefixed with PROG (and nothing left behind).
 */
static inline int start_bench_instance(const char *prog, const char *name, const char *line,
				       size_t len)
{
	char spec[64];
	int ret, cpu;

	if (mk_pick_cpus(0, 1, &cpu)) {
		fprintf(stderr, "%s: no CPU besides CPU 0 for the instance\n", prog);
		return -1;
	}
	snprintf(spec, sizeof(spec), "%s cpus=%d memory=256M", name, cpu);
	ret = start_instance(name, spec, line, len);
	if (ret) {
		fprintf(stderr, "%s: cannot start an instance on CPU %d: %s\n", prog, cpu,
			strerror(-ret));
		mk_remove(name);
		return -1;
	}
	return 0;
}

/*
 * Saves what instance NAME's kernel printed (its live console device, from
 * the oldest byte kept) to $MK_RESULTS/instance-NAME-PID-N.log, where the
 * harness scans it for BUG, Oops and WARNING reports. Nothing without
 * $MK_RESULTS or the device.
 */
static inline void save_console(const char *name)
{
	static int saved;
	const char *dir = getenv("MK_RESULTS");
	char path[512], buf[4096];
	int in, out;
	ssize_t n;

	if (!dir)
		return;
	snprintf(path, sizeof(path), "/dev/mk-%s.console", name);
	in = open(path, O_RDONLY | O_NONBLOCK);
	if (in < 0)
		return;
	snprintf(path, sizeof(path), "%s/instance-%s-%d-%d.log", dir, name, getpid(), saved++);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	while (out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			break;
	if (out >= 0)
		close(out);
	close(in);
}

#endif /* MK_INSTANCE_H */
