/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small helpers shared by the multikernel selftests: whole-file sysfs reads
 * and writes that return -errno, modes, directory listings.
 */
#ifndef MK_UTIL_H
#define MK_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The multikernel control tree. */
#define MK "/sys/kernel/multikernel"

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

/* Reads instances/NAME/FILE into buf; an empty string if it cannot be read. */
static inline void instance_file(const char *name, const char *file, char *buf, size_t size)
{
	char path[256];

	snprintf(path, sizeof(path), MK "/instances/%s/%s", name, file);
	if (read_file(path, buf, size) < 0)
		buf[0] = '\0';
}

/* Permission bits of path, or (mode_t)-1 if it does not exist. */
static inline mode_t mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? (mode_t)-1 : st.st_mode & 07777;
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

/* A clock's time in seconds. */
static inline double clock_s(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
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
