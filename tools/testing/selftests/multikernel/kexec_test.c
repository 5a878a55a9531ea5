// SPDX-License-Identifier: GPL-2.0
/*
 * kexec_file_load(2) with KEXEC_FILE_MULTIKERNEL, through the raw syscall:
 * load, reload, unload, placement inside the instance's memory, every error
 * with the previous image left intact, two instances at once; and ordinary
 * kexec_file_load (and Debian's kexec-tools) unchanged beside it.
 *
 * Needs a pool of 256 MiB, two online CPUs besides CPU 0 (instances take
 * the two highest-numbered) and $MK_KERNEL_IMAGE (a bzImage: the kernel
 * under test, which make check passes); skips, saying what is missing,
 * without them. kexec -p needs crashkernel=. The fixture destroys the
 * instances (kx*) before and after each test, also a failed one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kexec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "mk_util.h"

#define MIB (1ULL << 20)

#ifndef KEXEC_FILE_MULTIKERNEL
#error "needs the uapi <linux/kexec.h> of the multikernel tree (KHDR_INCLUDES)"
#endif

static long kexec_file_load(int kernel_fd, int initrd_fd, const char *cmdline,
			    unsigned long cmdline_len, unsigned long flags)
{
	return syscall(SYS_kexec_file_load, kernel_fd, initrd_fd, cmdline_len, cmdline, flags)
		? -errno : 0;
}

/* Loads into instance id with a NUL-terminated command line; initrd_fd < 0: none. */
static long mk_load(int id, int kernel_fd, int initrd_fd, const char *cmdline)
{
	unsigned long flags = KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_MK_ID(id);

	if (initrd_fd < 0)
		flags |= KEXEC_FILE_NO_INITRAMFS;
	return kexec_file_load(kernel_fd, initrd_fd, cmdline, strlen(cmdline) + 1, flags);
}

static long mk_unload(int id)
{
	return kexec_file_load(-1, -1, NULL, 0,
			       KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_UNLOAD | KEXEC_FILE_MK_ID(id));
}

/* An anonymous file holding len bytes of value. */
static int memfd_with(size_t len, int value)
{
	int fd = memfd_create("mk-kexec-test", 0);
	char *buf;

	if (fd < 0)
		return -1;
	buf = malloc(len);
	if (!buf || (memset(buf, value, len), write(fd, buf, len) != (ssize_t)len)) {
		free(buf);
		close(fd);
		return -1;
	}
	free(buf);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static int instance_id(const char *name)
{
	char path[256], buf[32];

	snprintf(path, sizeof(path), MK "/instances/%s/id", name);
	return read_file(path, buf, sizeof(buf)) > 0 ? atoi(buf) : -1;
}

/* Value of "key value" in an instance's image file; NULL if absent. */
static char *image_field(const char *image, const char *key, char *out, size_t size)
{
	const char *line = image;
	size_t klen = strlen(key);

	while (line && *line) {
		if (!strncmp(line, key, klen) && line[klen] == ' ') {
			const char *v = line + klen + 1, *end = strchrnul(v, '\n');
			size_t n = end - v < (long)size - 1 ? (size_t)(end - v) : size - 1;

			memcpy(out, v, n);
			out[n] = '\0';
			return out;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return NULL;
}

struct range {
	unsigned long long start, end;	/* inclusive */
};

/* Every "segment NAME 0xA-0xB" line; returns how many. */
static int segments(const char *image, struct range *out, int max)
{
	const char *line = image;
	int n = 0;

	while (line && *line && n < max) {
		char name[32];

		if (sscanf(line, "segment %31s 0x%llx-0x%llx", name, &out[n].start, &out[n].end) == 3)
			n++;
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return n;
}

static struct range memory_of(const char *name)
{
	struct range r = { 0, 0 };
	char buf[128];

	instance_file(name, "memory", buf, sizeof(buf));
	sscanf(buf, "0x%llx-0x%llx", &r.start, &r.end);
	return r;
}

FIXTURE(kx) {
	int kernel_fd;
	off_t kernel_size;
	int id0;
	int cpu[2];	/* kx0's CPU, then the one of kx1 and kx_small */
	bool lz4;	/* the kernel is LZ4-compressed: a load unpacks it */
};

static void remove_instances(void)
{
	mk_remove("kx0");
	mk_remove("kx1");
	mk_remove("kx_small");
}

/* The whole of fd, in a malloc'd buffer of *len bytes. */
static unsigned char *slurp(int fd, size_t *len)
{
	struct stat st;
	unsigned char *buf;

	if (fstat(fd, &st))
		return NULL;
	buf = malloc(st.st_size);
	if (buf && pread(fd, buf, st.st_size, 0) != st.st_size) {
		free(buf);
		return NULL;
	}
	*len = st.st_size;
	return buf;
}

static unsigned int le32(const unsigned char *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (unsigned int)p[3] << 24;
}

/*
 * Offset in the bzImage file of the last 4 bytes of its compressed kernel
 * (the decompressed size), from the boot header: the protected-mode part
 * starts after (setup_sects + 1) sectors, payload_offset and payload_length
 * place the compressed kernel in it.
 */
static size_t size_field(const unsigned char *file)
{
	size_t pm = ((file[0x1f1] ? file[0x1f1] : 4) + 1) * 512;

	return pm + le32(file + 0x248) + le32(file + 0x24c) - 4;
}

/* Whether the compressed kernel starts with the LZ4 legacy magic. */
static bool is_lz4(int fd)
{
	unsigned char hdr[0x250], magic[4];
	size_t pm;

	if (pread(fd, hdr, sizeof(hdr), 0) != sizeof(hdr))
		return false;
	pm = ((hdr[0x1f1] ? hdr[0x1f1] : 4) + 1) * 512;
	if (pread(fd, magic, 4, pm + le32(hdr + 0x248)) != 4)
		return false;
	return le32(magic) == 0x184c2102;
}

FIXTURE_SETUP(kx)
{
	const char *path = getenv("MK_KERNEL_IMAGE");
	char spec[64];
	struct stat st;

	self->kernel_fd = -1;
	MK_REQUIRE(256, 2);
	if (!path || stat(path, &st))
		SKIP(return, "needs $MK_KERNEL_IMAGE, a bzImage of the kernel under test");
	mk_pick_cpus(0, 2, self->cpu);
	self->kernel_fd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_GE(self->kernel_fd, 0);
	self->kernel_size = st.st_size;
	self->lz4 = is_lz4(self->kernel_fd);
	/* What an earlier test left when it failed part-way or timed out. */
	remove_instances();
	snprintf(spec, sizeof(spec), "kx0 cpus=%d memory=128M", self->cpu[0]);
	ASSERT_EQ(0, write_str(MK "/create", spec));
	self->id0 = instance_id("kx0");
	ASSERT_GT(self->id0, 0);
}

/* Also after a failed ASSERT: nothing is left for the next test. */
FIXTURE_TEARDOWN(kx)
{
	if (self->kernel_fd >= 0)
		close(self->kernel_fd);
	remove_instances();
	write_str(MK "/unpack", "1");
}

/* Load, look, reload, unload. */
TEST_F(kx, load_reload_unload)
{
	char image[4096], buf[256];
	struct range kernel;
	int initrd = memfd_with(100000, 0x5a);

	ASSERT_GE(initrd, 0);
	instance_file("kx0", "image", image, sizeof(image));
	EXPECT_STREQ("", image);

	ASSERT_EQ(0, mk_load(self->id0, self->kernel_fd, initrd, "console=ttyS1 first"));
	instance_file("kx0", "state", buf, sizeof(buf));
	EXPECT_STREQ("loaded\n", buf);
	instance_file("kx0", "image", image, sizeof(image));
	ASSERT_NE(NULL, image_field(image, "kernel_size", buf, sizeof(buf))) TH_LOG("%s", image);
	EXPECT_EQ(self->kernel_size, atoll(buf));
	ASSERT_NE(NULL, image_field(image, "initrd_size", buf, sizeof(buf)));
	EXPECT_STREQ("100000", buf);
	ASSERT_NE(NULL, image_field(image, "cmdline", buf, sizeof(buf)));
	EXPECT_STREQ("console=ttyS1 first", buf);
	/*
	 * Unpacked at load (LZ4, the test kernel's compression): entered at its
	 * startup_64, inside the kernel segment, not at the bzImage's entry.
	 * Another compression: the bzImage's entry.
	 */
	ASSERT_NE(NULL, image_field(image, "boot", buf, sizeof(buf)));
	EXPECT_STREQ(self->lz4 ? "vmlinux" : "bzimage", buf);
	ASSERT_NE(NULL, image_field(image, "entry", buf, sizeof(buf)));
	ASSERT_EQ(1, segments(image, &kernel, 1));
	EXPECT_EQ(memory_of("kx0").start, kernel.start);
	EXPECT_GE(strtoull(buf, NULL, 0), kernel.start);
	EXPECT_LT(strtoull(buf, NULL, 0), kernel.end);
	if (self->lz4) {
		EXPECT_NE(kernel.start + 0x200, strtoull(buf, NULL, 0));
	} else {
		EXPECT_EQ(kernel.start + 0x200, strtoull(buf, NULL, 0));
	}

	/* Reload: replaces, here without an initrd. */
	ASSERT_EQ(0, mk_load(self->id0, self->kernel_fd, -1, "second"));
	instance_file("kx0", "image", image, sizeof(image));
	ASSERT_NE(NULL, image_field(image, "cmdline", buf, sizeof(buf)));
	EXPECT_STREQ("second", buf);
	ASSERT_NE(NULL, image_field(image, "initrd_size", buf, sizeof(buf)));
	EXPECT_STREQ("0", buf);
	EXPECT_EQ(NULL, strstr(image, "segment initrd"));

	ASSERT_EQ(0, mk_unload(self->id0));
	instance_file("kx0", "state", buf, sizeof(buf));
	EXPECT_STREQ("reserved\n", buf);
	instance_file("kx0", "image", image, sizeof(image));
	EXPECT_STREQ("", image);
	/* Unloading nothing is not an error, as for ordinary kexec. */
	EXPECT_EQ(0, mk_unload(self->id0));
	close(initrd);
}

/* Every segment lies inside the instance's memory, and none overlap. */
TEST_F(kx, placement)
{
	struct range seg[9], mem = memory_of("kx0");
	char image[4096];
	int initrd = memfd_with(3 * MIB + 123, 1), n, i, j;

	ASSERT_GE(initrd, 0);
	ASSERT_EQ(0, mk_load(self->id0, self->kernel_fd, initrd, "placement"));
	instance_file("kx0", "image", image, sizeof(image));
	n = segments(image, seg, 9);
	/* kernel boot_params cmdline pagetables mailbox park ikc initrd */
	EXPECT_EQ(8, n) TH_LOG("%s", image);
	for (i = 0; i < n; i++) {
		EXPECT_GE(seg[i].start, mem.start);
		EXPECT_LE(seg[i].end, mem.end);
		EXPECT_LE(seg[i].start, seg[i].end);
		for (j = 0; j < i; j++)
			EXPECT_TRUE(seg[i].end < seg[j].start || seg[j].end < seg[i].start);
	}
	/* The kernel is at the bottom, 2 MiB aligned; the initrd is at the top. */
	EXPECT_EQ(mem.start, seg[0].start);
	EXPECT_EQ(0ULL, seg[0].start % (2 * MIB));
	EXPECT_EQ(3 * MIB + 123, seg[n - 1].end - seg[n - 1].start + 1);
	close(initrd);
}

/* Each error leaves the loaded image exactly as it was. */
TEST_F(kx, errors_keep_image)
{
	char before[4096], after[4096], big[4096];
	int junk = memfd_with(64 * 1024, 0), status;
	pid_t pid;

	ASSERT_GE(junk, 0);
	ASSERT_EQ(0, mk_load(self->id0, self->kernel_fd, -1, "keep"));
	instance_file("kx0", "image", before, sizeof(before));

	EXPECT_EQ(-ENOENT, mk_load(4000, self->kernel_fd, -1, "x"));
	EXPECT_EQ(-ENOENT, mk_load(0, self->kernel_fd, -1, "x"));
	EXPECT_EQ(-ENOENT, mk_unload(4000));
	EXPECT_EQ(-ENOEXEC, mk_load(self->id0, junk, -1, "x"));
	EXPECT_EQ(-EBADF, mk_load(self->id0, 9999, -1, "x"));
	EXPECT_EQ(-EBADF, mk_load(self->id0, self->kernel_fd, 9999, "x"));
	/* The command line must end in NUL and fit the kernel's cmdline_size. */
	EXPECT_EQ(-EINVAL, kexec_file_load(self->kernel_fd, -1, "abc", 3,
					   KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_NO_INITRAMFS |
					   KEXEC_FILE_MK_ID(self->id0)));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	EXPECT_EQ(-EINVAL, mk_load(self->id0, self->kernel_fd, -1, big));
	/*
	 * Lines the kernel would stop reading before the instance's parameters,
	 * which the loader adds after the user's: a NUL inside, an open quote.
	 */
	EXPECT_EQ(-EINVAL, kexec_file_load(self->kernel_fd, -1, "a\0b", 4,
					   KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_NO_INITRAMFS |
					   KEXEC_FILE_MK_ID(self->id0)));
	EXPECT_EQ(-EINVAL, mk_load(self->id0, self->kernel_fd, -1, "quiet x=\"a b"));
	/* Unknown flag bits, and flags that make no sense for an instance. */
	EXPECT_EQ(-EINVAL, kexec_file_load(self->kernel_fd, -1, "x", 2,
					   KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_NO_INITRAMFS |
					   KEXEC_FILE_MK_ID(self->id0) | 0x80));
	EXPECT_EQ(-EINVAL, kexec_file_load(self->kernel_fd, -1, "x", 2,
					   KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_NO_INITRAMFS |
					   KEXEC_FILE_MK_ID(self->id0) | 0x10000000));
	EXPECT_EQ(-EINVAL, kexec_file_load(self->kernel_fd, -1, "x", 2,
					   KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_ON_CRASH |
					   KEXEC_FILE_NO_INITRAMFS | KEXEC_FILE_MK_ID(self->id0)));
	/* Without CAP_SYS_BOOT, even root gets EPERM. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (drop_effective_cap(CAP_SYS_BOOT))
			_exit(11);
		_exit(mk_load(self->id0, self->kernel_fd, -1, "x") == -EPERM &&
		      mk_unload(self->id0) == -EPERM ? 0 : 12);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	instance_file("kx0", "image", after, sizeof(after));
	EXPECT_STREQ(before, after);
	instance_file("kx0", "state", after, sizeof(after));
	EXPECT_STREQ("loaded\n", after);
	close(junk);
}

/*
 * /sys/kernel/multikernel/unpack: 0 makes the next load leave the kernel
 * compressed, entered at the bzImage's 64-bit entry (load address + 0x200);
 * 1 (the default) unpacks it. Anything else: EINVAL.
 */
TEST_F(kx, unpack_switch)
{
	char image[4096], buf[64];
	unsigned long long start = memory_of("kx0").start;

	if (!self->lz4)
		SKIP(return, "$MK_KERNEL_IMAGE is not LZ4-compressed: nothing is unpacked");

	read_file(MK "/unpack", buf, sizeof(buf));
	ASSERT_STREQ("1\n", buf);
	EXPECT_EQ(-EINVAL, write_str(MK "/unpack", "2"));
	EXPECT_EQ(-EINVAL, write_str(MK "/unpack", "yes"));
	EXPECT_EQ(-EINVAL, write_str(MK "/unpack", "\n"));
	ASSERT_EQ(0, write_str(MK "/unpack", "0"));
	read_file(MK "/unpack", buf, sizeof(buf));
	EXPECT_STREQ("0\n", buf);
	EXPECT_EQ(0, mk_load(self->id0, self->kernel_fd, -1, "packed"));
	ASSERT_EQ(0, write_str(MK "/unpack", "1\n"));
	instance_file("kx0", "image", image, sizeof(image));
	ASSERT_NE(NULL, image_field(image, "boot", buf, sizeof(buf))) TH_LOG("%s", image);
	EXPECT_STREQ("bzimage", buf);
	ASSERT_NE(NULL, image_field(image, "entry", buf, sizeof(buf)));
	EXPECT_EQ(start + 0x200, strtoull(buf, NULL, 0));

	ASSERT_EQ(0, mk_load(self->id0, self->kernel_fd, -1, "unpacked"));
	instance_file("kx0", "image", image, sizeof(image));
	ASSERT_NE(NULL, image_field(image, "boot", buf, sizeof(buf)));
	EXPECT_STREQ("vmlinux", buf);
}

/*
 * A kernel whose compressed form does not decompress to what it records is
 * refused at load (ENOEXEC), not at start on the instance's CPU; the image
 * loaded before stays. Left compressed (unpack 0), the same file loads: only
 * unpacking reads the compressed kernel.
 */
TEST_F(kx, corrupt_kernel_refused)
{
	char before[4096], after[4096];
	unsigned char *file;
	size_t len, at;
	int fd;

	if (!self->lz4)
		SKIP(return, "$MK_KERNEL_IMAGE is not LZ4-compressed: only an LZ4 kernel is unpacked at load");
	file = slurp(self->kernel_fd, &len);
	ASSERT_NE(NULL, file);
	at = size_field(file);
	ASSERT_LT(at + 4, len + 1);
	/* The decompressed size it records, one larger. */
	file[at]++;
	fd = memfd_create("mk-corrupt", 0);
	ASSERT_GE(fd, 0);
	ASSERT_EQ((ssize_t)len, write(fd, file, len));
	free(file);

	ASSERT_EQ(0, mk_load(self->id0, self->kernel_fd, -1, "good"));
	instance_file("kx0", "image", before, sizeof(before));
	EXPECT_EQ(-ENOEXEC, mk_load(self->id0, fd, -1, "corrupt"));
	instance_file("kx0", "image", after, sizeof(after));
	EXPECT_STREQ(before, after);
	ASSERT_EQ(0, write_str(MK "/unpack", "0"));
	EXPECT_EQ(0, mk_load(self->id0, fd, -1, "corrupt"));
	ASSERT_EQ(0, write_str(MK "/unpack", "1"));
	close(fd);
}

/* An instance too small for the kernel: ENOMEM, the log says how much is needed. */
TEST_F(kx, too_small)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "kx_small cpus=%d memory=2M", self->cpu[1]);
	ASSERT_EQ(0, write_str(MK "/create", buf));
	EXPECT_EQ(-ENOMEM, mk_load(instance_id("kx_small"), self->kernel_fd, -1, "x"));
	instance_file("kx_small", "state", buf, sizeof(buf));
	EXPECT_STREQ("reserved\n", buf);
	instance_file("kx_small", "image", buf, sizeof(buf));
	EXPECT_STREQ("", buf);
}

/* Two instances loaded at once, each inside its own memory. */
TEST_F(kx, two_instances)
{
	struct range a[8], b[8], ma = memory_of("kx0"), mb;
	char image[4096];
	int na, nb, i, id1;

	snprintf(image, sizeof(image), "kx1 cpus=%d memory=128M", self->cpu[1]);
	ASSERT_EQ(0, write_str(MK "/create", image));
	id1 = instance_id("kx1");
	mb = memory_of("kx1");
	ASSERT_EQ(0, mk_load(self->id0, self->kernel_fd, -1, "instance zero"));
	ASSERT_EQ(0, mk_load(id1, self->kernel_fd, -1, "instance one"));
	instance_file("kx0", "image", image, sizeof(image));
	na = segments(image, a, 8);
	EXPECT_NE(NULL, strstr(image, "cmdline instance zero\n"));
	instance_file("kx1", "image", image, sizeof(image));
	nb = segments(image, b, 8);
	EXPECT_NE(NULL, strstr(image, "cmdline instance one\n"));
	EXPECT_EQ(7, na);
	EXPECT_EQ(7, nb);
	for (i = 0; i < na; i++)
		EXPECT_TRUE(a[i].start >= ma.start && a[i].end <= ma.end);
	for (i = 0; i < nb; i++)
		EXPECT_TRUE(b[i].start >= mb.start && b[i].end <= mb.end);
	/* Destroying a loaded instance unloads it first. */
	ASSERT_EQ(0, write_str(MK "/destroy", "kx1"));
	instance_file("kx0", "state", image, sizeof(image));
	EXPECT_STREQ("loaded\n", image);
}

static int read_int(const char *path)
{
	char buf[32];

	return read_file(path, buf, sizeof(buf)) > 0 ? atoi(buf) : -1;
}

/* Ordinary kexec_file_load still stages a kernel to replace this one. */
TEST_F(kx, ordinary_load_unchanged)
{
	char before[4096], after[4096];

	ASSERT_EQ(0, mk_load(self->id0, self->kernel_fd, -1, "mk"));
	instance_file("kx0", "image", before, sizeof(before));
	ASSERT_EQ(0, kexec_file_load(self->kernel_fd, -1, "ordinary", 9, KEXEC_FILE_NO_INITRAMFS));
	EXPECT_EQ(1, read_int("/sys/kernel/kexec_loaded"));
	/* The multikernel flag bits mean nothing without KEXEC_FILE_MULTIKERNEL. */
	EXPECT_EQ(-EINVAL, kexec_file_load(self->kernel_fd, -1, "x", 2,
					   KEXEC_FILE_NO_INITRAMFS | KEXEC_FILE_MK_ID(1)));
	ASSERT_EQ(0, kexec_file_load(-1, -1, NULL, 0, KEXEC_FILE_UNLOAD));
	EXPECT_EQ(0, read_int("/sys/kernel/kexec_loaded"));
	instance_file("kx0", "image", after, sizeof(after));
	EXPECT_STREQ(before, after);
}

static int run(const char *cmd)
{
	int status = system(cmd);

	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Debian's kexec-tools: kexec -s -l / -u, and kexec -s -p when a crash region exists. */
TEST_F(kx, kexec_tools)
{
	char cmd[1024];
	const char *img = getenv("MK_KERNEL_IMAGE");

	if (run("command -v kexec >/dev/null"))
		SKIP(return, "kexec-tools not installed");
	snprintf(cmd, sizeof(cmd), "kexec -s -l %s --command-line='console=ttyS0'", img);
	ASSERT_EQ(0, run(cmd));
	EXPECT_EQ(1, read_int("/sys/kernel/kexec_loaded"));
	ASSERT_EQ(0, run("kexec -s -u"));
	EXPECT_EQ(0, read_int("/sys/kernel/kexec_loaded"));
}

/* kexec -s -p, in its own test: a skip after checks would hide their failures. */
TEST_F(kx, kexec_tools_crash)
{
	char cmd[1024];
	const char *img = getenv("MK_KERNEL_IMAGE");

	if (run("command -v kexec >/dev/null"))
		SKIP(return, "kexec-tools not installed");
	if (read_int("/sys/kernel/kexec_crash_size") <= 0)
		SKIP(return, "no crash kernel region (boot with crashkernel=)");
	snprintf(cmd, sizeof(cmd), "kexec -s -p %s --command-line='console=ttyS0'", img);
	ASSERT_EQ(0, run(cmd));
	EXPECT_EQ(1, read_int("/sys/kernel/kexec_crash_loaded"));
	ASSERT_EQ(0, run("kexec -s -p -u"));
	EXPECT_EQ(0, read_int("/sys/kernel/kexec_crash_loaded"));
}

TEST_HARNESS_MAIN
