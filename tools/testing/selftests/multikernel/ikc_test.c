// SPDX-License-Identifier: GPL-2.0
/*
 * The inter-kernel channel (IKC) between the host and a running instance,
 * through the host's message device /dev/mk-NAME and sysfs:
 *
 * - 10,000 messages of sizes 1..4096 to the instance kernel's echo service,
 *   written by one thread with blocking writes and read back by another:
 *   content and order checked;
 * - a flood with O_NONBLOCK until the channel pushes back (EAGAIN), then
 *   everything read back: nothing lost;
 * - bad messages and settings are refused with the documented errno and the
 *   channel stays usable;
 * - ping, counters, modes, the instance's console output on the host;
 * - batches of messages per call (MK_IKC_SEND, MK_IKC_RECV), good and bad;
 * - user space in the instance (its /dev/mk-host) answering on a user port,
 *   one message and batches;
 * - a killed instance, and one whose kernel panics (it stops beating):
 *   senders, readers and pollers get an error, not a hang.
 *
 * Needs a pool of 256 MiB, one online CPU besides CPU 0 (the instance
 * takes the highest-numbered), $MK_KERNEL_IMAGE and $MK_INITRAMFS (the
 * sample initramfs, whose init runs the user-space echo); skips, saying
 * what is missing, without them. Each test starts the instance afresh;
 * the fixture kills and destroys it afterwards, also after a failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/multikernel.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "mk_util.h"
#include "mk_instance.h"
#include "mk_stream.h"

#define NAME "ik0"
#define INST MK "/instances/" NAME
#define DEV "/dev/mk-" NAME
/* The other instances of net_bridge. */
#define NAME1 "ik1"
#define INST1 MK "/instances/" NAME1
#define NAME2 "ik2"
#define INST2 MK "/instances/" NAME2

/* No console= UART in this VM for the instance: its output reaches the host over IKC only. */
static const char cmdline[] = "console=ttyS1 kunit.enable=0 panic=0 loglevel=6 mk_sample=echo";
static const char crash_cmdline[] = "console=ttyS1 kunit.enable=0 panic=0 loglevel=6 mk_sample=exit";

struct msg {
	struct mk_ikc_msg h;
	unsigned char data[MK_IKC_MAX_PAYLOAD];
};

/* A payload that depends on (seed, len) only. */
static void fill(unsigned char *p, uint32_t seed, size_t len)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = x;
	}
	if (len >= 4)
		memcpy(p, &seed, 4);
}

/* The size of message i: pseudo-random in 1..4096. */
static size_t size_of(uint32_t i)
{
	uint32_t x = i * 2246822519u + 3266489917u;

	x ^= x >> 15;
	x *= 2654435761u;
	x ^= x >> 13;
	return 1 + x % MK_IKC_MAX_PAYLOAD;
}

static ssize_t send_msg(int fd, uint16_t port, const void *data, size_t len)
{
	struct msg m = { .h = { .port = port, .len = len } };
	ssize_t n;

	memcpy(m.data, data, len);
	n = write(fd, &m, sizeof(m.h) + len);
	return n < 0 ? -errno : n;
}

static ssize_t recv_msg(int fd, struct msg *m)
{
	ssize_t n = read(fd, m, sizeof(*m));

	return n < 0 ? -errno : n;
}

/* Appends a record to a batch at buf (*len bytes so far). */
static void batch_add(unsigned char *buf, size_t *len, uint16_t port, const void *data,
		      size_t n)
{
	struct mk_ikc_msg *m = (struct mk_ikc_msg *)(buf + *len);

	m->port = port;
	m->flags = 0;
	m->len = n;
	memcpy(m->data, data, n);
	memset(m->data + n, 0xee, MK_IKC_RECORD_SIZE(n) - sizeof(*m) - n);
	*len += MK_IKC_RECORD_SIZE(n);
}

/* MK_IKC_SEND or MK_IKC_RECV of len bytes at buf: 0 or -errno; count and len in *b. */
static int batch(int fd, unsigned long cmd, void *buf, size_t len, struct mk_ikc_batch *b)
{
	*b = (struct mk_ikc_batch){ .buf = (uintptr_t)buf, .len = len };
	return ioctl(fd, cmd, b) ? -errno : 0;
}

/* poll(2) on one fd: its revents, 0 on timeout. */
static int wait_fd(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r = poll(&p, 1, ms);

	return r > 0 ? p.revents : r;
}

static bool console_stream_shows(int fd, const char *needle, char *seen, size_t size);
static bool console_stream_shows_within(int fd, const char *needle, char *seen, size_t size,
					int secs);

/* The sample init's last boot line. */
#define INIT_SERVED "MULTIKERNEL-SAMPLE-INIT echo service"

static unsigned long counter(const char *file)
{
	char path[256], buf[64];

	snprintf(path, sizeof(path), INST "/ikc/%s", file);
	if (read_file(path, buf, sizeof(buf)) <= 0)
		return (unsigned long)-1;
	return strtoul(buf, NULL, 10);
}

/* Reads one message within ms; checks it is message i of the echo stream. */
static bool expect_echo(int fd, uint32_t i, int ms, char *why, size_t size)
{
	static struct msg m;
	unsigned char want[MK_IKC_MAX_PAYLOAD];
	size_t len = size_of(i);
	ssize_t n;

	if (!(wait_fd(fd, POLLIN, ms) & POLLIN)) {
		snprintf(why, size, "message %u: nothing within %d ms", i, ms);
		return false;
	}
	n = recv_msg(fd, &m);
	fill(want, i, len);
	if (n != (ssize_t)(sizeof(m.h) + len) || m.h.port != MK_IKC_PORT_ECHO || m.h.len != len) {
		snprintf(why, size, "message %u: read %zd, port %u, len %u; want len %zu", i, n,
			 m.h.port, m.h.len, len);
		return false;
	}
	if (memcmp(m.data, want, len)) {
		snprintf(why, size, "message %u: content differs", i);
		return false;
	}
	return true;
}

FIXTURE(ikc) {
	int fd;
	char spec[64];	/* NAME on the highest CPU */
};

FIXTURE_SETUP(ikc)
{
	int cpu, ret;

	self->fd = -1;
	MK_REQUIRE(256, 1);
	MK_REQUIRE_IMAGES();
	mk_pick_cpus(0, 1, &cpu);
	snprintf(self->spec, sizeof(self->spec), NAME " cpus=%d memory=256M", cpu);
	/* Also removes what an earlier test left when it failed part-way or timed out. */
	ret = start_instance(NAME, self->spec, cmdline, sizeof(cmdline));
	if (!ret)
		self->fd = open(DEV, O_RDWR);
	if (self->fd < 0) {
		/* No teardown after a failed setup: clean up here. */
		save_console(NAME);
		mk_remove(NAME);
	}
	ASSERT_EQ(0, ret);
	ASSERT_LE(0, self->fd);
}

/* Also after a failed ASSERT: nothing is left for the next test. */
FIXTURE_TEARDOWN(ikc)
{
	if (self->fd >= 0)
		close(self->fd);
	save_console(NAME);
	mk_remove(NAME);
	/* What net_bridge adds. */
	if (!access(INST1, F_OK)) {
		save_console(NAME1);
		mk_remove(NAME1);
	}
	if (!access(INST2, F_OK)) {
		save_console(NAME2);
		mk_remove(NAME2);
	}
	if (!access("/sys/class/net/mkbr0", F_OK))
		system("ip link del mkbr0");
}

#define ECHO_COUNT 10000u

struct writer {
	int fd;
	uint32_t count;
	uint32_t sent;
	int error;
};

static void *write_stream(void *arg)
{
	struct writer *w = arg;
	unsigned char buf[MK_IKC_MAX_PAYLOAD];
	ssize_t n;

	for (w->sent = 0; w->sent < w->count; w->sent++) {
		size_t len = size_of(w->sent);

		fill(buf, w->sent, len);
		n = send_msg(w->fd, MK_IKC_PORT_ECHO, buf, len);
		if (n != (ssize_t)(sizeof(struct mk_ikc_msg) + len)) {
			w->error = n < 0 ? (int)-n : EIO;
			break;
		}
	}
	return NULL;
}

/* 10,000 messages of random sizes through the instance kernel's echo: all back, in order. */
TEST_F_TIMEOUT(ikc, echo_10000, 600)
{
	struct writer w = { .fd = self->fd, .count = ECHO_COUNT };
	unsigned long full0 = counter("ring_full");
	char why[128] = "";
	pthread_t thread;
	uint32_t i;

	ASSERT_EQ(0, pthread_create(&thread, NULL, write_stream, &w));
	for (i = 0; i < ECHO_COUNT; i++)
		if (!expect_echo(self->fd, i, 20000, why, sizeof(why)))
			break;
	pthread_join(thread, NULL);
	EXPECT_EQ(ECHO_COUNT, i) TH_LOG("%s", why);
	EXPECT_EQ(0, w.error) TH_LOG("writer: %s after %u messages", strerror(w.error), w.sent);
	EXPECT_EQ(ECHO_COUNT, w.sent);
	/* Nothing more. */
	EXPECT_EQ(0, wait_fd(self->fd, POLLIN, 200));
	EXPECT_LE((unsigned long)ECHO_COUNT, counter("tx"));
	EXPECT_LE((unsigned long)ECHO_COUNT, counter("rx"));
	EXPECT_EQ(0UL, counter("errors"));
	TH_LOG("ring full %lu times, %lu doorbells for %lu messages sent",
	       counter("ring_full") - full0, counter("doorbells"), counter("tx"));
}

/*
 * Batches (MK_IKC_SEND, MK_IKC_RECV) through the instance kernel's echo:
 * 300 messages of random sizes in batches of 50, read back in batches of
 * 1..3 records' room: content, order and zeroed padding checked. Then bad
 * batches: the documented errno for a first bad record, a partial count for
 * a later one, and the channel still works.
 */
TEST_F_TIMEOUT(ikc, batches, 300)
{
	static unsigned char buf[50 * MK_IKC_RECORD_SIZE(MK_IKC_MAX_PAYLOAD)];
	unsigned char want[MK_IKC_MAX_PAYLOAD];
	struct mk_ikc_batch b;
	uint32_t sent = 0, got = 0, i;
	size_t len, at;
	char why[160] = "";

	while (sent < 300) {
		for (len = 0, i = 0; i < 50; i++, sent++) {
			fill(want, sent, size_of(sent));
			batch_add(buf, &len, MK_IKC_PORT_ECHO, want, size_of(sent));
		}
		ASSERT_EQ(0, batch(self->fd, MK_IKC_SEND, buf, len, &b));
		ASSERT_EQ(50U, b.count);
		/* Take the answers as they come (the host's inbox holds 256). */
		while (got < sent && !why[0]) {
			size_t room = (1 + got % 3) * MK_IKC_RECORD_SIZE(MK_IKC_MAX_PAYLOAD);

			if (!(wait_fd(self->fd, POLLIN, 20000) & POLLIN)) {
				snprintf(why, sizeof(why), "message %u: nothing within 20 s", got);
				break;
			}
			ASSERT_EQ(0, batch(self->fd, MK_IKC_RECV, buf, room, &b));
			ASSERT_LE(1U, b.count);
			ASSERT_GE(room, b.len);
			for (at = 0, i = 0; i < b.count; i++, got++) {
				struct mk_ikc_msg *m = (struct mk_ikc_msg *)(buf + at);
				size_t size = MK_IKC_RECORD_SIZE(m->len), pad;

				fill(want, got, size_of(got));
				if (m->port != MK_IKC_PORT_ECHO || m->len != size_of(got) ||
				    memcmp(m->data, want, m->len) || at + size > b.len) {
					snprintf(why, sizeof(why), "message %u: port %u len %u, want len %zu",
						 got, m->port, m->len, size_of(got));
					break;
				}
				for (pad = sizeof(*m) + m->len; pad < size && !why[0]; pad++)
					if (buf[at + pad])
						snprintf(why, sizeof(why), "message %u: padding not zero", got);
				if (why[0])
					break;
				at += size;
			}
			EXPECT_EQ(b.len, at);
		}
		if (why[0])
			break;
	}
	EXPECT_EQ(300U, got) TH_LOG("%s", why);
	EXPECT_EQ(0, wait_fd(self->fd, POLLIN, 200));

	/* An empty batch sends nothing; flags and reserved must be 0; unknown commands. */
	EXPECT_EQ(0, batch(self->fd, MK_IKC_SEND, buf, 0, &b));
	EXPECT_EQ(0U, b.count);
	b = (struct mk_ikc_batch){ .buf = (uintptr_t)buf, .len = 0, .flags = 1 };
	EXPECT_EQ(-1, ioctl(self->fd, MK_IKC_SEND, &b));
	EXPECT_EQ(EINVAL, errno);
	b = (struct mk_ikc_batch){ .buf = (uintptr_t)buf, .len = 0, .reserved = 1 };
	EXPECT_EQ(-1, ioctl(self->fd, MK_IKC_RECV, &b));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->fd, _IOWR(0xB9, 0x03, struct mk_ikc_batch), &b));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->fd, MK_IKC_SEND, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-EFAULT, batch(self->fd, MK_IKC_SEND, NULL, 16, &b));
	/* A first bad record: its errno, nothing sent. */
	len = 0;
	batch_add(buf, &len, 1, "x", 1);
	EXPECT_EQ(-EINVAL, batch(self->fd, MK_IKC_SEND, buf, len, &b));
	((struct mk_ikc_msg *)buf)->port = MK_IKC_PORT_ECHO;
	((struct mk_ikc_msg *)buf)->len = MK_IKC_MAX_PAYLOAD + 1;
	EXPECT_EQ(-EMSGSIZE, batch(self->fd, MK_IKC_SEND, buf, sizeof(buf), &b));
	EXPECT_EQ(-EINVAL, batch(self->fd, MK_IKC_SEND, buf, 4, &b));
	/* A bad record after good ones: the good ones go, count says how many. */
	len = 0;
	batch_add(buf, &len, MK_IKC_PORT_ECHO, "one", 3);
	batch_add(buf, &len, MK_IKC_PORT_ECHO, "two", 3);
	batch_add(buf, &len, 3, "console", 7);
	batch_add(buf, &len, MK_IKC_PORT_ECHO, "never", 5);
	EXPECT_EQ(0, batch(self->fd, MK_IKC_SEND, buf, len, &b));
	EXPECT_EQ(2U, b.count);
	/* A batch that ends inside a record's payload: the whole records before it go. */
	len = 0;
	batch_add(buf, &len, MK_IKC_PORT_ECHO, "three", 5);
	batch_add(buf, &len, MK_IKC_PORT_ECHO, "cut short", 9);
	EXPECT_EQ(0, batch(self->fd, MK_IKC_SEND, buf, len - 10, &b));
	EXPECT_EQ(1U, b.count);
	/* The last record's padding may be left out. */
	len = 0;
	batch_add(buf, &len, MK_IKC_PORT_ECHO, "four", 4);
	EXPECT_EQ(0, batch(self->fd, MK_IKC_SEND, buf, sizeof(struct mk_ikc_msg) + 4, &b));
	EXPECT_EQ(1U, b.count);
	/* Receiving: no room for a header, or for the first message: EMSGSIZE, it stays. */
	ASSERT_EQ(POLLIN, wait_fd(self->fd, POLLIN, 20000) & POLLIN);
	EXPECT_EQ(-EMSGSIZE, batch(self->fd, MK_IKC_RECV, buf, 4, &b));
	EXPECT_EQ(-EMSGSIZE, batch(self->fd, MK_IKC_RECV, buf, sizeof(struct mk_ikc_msg) + 2, &b));
	EXPECT_EQ(-EFAULT, batch(self->fd, MK_IKC_RECV, NULL, 4096, &b));
	/* All four, in order, once they are all back (each comes back on its own). */
	for (got = 0, at = 0; got < 4;) {
		size_t before = at;

		ASSERT_EQ(POLLIN, wait_fd(self->fd, POLLIN, 20000) & POLLIN);
		ASSERT_EQ(0, batch(self->fd, MK_IKC_RECV, buf + at, sizeof(buf) - at, &b));
		got += b.count;
		at += b.len;
		EXPECT_LT(before, at);
	}
	EXPECT_EQ(4U, got);
	EXPECT_EQ(4 * MK_IKC_RECORD_SIZE(5), at);
	for (i = 0, at = 0; i < 4; i++) {
		static const char *const words[] = { "one", "two", "three", "four" };
		struct mk_ikc_msg *m = (struct mk_ikc_msg *)(buf + at);

		EXPECT_EQ(strlen(words[i]), m->len);
		EXPECT_EQ(0, memcmp(m->data, words[i], strlen(words[i])));
		at += MK_IKC_RECORD_SIZE(m->len);
	}
	/* Nothing else; non-blocking: EAGAIN. */
	{
		int nb = open(DEV, O_RDWR | O_NONBLOCK);

		ASSERT_LE(0, nb);
		EXPECT_EQ(-EAGAIN, batch(nb, MK_IKC_RECV, buf, sizeof(buf), &b));
		close(nb);
	}
	EXPECT_EQ(0UL, counter("errors"));
	instance_file(NAME, "ikc/state", why, sizeof(why));
	EXPECT_STREQ("open\n", why);
}

/* Writes message `*sent` onward with O_NONBLOCK until EAGAIN; returns the last result. */
static ssize_t write_until_eagain(int fd, uint32_t *sent)
{
	unsigned char buf[MK_IKC_MAX_PAYLOAD];
	ssize_t n = 0;

	while (*sent < 100000) {
		size_t len = size_of(*sent);

		fill(buf, *sent, len);
		n = send_msg(fd, MK_IKC_PORT_ECHO, buf, len);
		if (n < 0)
			break;
		(*sent)++;
	}
	return n;
}

/*
 * Non-blocking writes without reading: the channel pushes back (EAGAIN) as
 * soon as the ring to the instance is full; writing on whenever poll says
 * there is room fills everything behind it (the host's inbox, the ring back,
 * the echo service) until nothing moves. Then every message comes back, in
 * order: nothing was overwritten or dropped.
 */
TEST_F_TIMEOUT(ikc, flood_backpressure, 300)
{
	unsigned long full0 = counter("ring_full");
	int fd = open(DEV, O_RDWR | O_NONBLOCK);
	uint32_t sent = 0, got, first_eagain;
	char why[128] = "";

	ASSERT_LE(0, fd);
	EXPECT_EQ(POLLOUT, wait_fd(fd, POLLOUT, 0) & POLLOUT);
	ASSERT_EQ(-EAGAIN, write_until_eagain(fd, &sent));
	first_eagain = sent;
	EXPECT_LT(full0, counter("ring_full"));
	/* Writable again when the instance drains; stuck once everything is full. */
	while (wait_fd(fd, POLLOUT, 2000) & POLLOUT)
		ASSERT_EQ(-EAGAIN, write_until_eagain(fd, &sent));
	/* More than the host's inbox holds (256) is in flight, none of it read yet. */
	EXPECT_LT(256U, sent);
	EXPECT_EQ(0, wait_fd(fd, POLLOUT, 0) & POLLOUT);
	for (got = 0; got < sent; got++)
		if (!expect_echo(fd, got, 20000, why, sizeof(why)))
			break;
	EXPECT_EQ(sent, got) TH_LOG("%s", why);
	EXPECT_EQ(-EAGAIN, recv_msg(fd, (struct msg[1]){}));
	EXPECT_EQ(0UL, counter("errors"));
	TH_LOG("first EAGAIN after %u messages; %u in flight when nothing moved", first_eagain,
	       sent);
	close(fd);
}

/* Malformed messages and settings: the documented errno, and the channel still works. */
TEST_F_TIMEOUT(ikc, bad_input, 180)
{
	static unsigned char big[sizeof(struct mk_ikc_msg) + MK_IKC_MAX_PAYLOAD + 1];
	struct msg m = { .h = { .port = MK_IKC_PORT_ECHO, .len = 10 } };
	struct mk_ikc_msg *h = (struct mk_ikc_msg *)big;
	char small[8 + 50], buf[64];

	EXPECT_EQ(-1, write(self->fd, &m, 4));
	EXPECT_EQ(EINVAL, errno);
	/* The declared length must be what follows. */
	EXPECT_EQ(-1, write(self->fd, &m, sizeof(m.h) + 11));
	EXPECT_EQ(EINVAL, errno);
	m.h.len = MK_IKC_MAX_PAYLOAD + 1;
	EXPECT_EQ(-1, write(self->fd, &m, sizeof(m)));
	EXPECT_EQ(EINVAL, errno);
	h->port = MK_IKC_PORT_ECHO;
	h->len = MK_IKC_MAX_PAYLOAD + 1;
	EXPECT_EQ(-1, write(self->fd, big, sizeof(big)));
	EXPECT_EQ(EMSGSIZE, errno);
	/* Kernel ports, port 0 and unknown flags. */
	m.h.len = 1;
	EXPECT_EQ(-EINVAL, (int)send_msg(self->fd, 1, "x", 1));
	EXPECT_EQ(-EINVAL, (int)send_msg(self->fd, 3, "x", 1));
	EXPECT_EQ(-EINVAL, (int)send_msg(self->fd, 0, "x", 1));
	m.h.port = MK_IKC_PORT_ECHO;
	m.h.flags = 1;
	EXPECT_EQ(-1, write(self->fd, &m, sizeof(m.h) + 1));
	EXPECT_EQ(EINVAL, errno);
	/* A reader's buffer too small for the message: EMSGSIZE, and the message stays. */
	memset(buf, 'e', 50);
	ASSERT_EQ((ssize_t)sizeof(m.h) + 50, send_msg(self->fd, MK_IKC_PORT_ECHO, buf, 50));
	ASSERT_EQ(POLLIN, wait_fd(self->fd, POLLIN, 20000) & POLLIN);
	EXPECT_EQ(-1, read(self->fd, small, 4));
	EXPECT_EQ(EMSGSIZE, errno);
	EXPECT_EQ(-1, read(self->fd, small, sizeof(small) - 1));
	EXPECT_EQ(EMSGSIZE, errno);
	EXPECT_EQ((ssize_t)sizeof(small), read(self->fd, small, sizeof(small)));
	EXPECT_EQ(0, memcmp(small + 8, buf, 50));
	/* Ping sizes are 8..4096. */
	EXPECT_EQ(-EINVAL, write_str(INST "/ping", "4"));
	EXPECT_EQ(-EINVAL, write_str(INST "/ping", "4097"));
	EXPECT_EQ(-EINVAL, write_str(INST "/ping", "abc"));
	EXPECT_EQ(-EINVAL, write_str(INST "/ping", "\n"));
	EXPECT_EQ(0UL, counter("errors"));
	instance_file(NAME, "ikc/state", buf, sizeof(buf));
	EXPECT_STREQ("open\n", buf);
}

/* ping: one round trip in nanoseconds; counters and modes. */
TEST_F_TIMEOUT(ikc, ping_and_counters, 180)
{
	static char console[8192];
	long long before, after;
	int i, status, slept = 0;
	char buf[64];
	pid_t pid;
	long ns;

	for (i = 0; i < 5; i++) {
		ASSERT_LT(0, read_file(INST "/ping", buf, sizeof(buf)));
		ns = atol(buf);
		EXPECT_LT(0, ns);
		EXPECT_GT(1000000000L, ns);
	}
	/*
	 * A pinger polls its ring for the answer, so the instance rings no
	 * doorbell for it, once its boot stopped printing (a few may come all
	 * the same: a ping that spun past 2 ms sleeps and asks for one, and any
	 * other drain asks again).
	 */
	ASSERT_TRUE(mk_wait_console(NAME, INIT_SERVED, 30, console, sizeof(console)));
	before = mk_doorbells("received ");
	ASSERT_LE(0, before);
	for (i = 0; i < 20; i++) {
		ASSERT_LT(0, read_file(INST "/ping", buf, sizeof(buf)));
		slept += atol(buf) >= 2000000;
	}
	after = mk_doorbells("received ");
	ASSERT_LE(before, after);
	TH_LOG("the host took %lld doorbells during 20 pings, %d of which slept",
	       after - before, slept);
	EXPECT_GT(10 + slept, after - before);
	ASSERT_EQ(0, write_str(INST "/ping", "4096"));
	ASSERT_LT(0, read_file(INST "/ping", buf, sizeof(buf)));
	EXPECT_LT(0, atol(buf));
	/* Pings are the kernel's: they do not reach the device. */
	EXPECT_EQ(0, wait_fd(self->fd, POLLIN, 100));
	EXPECT_LE(6UL, counter("tx"));
	EXPECT_LE(6UL, counter("rx"));
	EXPECT_LT(4096UL * 2, counter("bytes"));
	EXPECT_LT(0UL, counter("doorbells"));
	EXPECT_EQ(0UL, counter("errors"));
	EXPECT_EQ(0600U, mode_of(INST "/ping"));
	EXPECT_EQ(0400U, mode_of(INST "/console"));
	EXPECT_EQ(0444U, mode_of(INST "/ikc/tx"));
	EXPECT_EQ(0600U, mode_of(DEV));
	EXPECT_EQ(0600U, mode_of(DEV ".console"));
	/* Without CAP_SYS_ADMIN no ping. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(drop_effective_cap(CAP_SYS_ADMIN) ? 2 :
		      read_file(INST "/ping", buf, sizeof(buf)) == -EPERM ? 0 : 1);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

/* The instance's kernel log reaches the host's instances/NAME/console. */
TEST_F_TIMEOUT(ikc, console, 180)
{
	static char buf[8192];

	mk_wait_console(NAME, INIT_SERVED, 30, buf, sizeof(buf));
	EXPECT_NE(NULL, strstr(buf, "MULTIKERNEL-SAMPLE-INIT cpus=1 online=0"));
	EXPECT_NE(NULL, strstr(buf, "MULTIKERNEL-SAMPLE-INIT echo service"));
	EXPECT_GE(4000U, strlen(buf));
}

/*
 * The instance's terminal, /dev/hvc0 there: what its user space writes
 * reaches the host's console log and device; what the host writes to
 * /dev/mk-NAME.console is typed into the shell the sample init runs there,
 * whose answer comes back (the input says $((6*7)), only the shell's output
 * says 42). Also the kernel log arrives once, not twice (hvc0 is the
 * console; nothing else sends it).
 */
TEST_F_TIMEOUT(ikc, terminal, 180)
{
	static const char typed[] = "echo typed-in-$((6*7))\n";
	static char stream[65536], log[8192];
	char *first;
	int con;

	con = open(DEV ".console", O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, con);
	EXPECT_TRUE(console_stream_shows(con, "MULTIKERNEL-SAMPLE-INIT shell on hvc0", stream,
					 sizeof(stream)));
	instance_file(NAME, "console", log, sizeof(log));
	EXPECT_NE(NULL, strstr(log, "MULTIKERNEL-SAMPLE-INIT hvc0: user space writes here"));
	first = strstr(log, "MULTIKERNEL-SAMPLE-INIT cpus=1 online=0");
	EXPECT_NE(NULL, first);
	if (first)
		EXPECT_EQ(NULL, strstr(first + 1, "MULTIKERNEL-SAMPLE-INIT cpus=1 online=0"));
	ASSERT_EQ((ssize_t)strlen(typed), write(con, typed, strlen(typed)));
	EXPECT_TRUE(console_stream_shows(con, "typed-in-42", stream, sizeof(stream)))
		TH_LOG("console: %s", stream);
	close(con);
}

/* Runs @cmd through the shell; its first line of output in @out (trimmed); its status. */
static int run_out(const char *cmd, char *out, size_t size)
{
	FILE *p = popen(cmd, "r");
	int status;

	out[0] = '\0';
	if (!p)
		return -1;
	if (fgets(out, size, p))
		out[strcspn(out, "\n")] = '\0';
	while (fgetc(p) != EOF)
		;
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A counter of the host's side of instance id's link (/sys/class/net/mkvID/statistics). */
static unsigned long long net_stat(int id, const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/class/net/mkv%d/statistics/%s", id, name);
	return read_u64(path);
}

/* A field of the Ip: line of /proc/net/snmp (fragmentation and reassembly counters). */
static long long snmp_ip(const char *field)
{
	static char buf[8192];
	char *names, *values, *n, *v, *sn, *sv;

	if (read_file("/proc/net/snmp", buf, sizeof(buf)) <= 0)
		return -1;
	names = strstr(buf, "Ip: ");
	values = names ? strstr(names + 1, "Ip: ") : NULL;
	if (!values)
		return -1;
	names[strcspn(names, "\n")] = '\0';
	values[strcspn(values, "\n")] = '\0';
	n = strtok_r(names + 4, " ", &sn);
	v = strtok_r(values + 4, " ", &sv);
	for (; n && v; n = strtok_r(NULL, " ", &sn), v = strtok_r(NULL, " ", &sv))
		if (!strcmp(n, field))
			return atoll(v);
	return -1;
}

/*
 * Types @cmd into the shell on instance @name's terminal and waits for
 * @needle in what comes back (put a $((...)) in @cmd so that only its
 * output, not the echo of the typing, shows @needle).
 */
static bool typed_shows(const char *name, const char *cmd, const char *needle)
{
	static const char shell[] = "MULTIKERNEL-SAMPLE-INIT shell on hvc0";
	static char stream[65536];
	char path[128];
	bool seen = false, up = false;
	size_t len = 0;
	ssize_t n;
	int con, tries;

	snprintf(path, sizeof(path), "/dev/mk-%s.console", name);
	con = open(path, O_RDWR | O_NONBLOCK);
	if (con < 0)
		return false;
	/*
	 * Input typed before the shell opened its terminal is dropped: wait for
	 * its marker (the device starts with the oldest output kept). What came
	 * before is not the answer.
	 */
	while ((n = read(con, stream + len, sizeof(stream) - 1 - len)) > 0) {
		len += n;
		stream[len] = '\0';
		up = up || strstr(stream, shell);
		/* Keep a tail: the marker may straddle two reads. */
		if (len > sizeof(stream) / 2) {
			memmove(stream, stream + len - sizeof(shell), sizeof(shell));
			len = sizeof(shell);
		}
	}
	/* Not in what is kept (a long log, or not up yet): wait a while, then type anyway. */
	if (!up)
		console_stream_shows_within(con, shell, stream, sizeof(stream), 20);
	/*
	 * The marker comes just before the shell opens the terminal: a line
	 * typed in between is lost, so it is typed again (each command here
	 * may run up to three times).
	 */
	for (tries = 0; tries < 3 && !seen; tries++)
		seen = write(con, cmd, strlen(cmd)) == (ssize_t)strlen(cmd) &&
		       console_stream_shows_within(con, needle, stream, sizeof(stream), 15);
	if (!seen)
		fprintf(stderr, "# typed %s into %s; no %s in: %s\n", cmd, name, needle, stream);
	close(con);
	return seen;
}

/* Gives the host's side of instance id's link 169.254.ID.1/24 and brings it up. */
static int net_host_up(int id)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "ip addr add 169.254.%d.1/24 dev mkv%d && ip link set mkv%d up",
		 id % 256, id, id);
	return system(cmd);
}

/* Waits up to 10 s for the host's side of instance id's link to have carrier @want. */
static bool net_carrier(int id, bool want)
{
	double deadline = clock_s(CLOCK_MONOTONIC) + 10;
	char path[64], got[16];

	snprintf(path, sizeof(path), "/sys/class/net/mkv%d/carrier", id);
	do {
		if (read_file(path, got, sizeof(got)) > 0 && (got[0] == '1') == want)
			return true;
		usleep(100 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	return false;
}

static int instance_id(const char *name)
{
	char id[16];

	instance_file(name, "id", id, sizeof(id));
	return atoi(id);
}

/*
 * The network link: the host's side mkvID (carrier up while the instance
 * runs) gets 169.254.ID.1/24, the sample init gives the instance's mkv0 .2.
 * The host pings the instance and the instance the host (its init says so);
 * 6 MB go each way over TCP with their MD5 compared (each 1 MiB frame
 * ring goes round some 6 times; make bench's net_bench moves 100 MB); a
 * kill takes the carrier down.
 */
/* What net_link moves each way (the sample init sends as much on port 5002). */
#define NET_LINK_BYTES 6000000ULL

TEST_F_TIMEOUT(ikc, net_link, 300)
{
	static char stream[65536];
	const char *xfer = getenv("MK_NET_XFER");
	char id[16], cmd[512], path[64], want[64], got[128], needle[160];
	unsigned long long tx_packets, tx_bytes;
	int n, con;

	if (!xfer || access(xfer, R_OK))
		SKIP(return, "needs $MK_NET_XFER, the transfer helper mk_net_xfer.py");
	instance_file(NAME, "id", id, sizeof(id));
	n = atoi(id);
	snprintf(path, sizeof(path), "/sys/class/net/mkv%d", n);
	ASSERT_NE((mode_t)-1, mode_of(path)) TH_LOG("no mkv%d", n);
	/* instances/NAME/net: the host's device and both MACs (02:6d:6b, side, id). */
	instance_file(NAME, "net", got, sizeof(got));
	snprintf(want, sizeof(want), "mkv%d 02:6d:6b:00:%02x:%02x 02:6d:6b:01:%02x:%02x\n", n,
		 n >> 8, n & 0xff, n >> 8, n & 0xff);
	EXPECT_STREQ(want, got);
	snprintf(path, sizeof(path), "/sys/class/net/mkv%d/address", n);
	read_file(path, got, sizeof(got));
	EXPECT_EQ(0, strncmp(got, strchr(want, ' ') + 1, 17)) TH_LOG("%s", got);
	/* (carrier reads EINVAL until the interface is up) */
	snprintf(path, sizeof(path), "/sys/class/net/mkv%d/carrier", n);
	snprintf(cmd, sizeof(cmd), "ip addr add 169.254.%d.1/24 dev mkv%d && ip link set mkv%d up",
		 n % 256, n, n);
	ASSERT_EQ(0, system(cmd));
	usleep(200 * 1000);
	read_file(path, got, sizeof(got));
	EXPECT_STREQ("1\n", got);
	snprintf(cmd, sizeof(cmd), "busybox ping -c 3 -W 10 169.254.%d.2 >/dev/null", n % 256);
	EXPECT_EQ(0, system(cmd));
	con = open(DEV ".console", O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, con);
	EXPECT_TRUE(console_stream_shows(con, "MULTIKERNEL-SAMPLE-INIT net: ping host ok", stream,
					 sizeof(stream)))
		TH_LOG("console: %s", stream);
	/* 6 MB to the instance, whose init prints their MD5. */
	tx_packets = net_stat(n, "tx_packets");
	tx_bytes = net_stat(n, "tx_bytes");
	snprintf(cmd, sizeof(cmd), "python3 %s md5 %llu", xfer, NET_LINK_BYTES);
	ASSERT_EQ(0, run_out(cmd, want, sizeof(want)));
	snprintf(cmd, sizeof(cmd), "python3 %s send 169.254.%d.2 5001 %llu", xfer, n % 256,
		 NET_LINK_BYTES);
	EXPECT_EQ(0, system(cmd));
	snprintf(needle, sizeof(needle), "MULTIKERNEL-SAMPLE-INIT net: received md5 %s", want);
	EXPECT_TRUE(console_stream_shows(con, needle, stream, sizeof(stream)))
		TH_LOG("console: %s", stream);
	close(con);
	/* TCP went in GSO frames (up to 64 KiB; their checksums left undone), not 1514-byte ones. */
	tx_packets = net_stat(n, "tx_packets") - tx_packets;
	tx_bytes = net_stat(n, "tx_bytes") - tx_bytes;
	EXPECT_LT(NET_LINK_BYTES, tx_bytes);
	EXPECT_LT(2000ULL * tx_packets, tx_bytes)
		TH_LOG("%llu bytes in %llu frames: no GSO", tx_bytes, tx_packets);
	/* 6 MB from the instance. */
	snprintf(cmd, sizeof(cmd), "python3 %s recv 169.254.%d.2 5002 %llu", xfer, n % 256,
		 NET_LINK_BYTES);
	EXPECT_EQ(0, run_out(cmd, got, sizeof(got)));
	EXPECT_STREQ(want, got);
	/* Killed: carrier down. */
	ASSERT_EQ(0, control(NAME, "kill"));
	read_file(path, got, sizeof(got));
	EXPECT_STREQ("0\n", got);
}

/*
 * Frames up to 64 KiB: both sides get MTU 65000 (the instance's through its
 * shell), and a ping of 60000 bytes goes and comes back in one frame each
 * way (the host neither fragments nor reassembles). Then malformed frames
 * both ways (ikc/inject net): each kernel drops them, counts them (a length
 * error, two frame errors) and says so once; the link still carries pings.
 * Last, a corrupt frame ring (ikc/inject net_ring): the link breaks, its
 * carrier goes down, the instance and its channel go on.
 */
TEST_F_TIMEOUT(ikc, net_mtu_and_bad_frames, 180)
{
	long long frags, reasm;
	unsigned long long len_errors, frame_errors;
	char cmd[256];
	int n = instance_id(NAME);

	ASSERT_EQ(0, net_host_up(n));
	ASSERT_TRUE(net_carrier(n, true));
	snprintf(cmd, sizeof(cmd), "ip link set mkv%d mtu 65000", n);
	ASSERT_EQ(0, system(cmd));
	ASSERT_TRUE(typed_shows(NAME, "ip link set mkv0 mtu 65000 && echo mtu-set-$((6*7))\n",
				"mtu-set-42"));
	frags = snmp_ip("FragCreates");
	reasm = snmp_ip("ReasmReqds");
	snprintf(cmd, sizeof(cmd), "busybox ping -c 3 -W 10 -s 60000 169.254.%d.2 >/dev/null",
		 n % 256);
	EXPECT_EQ(0, system(cmd));
	EXPECT_EQ(frags, snmp_ip("FragCreates"));
	EXPECT_EQ(reasm, snmp_ip("ReasmReqds"));
	/* An MTU above 65535 is refused. */
	snprintf(cmd, sizeof(cmd), "ip link set mkv%d mtu 65536 2>/dev/null", n);
	EXPECT_NE(0, system(cmd));

	len_errors = net_stat(n, "rx_length_errors");
	frame_errors = net_stat(n, "rx_frame_errors");
	write_str("/dev/kmsg", "ikc_test: net_mtu_and_bad_frames injects");
	ASSERT_EQ(0, write_str(INST "/ikc/inject", "net"));
	/* The instance's three arrive at the host within a moment. */
	for (int i = 0; i < 50 && net_stat(n, "rx_frame_errors") < frame_errors + 2; i++)
		usleep(100 * 1000);
	EXPECT_EQ(len_errors + 1, net_stat(n, "rx_length_errors"));
	EXPECT_EQ(frame_errors + 2, net_stat(n, "rx_frame_errors"));
	snprintf(cmd, sizeof(cmd),
		 "dmesg | sed -n '/ikc_test: net_mtu_and_bad_frames injects/,$p' | "
		 "grep -q 'mkv%d: dropped a malformed frame from the other kernel'", n);
	EXPECT_EQ(0, system(cmd));
	/* ... and the host's at the instance, which counted them. */
	EXPECT_TRUE(typed_shows(NAME,
				"echo bad-$(($(cat /sys/class/net/mkv0/statistics/rx_length_errors)"
				"+0))-$(($(cat /sys/class/net/mkv0/statistics/rx_frame_errors)+0))\n",
				"bad-1-2"));
	snprintf(cmd, sizeof(cmd), "busybox ping -c 2 -W 10 169.254.%d.2 >/dev/null", n % 256);
	EXPECT_EQ(0, system(cmd));
	snprintf(cmd, sizeof(cmd), "ping -c 1 -W 5 169.254.%d.1 >/dev/null && echo pinged-$((6*7))\n",
		 n % 256);
	EXPECT_TRUE(typed_shows(NAME, cmd, "pinged-42"));

	/* A corrupt frame ring breaks the link: carrier down; the instance and IKC go on. */
	write_str("/dev/kmsg", "ikc_test: net_mtu_and_bad_frames breaks the ring");
	ASSERT_EQ(0, write_str(INST "/ikc/inject", "net_ring"));
	EXPECT_TRUE(net_carrier(n, false));
	EXPECT_EQ(0, system("dmesg | sed -n '/ikc_test: net_mtu_and_bad_frames breaks the ring/,$p' | "
			    "grep -q 'network link broken: head outside the ring'"));
	EXPECT_LT(0, read_file(INST "/ping", cmd, sizeof(cmd)));
	state_of(NAME, cmd, sizeof(cmd));
	EXPECT_STREQ("running\n", cmd);
}

/*
 * A kill in the middle of a TCP transfer to the instance: carrier down, the
 * frames queued for it freed (the host's queue is empty), the sender gets
 * nowhere. A new start brings the link back (same device and address):
 * ping, and 10 MB with their MD5 compared.
 */
TEST_F_TIMEOUT(ikc, net_kill_mid_transfer, 240)
{
	static char stream[65536];
	const char *xfer = getenv("MK_NET_XFER");
	char cmd[512], want[64], needle[160], state[64], addr[32];
	unsigned long long sent;
	int n = instance_id(NAME), con, status, killed, i;
	bool carrier_down;
	pid_t pid;

	if (!xfer || access(xfer, R_OK))
		SKIP(return, "needs $MK_NET_XFER, the transfer helper mk_net_xfer.py");
	ASSERT_EQ(0, net_host_up(n));
	ASSERT_TRUE(net_carrier(n, true));
	snprintf(addr, sizeof(addr), "169.254.%d.2", n % 256);
	con = open(DEV ".console", O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, con);
	ASSERT_TRUE(console_stream_shows(con, "MULTIKERNEL-SAMPLE-INIT net: ping host ok", stream,
					 sizeof(stream)));
	sent = net_stat(n, "tx_bytes");
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		freopen("/dev/null", "w", stdout);
		freopen("/dev/null", "w", stderr);
		execlp("python3", "python3", xfer, "send", addr, "5001", "1000000000", NULL);
		_exit(127);
	}
	for (int i = 0; i < 300 && net_stat(n, "tx_bytes") < sent + 5000000; i++)
		usleep(100 * 1000);
	EXPECT_LE(sent + 5000000, net_stat(n, "tx_bytes"));
	killed = control(NAME, "kill");
	carrier_down = net_carrier(n, false);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	ASSERT_EQ(0, killed);
	EXPECT_TRUE(carrier_down);
	/* The queue is emptied once the core saw the carrier go (its link watch, soon after). */
	snprintf(cmd, sizeof(cmd), "tc -s qdisc show dev mkv%d | grep -q 'backlog 0b 0p'", n);
	for (i = 0; i < 50 && system(cmd); i++)
		usleep(100 * 1000);
	EXPECT_EQ(0, system(cmd));

	ASSERT_EQ(0, control(NAME, "start"));
	wait_started(NAME, state, sizeof(state));
	ASSERT_STREQ("running\n", state);
	EXPECT_TRUE(net_carrier(n, true));
	EXPECT_TRUE(console_stream_shows(con, "MULTIKERNEL-SAMPLE-INIT net: ping host ok", stream,
					 sizeof(stream)))
		TH_LOG("console: %s", stream);
	snprintf(cmd, sizeof(cmd), "python3 %s md5 10000000", xfer);
	ASSERT_EQ(0, run_out(cmd, want, sizeof(want)));
	snprintf(cmd, sizeof(cmd), "python3 %s send %s 5001 10000000", xfer, addr);
	EXPECT_EQ(0, system(cmd));
	snprintf(needle, sizeof(needle), "MULTIKERNEL-SAMPLE-INIT net: received md5 %s", want);
	EXPECT_TRUE(console_stream_shows(con, needle, stream, sizeof(stream)))
		TH_LOG("console: %s", stream);
	close(con);
}

/*
 * Instance to instance through the host: a second instance's link and the
 * first's are bridged on the host (mkbr0, no address), and the second
 * instance pings the first (its shell, typed in). A third instance made
 * with net=off has no device on either side and boots without one; a bad
 * net= value is refused.
 */
TEST_F_TIMEOUT(ikc, net_bridge, 240)
{
	static char log[8192];
	char spec[96], cmd[512], path[64], got[64], state[64];
	int a = instance_id(NAME), b, c, cpu1, cpu2;

	if (mk_pick_cpus(2, 1, &cpu2))
		SKIP(return, "needs 3 CPUs besides CPU 0 for instances");
	mk_pick_cpus(1, 1, &cpu1);
	snprintf(spec, sizeof(spec), NAME2 " cpus=%d memory=256M net=maybe", cpu2);
	EXPECT_EQ(-EINVAL, write_str(MK "/create", spec));
	snprintf(spec, sizeof(spec), NAME1 " cpus=%d memory=256M", cpu1);
	ASSERT_EQ(0, start_instance(NAME1, spec, cmdline, sizeof(cmdline)));
	snprintf(spec, sizeof(spec), NAME2 " cpus=%d memory=256M net=off", cpu2);
	ASSERT_EQ(0, start_instance(NAME2, spec, cmdline, sizeof(cmdline)));
	b = instance_id(NAME1);
	c = instance_id(NAME2);
	instance_file(NAME2, "net", got, sizeof(got));
	EXPECT_STREQ("off\n", got);
	snprintf(path, sizeof(path), "/sys/class/net/mkv%d", c);
	EXPECT_NE(0, access(path, F_OK));

	snprintf(cmd, sizeof(cmd),
		 "ip link add mkbr0 type bridge && ip link set mkv%d master mkbr0 && "
		 "ip link set mkv%d master mkbr0 && ip link set mkv%d up && ip link set mkv%d up && "
		 "ip link set mkbr0 up", a, b, a, b);
	ASSERT_EQ(0, system(cmd));
	snprintf(cmd, sizeof(cmd),
		 "ping -c 3 -W 5 169.254.%d.2 >/dev/null && echo bridged-$((6*7))\n", a % 256);
	EXPECT_TRUE(typed_shows(NAME1, cmd, "bridged-42"));

	/* The net=off instance: its init ran (its shell is up), and saw no mkv0. */
	EXPECT_TRUE(typed_shows(NAME2, "ls /sys/class/net; echo listed-$((6*7))\n", "listed-42"));
	instance_file(NAME2, "console", log, sizeof(log));
	EXPECT_EQ(NULL, strstr(log, "net: mkv0"));
	EXPECT_EQ(NULL, strstr(log, "no network link"));
	state_of(NAME2, state, sizeof(state));
	EXPECT_STREQ("running\n", state);

	/*
	 * Destroying a bridged instance whose link just carried traffic: once
	 * destroy returns its mkvID is gone (the network device goes on a
	 * worker while the CPU comes back, and destroy waits for both), out of
	 * the bridge too, and a new instance that gets the same id (the lowest
	 * free one: nothing below it was freed since NAME1 got it) gets a new
	 * mkvID at once.
	 */
	save_console(NAME1);
	ASSERT_TRUE(mk_remove(NAME1));
	snprintf(path, sizeof(path), "/sys/class/net/mkv%d", b);
	EXPECT_NE(0, access(path, F_OK)) TH_LOG("mkv%d outlived destroy", b);
	snprintf(path, sizeof(path), "/sys/class/net/mkbr0/brif/mkv%d", b);
	EXPECT_NE(0, access(path, F_OK));
	snprintf(spec, sizeof(spec), NAME1 " cpus=%d memory=256M", cpu1);
	ASSERT_EQ(0, write_str(MK "/create", spec));
	EXPECT_EQ(b, instance_id(NAME1));
	snprintf(path, sizeof(path), "/sys/class/net/mkv%d", instance_id(NAME1));
	EXPECT_EQ(0, access(path, F_OK)) TH_LOG("no mkv%d after a create", instance_id(NAME1));
}

/* User space in the instance answers on a user port through its /dev/mk-host. */
TEST_F_TIMEOUT(ikc, instance_user_space, 180)
{
	static const char hello[] = "hello from the host's user space";
	static unsigned char buf[64 * MK_IKC_RECORD_SIZE(MK_IKC_MAX_PAYLOAD)];
	static struct msg m;
	static char console[8192];
	unsigned char piece[MK_IKC_MAX_PAYLOAD];
	struct mk_ikc_msg *r;
	struct mk_ikc_batch b;
	uint64_t i, bytes = 0;
	size_t len = 0, at = 0;
	unsigned int got = 0;
	char want[128];
	ssize_t n;

	ASSERT_EQ((ssize_t)(sizeof(m.h) + sizeof(hello)),
		  send_msg(self->fd, 100, hello, sizeof(hello)));
	if (!(wait_fd(self->fd, POLLIN, 60000) & POLLIN)) {
		instance_file(NAME, "console", console, sizeof(console));
		ASSERT_TRUE(false) TH_LOG("no answer; instance console:\n%s", console);
	}
	n = recv_msg(self->fd, &m);
	EXPECT_EQ((ssize_t)(sizeof(m.h) + sizeof(hello)), n);
	EXPECT_EQ(100, m.h.port);
	EXPECT_STREQ(hello, (char *)m.data);

	/*
	 * Its batches (mk-stream): a batch of two echoes and a stream of 40
	 * messages on port 200 it checks, then the end of the stream on 201,
	 * answered with what it counted.
	 */
	batch_add(buf, &len, 100, "first", 5);
	batch_add(buf, &len, 64, "second", 6);
	for (i = 0; i < 40; i++) {
		/* The count in the first 8 bytes, its low byte last: at least 9 bytes. */
		size_t size = size_of(i) < 9 ? 9 : size_of(i);

		memset(piece, 'p', size);
		memcpy(piece, &i, 8);
		piece[size - 1] = (unsigned char)i;
		batch_add(buf, &len, 200, piece, size);
		bytes += size;
	}
	batch_add(buf, &len, 201, "", 0);
	ASSERT_EQ(0, batch(self->fd, MK_IKC_SEND, buf, len, &b));
	EXPECT_EQ(43U, b.count);
	while (got < 3) {
		if (!(wait_fd(self->fd, POLLIN, 60000) & POLLIN))
			break;
		ASSERT_EQ(0, batch(self->fd, MK_IKC_RECV, buf + at, sizeof(buf) - at, &b));
		got += b.count;
		at += b.len;
	}
	ASSERT_EQ(3U, got);
	r = (struct mk_ikc_msg *)buf;
	EXPECT_EQ(100, r->port);
	EXPECT_EQ(0, memcmp(r->data, "first", 5));
	r = (struct mk_ikc_msg *)(buf + MK_IKC_RECORD_SIZE(5));
	EXPECT_EQ(64, r->port);
	EXPECT_EQ(0, memcmp(r->data, "second", 6));
	r = (struct mk_ikc_msg *)(buf + MK_IKC_RECORD_SIZE(5) + MK_IKC_RECORD_SIZE(6));
	snprintf(want, sizeof(want), "messages=40 bytes=%llu bad=0", (unsigned long long)bytes);
	EXPECT_EQ(201, r->port);
	EXPECT_LT(strlen(want), r->len);
	EXPECT_EQ(0, memcmp(r->data, want, strlen(want)) || r->data[strlen(want)] != ' ')
		TH_LOG("answer: %.*s", (int)r->len, (char *)r->data);
}

/* Byte i of a stream through the stream area. */
static unsigned char stream_byte(uint64_t i)
{
	return (unsigned char)(i * 131 + (i >> 13));
}

struct area_writer {
	struct mk_stream *s;
	size_t total;
	int error;
};

/* Writes w->total pattern bytes in pieces of 1 to 64 KiB. */
static void *area_write(void *arg)
{
	static unsigned char buf[65536];
	struct area_writer *w = arg;
	size_t done = 0, i;

	while (done < w->total) {
		size_t n = 1 + (done * 7919 + 13) % sizeof(buf);
		ssize_t r;

		if (n > w->total - done)
			n = w->total - done;
		for (i = 0; i < n; i++)
			buf[i] = stream_byte(done + i);
		r = mk_stream_write(w->s, buf, n);
		if (r < 0) {
			w->error = (int)-r;
			return NULL;
		}
		done += n;
	}
	return NULL;
}

static int area_wait(int fd, __u32 what, __u32 bytes)
{
	struct mk_ikc_stream_wait w = { .what = what, .bytes = bytes };

	return ioctl(fd, MK_IKC_STREAM_WAIT, &w) ? errno : 0;
}

struct area_waiter {
	int fd;
	int error;
};

static void *area_wait_data(void *arg)
{
	struct area_waiter *w = arg;

	/* EBUSY: area_waiter_start's probe held the claim for a moment. */
	do
		w->error = area_wait(w->fd, MK_IKC_STREAM_DATA, 1);
	while (w->error == EBUSY);
	return NULL;
}

/*
 * Starts a thread waiting for stream data on fd and returns once it is in
 * the wait (another waiter gets EBUSY through nb): whatever comes next
 * cannot miss it. False if it did not get there within 10 s.
 */
static bool area_waiter_start(pthread_t *thread, struct area_waiter *w, int fd, int nb)
{
	int i;

	w->fd = fd;
	w->error = -1;
	if (pthread_create(thread, NULL, area_wait_data, w))
		return false;
	for (i = 0; i < 1000; i++) {
		if (area_wait(nb, MK_IKC_STREAM_DATA, 1) == EBUSY)
			return true;
		usleep(10000);
	}
	return false;
}

static void nothing(int sig)
{
	(void)sig;
}

static sigjmp_buf touch_jmp;

static void touch_fault(int sig)
{
	siglongjmp(touch_jmp, sig);
}

/* Reads the word at p: 0 if it could, else the signal it raised. */
static int touch(volatile __u64 *p, __u64 *value)
{
	struct sigaction sa = { .sa_handler = touch_fault }, old_bus, old_segv;
	int sig;

	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	sig = sigsetjmp(touch_jmp, 1);
	if (!sig)
		*value = *p;
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	return sig;
}

#define AREA_BYTES (8u << 20)
#define AREA_IN_PLACE (2u << 20)
#define AREA_CHECKED (3u << 20)

/*
 * The stream area (mmap of the device): what mmap and the waits refuse;
 * 8 MiB through the 1 MiB rings to mk-stream's stream child and back
 * (content, order, both sides waiting for data and for room); 2 MiB more
 * read here in place (mk_stream_peek) and 3 MiB read in place there
 * (mk-stream's "chck" mode: the sum of every byte compared); impossible
 * indices; a signal and a kill end a wait (EINTR, ENOTCONN); a fork does not
 * inherit the mapping; a killed instance takes it away (SIGBUS) and the next
 * start shows a fresh area through it; a graceful stop takes it away too.
 */
TEST_F_TIMEOUT(ikc, stream_area, 300)
{
	static unsigned char buf[49152];
	struct area_writer w = { .total = AREA_BYTES };
	/* SA_RESTART: the wait must still come back with EINTR. */
	struct sigaction usr1 = { .sa_handler = nothing, .sa_flags = SA_RESTART }, old_usr1;
	struct area_waiter waiter;
	struct mk_stream s;
	pthread_t thread;
	size_t got = 0, i, bad = 0, sent = 0, len;
	unsigned long long sunk0, sunk = 0;
	__u64 saved, value, sum0, sum = 0, want = 0, at;
	int tries;
	char state[64];
	void *p;
	int nb, status;
	pid_t pid;

	/* Whole, shared, at offset 0, not executable. */
	p = mmap(NULL, MK_IKC_STREAM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE, self->fd, 0);
	EXPECT_TRUE(p == MAP_FAILED && errno == EINVAL);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	EXPECT_TRUE(p == MAP_FAILED && errno == EINVAL);
	p = mmap(NULL, MK_IKC_STREAM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 4096);
	EXPECT_TRUE(p == MAP_FAILED && errno == EINVAL);
	p = mmap(NULL, MK_IKC_STREAM_BYTES, PROT_READ | PROT_EXEC, MAP_SHARED, self->fd, 0);
	EXPECT_TRUE(p == MAP_FAILED && errno == EINVAL);
	ASSERT_EQ(0, mk_stream_map(&s, self->fd, 1));
	EXPECT_EQ(0ULL, s.tx->tail);
	EXPECT_EQ(0ULL, s.rx->head);

	/* Waits: bad arguments, nothing there, two waiters for the same thing. */
	EXPECT_EQ(EINVAL, area_wait(self->fd, 0, 1));
	EXPECT_EQ(EINVAL, area_wait(self->fd, 3, 1));
	EXPECT_EQ(EINVAL, area_wait(self->fd, MK_IKC_STREAM_DATA, 0));
	EXPECT_EQ(EINVAL, area_wait(self->fd, MK_IKC_STREAM_ROOM, MK_IKC_STREAM_SIZE + 1));
	nb = open(DEV, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, nb);
	EXPECT_EQ(EAGAIN, area_wait(nb, MK_IKC_STREAM_DATA, 1));
	EXPECT_EQ(0, area_wait(nb, MK_IKC_STREAM_ROOM, MK_IKC_STREAM_SIZE));
	/* Two waiters for the same thing: the second gets EBUSY. */
	ASSERT_TRUE(area_waiter_start(&thread, &waiter, self->fd, nb));
	/* One byte there and back (mk-stream echoes) wakes the waiter. */
	buf[0] = stream_byte(0);
	EXPECT_EQ(1, mk_stream_write(&s, buf, 1));
	pthread_join(thread, NULL);
	EXPECT_EQ(0, waiter.error);
	EXPECT_EQ(1, mk_stream_read(&s, buf, sizeof(buf)));
	EXPECT_EQ(stream_byte(0), buf[0]);

	/* 8 MiB there and back, read in 48 KiB pieces while a thread writes. */
	w.s = &s;
	ASSERT_EQ(0, pthread_create(&thread, NULL, area_write, &w));
	while (got < AREA_BYTES) {
		ssize_t n = mk_stream_read(&s, buf, sizeof(buf));

		if (n <= 0) {
			TH_LOG("read after %zu bytes: %zd", got, n);
			break;
		}
		for (i = 0; i < (size_t)n; i++)
			bad += buf[i] != stream_byte(got + i);
		got += n;
	}
	pthread_join(thread, NULL);
	EXPECT_EQ(0, w.error);
	EXPECT_EQ((size_t)AREA_BYTES, got);
	EXPECT_EQ(0U, bad);

	/* 2 MiB more there and back, read here in place (pieces end at the ring's end). */
	w.total = AREA_IN_PLACE;
	w.error = 0;
	ASSERT_EQ(0, pthread_create(&thread, NULL, area_write, &w));
	for (got = 0, bad = 0; got < AREA_IN_PLACE;) {
		const void *piece = NULL;
		ssize_t n = mk_stream_peek(&s, &piece);

		if (n <= 0) {
			TH_LOG("peek after %zu bytes: %zd", got, n);
			break;
		}
		for (i = 0; i < (size_t)n; i++)
			bad += ((const unsigned char *)piece)[i] != stream_byte(got + i);
		mk_stream_consume(&s, n);
		got += n;
	}
	pthread_join(thread, NULL);
	EXPECT_EQ(0, w.error);
	EXPECT_EQ((size_t)AREA_IN_PLACE, got);
	EXPECT_EQ(0U, bad);

	/*
	 * 3 MiB read in place by mk-stream's child ("chck"), sent in writes of
	 * any length and alignment: its sum of every byte is ours.
	 */
	at = s.tx->tail;
	ASSERT_EQ(0, mk_sample_stream_mode(self->fd, "chck", &sunk0, &sum0));
	while (sent < AREA_CHECKED) {
		len = 1 + (sent * 7919 + 5) % 9000;
		if (len > AREA_CHECKED - sent)
			len = AREA_CHECKED - sent;
		/* The sum by its definition, byte by byte (not mk_stream_sum()). */
		for (i = 0; i < len; i++) {
			buf[i] = stream_byte(sent + i) ^ (unsigned char)(i * 31);
			want += (__u64)buf[i] << 8 * ((at + sent + i) % 8);
		}
		if (mk_stream_write(&s, buf, len) != (ssize_t)len)
			break;
		sent += len;
	}
	EXPECT_EQ((size_t)AREA_CHECKED, sent);
	EXPECT_EQ(0, mk_stream_wait(&s, MK_IKC_STREAM_ROOM, MK_IKC_STREAM_SIZE));
	/* The child counts just after it gives the bytes back. */
	for (tries = 0; tries < 100; tries++) {
		ASSERT_EQ(0, mk_sample_stream_mode(self->fd, "chck", &sunk, &sum));
		if (sunk - sunk0 == sent)
			break;
		usleep(10000);
	}
	EXPECT_EQ((unsigned long long)sent, sunk - sunk0);
	EXPECT_NE(0ULL, want);
	EXPECT_EQ(want, sum - sum0);
	ASSERT_EQ(0, mk_sample_stream_mode(self->fd, "echo", &sunk, &sum));

	/* A signal ends a wait (no restart: the caller decides). */
	ASSERT_EQ(0, sigaction(SIGUSR1, &usr1, &old_usr1));
	ASSERT_TRUE(area_waiter_start(&thread, &waiter, self->fd, nb));
	pthread_kill(thread, SIGUSR1);
	pthread_join(thread, NULL);
	EXPECT_EQ(EINTR, waiter.error);
	sigaction(SIGUSR1, &old_usr1, NULL);

	/* Impossible indices on our side: EIO (the instance's child maps it again). */
	saved = s.tx->tail;
	s.tx->tail = s.tx->head + MK_IKC_STREAM_SIZE + 1;
	EXPECT_EQ(EIO, area_wait(self->fd, MK_IKC_STREAM_ROOM, 1));
	s.tx->tail = saved;
	EXPECT_EQ(0, area_wait(self->fd, MK_IKC_STREAM_ROOM, 1));

	/* Not inherited by a fork: the child's access faults. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(touch(&s.st->magic, &value) == SIGSEGV ? 0 : 1);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* Killed: a waiter wakes, the mapping goes; started again: a fresh area behind it. */
	ASSERT_TRUE(area_waiter_start(&thread, &waiter, self->fd, nb));
	ASSERT_EQ(0, control(NAME, "kill"));
	pthread_join(thread, NULL);
	EXPECT_EQ(ENOTCONN, waiter.error);
	EXPECT_EQ(SIGBUS, touch(&s.st->magic, &value));
	EXPECT_EQ(ENOTCONN, area_wait(self->fd, MK_IKC_STREAM_DATA, 1));
	EXPECT_EQ(ENOTCONN, ioctl(self->fd, MK_IKC_STREAM_KICK) ? errno : 0);
	p = mmap(NULL, MK_IKC_STREAM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	EXPECT_TRUE(p == MAP_FAILED && errno == ENOTCONN);
	ASSERT_EQ(0, control(NAME, "start"));
	wait_started(NAME, state, sizeof(state));
	ASSERT_STREQ("running\n", state);
	ASSERT_EQ(0, touch(&s.st->magic, &value));
	EXPECT_EQ(MK_IKC_STREAM_MAGIC, value);
	EXPECT_EQ(0ULL, s.tx->tail);
	for (i = 0, bad = 0; i < 4096; i++)
		bad += s.txdata[i] != 0;
	EXPECT_EQ(0U, bad);

	/* A graceful stop (the instance's kernel powers off) takes it away as well. */
	ASSERT_EQ(0, control(NAME, "stop"));
	wait_state(NAME, "stopped\n", 60, state, sizeof(state));
	ASSERT_STREQ("stopped\n", state);
	EXPECT_EQ(SIGBUS, touch(&s.st->magic, &value));
	mk_stream_unmap(&s);
	close(nb);
}

struct blocked {
	int fd;
	int error;
};

/* Writes until the channel refuses: the last write blocks until it does. */
static void *write_until_error(void *arg)
{
	struct blocked *b = arg;
	unsigned char buf[MK_IKC_MAX_PAYLOAD] = { 0 };
	ssize_t n;

	do
		n = send_msg(b->fd, MK_IKC_PORT_ECHO, buf, sizeof(buf));
	while (n > 0);
	b->error = (int)-n;
	return NULL;
}

/* Fills the channel; a blocked writer must come back with ENOTCONN after `stop`. */
static void blocked_writer_woken(struct __test_metadata *_metadata, int fd, void (*stop)(void))
{
	struct blocked b = { .fd = fd };
	pthread_t thread;

	ASSERT_EQ(0, pthread_create(&thread, NULL, write_until_error, &b));
	/* No reader: the inbox, both rings and the echo fill up; the writer blocks. */
	sleep(3);
	EXPECT_EQ(0, b.error);
	stop();
	pthread_join(thread, NULL);
	EXPECT_EQ(ENOTCONN, b.error);
}

static void kill_instance(void)
{
	control(NAME, "kill");
}

/* A killed instance: writers (blocked or not), readers, pollers and ping get errors. */
TEST_F_TIMEOUT(ikc, dead_instance, 180)
{
	char buf[64];

	blocked_writer_woken(_metadata, self->fd, kill_instance);
	instance_file(NAME, "state", buf, sizeof(buf));
	EXPECT_STREQ("stopped\n", buf);
	EXPECT_EQ(-ENOTCONN, (int)send_msg(self->fd, MK_IKC_PORT_ECHO, "x", 1));
	EXPECT_EQ(-ENOTCONN, recv_msg(self->fd, (struct msg[1]){}));
	EXPECT_EQ(POLLHUP, wait_fd(self->fd, POLLIN | POLLOUT, 1000) & (POLLHUP | POLLOUT));
	EXPECT_EQ(-ENOTCONN, (int)read_file(INST "/ping", buf, sizeof(buf)));
	instance_file(NAME, "ikc/state", buf, sizeof(buf));
	EXPECT_STREQ("none\n", buf);
	/* A new start gets a new channel. */
	ASSERT_EQ(0, control(NAME, "start"));
	wait_started(NAME, buf, sizeof(buf));
	ASSERT_STREQ("running\n", buf);
	EXPECT_LT(0, read_file(INST "/ping", buf, sizeof(buf)));
}

/*
 * Reads the console device until `needle` went by or 60 s passed; returns
 * whether it did. The stream is kept in `seen` (its tail, if long).
 */
static bool console_stream_shows(int fd, const char *needle, char *seen, size_t size)
{
	return console_stream_shows_within(fd, needle, seen, size, 60);
}

/* As console_stream_shows, within secs seconds. */
static bool console_stream_shows_within(int fd, const char *needle, char *seen, size_t size,
					int secs)
{
	double deadline = clock_s(CLOCK_MONOTONIC) + secs;
	size_t len = 0;
	ssize_t n;

	seen[0] = '\0';
	while (clock_s(CLOCK_MONOTONIC) < deadline) {
		if (!(wait_fd(fd, POLLIN, 1000) & POLLIN))
			continue;
		if (len > size / 2) {
			memmove(seen, seen + len - size / 4, size / 4);
			len = size / 4;
		}
		n = read(fd, seen + len, size - 1 - len);
		if (n <= 0)
			return false;
		len += n;
		seen[len] = '\0';
		if (strstr(seen, needle))
			return true;
	}
	return false;
}

/* Waits up to 10 s for ikc/state to read `want`. */
static bool ikc_state_becomes(const char *want)
{
	double deadline = clock_s(CLOCK_MONOTONIC) + 10;
	char buf[64];

	do {
		instance_file(NAME, "ikc/state", buf, sizeof(buf));
		if (!strcmp(buf, want))
			return true;
		usleep(50 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	return false;
}

/*
 * What a broken instance kernel could write into the ring it sends on (an
 * index far outside the ring, a bad magic number; written by the host's
 * fault injection): the host marks the channel broken and refuses to use
 * it, without crashing or hanging; a new start gets a working channel.
 */
TEST_F_TIMEOUT(ikc, corrupt_ring, 180)
{
	static const char *faults[] = { "head", "magic" };
	char buf[64];
	unsigned int i;
	int ret;

	ret = write_str(INST "/ikc/inject", "head");
	if (ret == -EOPNOTSUPP)
		SKIP(return, "kernel without CONFIG_MULTIKERNEL_IKC_FAULT_INJECT");
	for (i = 0; i < 2; i++) {
		if (i) {
			ASSERT_EQ(0, control(NAME, "kill"));
			ASSERT_EQ(0, control(NAME, "start"));
			wait_started(NAME, buf, sizeof(buf));
			ASSERT_STREQ("running\n", buf);
			ASSERT_EQ(0, write_str(INST "/ikc/inject", faults[i]));
		} else {
			ASSERT_EQ(0, ret);
		}
		EXPECT_TRUE(ikc_state_becomes("broken\n")) TH_LOG("fault %s", faults[i]);
		EXPECT_LE(1UL, counter("errors"));
		EXPECT_EQ(-EPROTO, (int)send_msg(self->fd, MK_IKC_PORT_ECHO, "x", 1));
		EXPECT_EQ(-EPROTO, recv_msg(self->fd, (struct msg[1]){}));
		EXPECT_EQ(POLLERR | POLLHUP,
			  wait_fd(self->fd, POLLIN | POLLOUT, 1000) & (POLLERR | POLLHUP | POLLOUT));
		EXPECT_EQ(-EPROTO, (int)read_file(INST "/ping", buf, sizeof(buf)));
		/* The instance itself is still running: only the channel is refused. */
		instance_file(NAME, "state", buf, sizeof(buf));
		EXPECT_STREQ("running\n", buf);
	}
	EXPECT_EQ(-EINVAL, write_str(INST "/ikc/inject", "bogus"));
	/* A new start, a new channel. */
	ASSERT_EQ(0, control(NAME, "kill"));
	ASSERT_EQ(0, control(NAME, "start"));
	wait_started(NAME, buf, sizeof(buf));
	ASSERT_STREQ("running\n", buf);
	EXPECT_LT(0, read_file(INST "/ping", buf, sizeof(buf)));
}

/* An instance kernel that panics stops beating: crashed, and nobody hangs. */
TEST_F_TIMEOUT(ikc, crash_detected, 180)
{
	static char console[8192], stream[65536];
	char state[64];
	double deadline;
	int con;

	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, start_instance(NAME, self->spec, crash_cmdline, sizeof(crash_cmdline)));
	self->fd = open(DEV, O_RDWR);
	ASSERT_LE(0, self->fd);
	/* Its console, live: from the oldest byte kept to the panic. */
	con = open(DEV ".console", O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, con);
	EXPECT_EQ(-1, write(con, "x", 1));
	EXPECT_TRUE(console_stream_shows(con, "Kernel panic", stream, sizeof(stream)))
		TH_LOG("stream: %s", stream);
	/* Its init exits after a second: the kernel panics and stops beating (2 s). */
	deadline = clock_s(CLOCK_MONOTONIC) + 60;
	do {
		state_of(NAME, state, sizeof(state));
		if (!strcmp(state, "crashed\n"))
			break;
		usleep(100 * 1000);
	} while (clock_s(CLOCK_MONOTONIC) < deadline);
	ASSERT_STREQ("crashed\n", state);
	EXPECT_EQ(-ENOTCONN, (int)send_msg(self->fd, MK_IKC_PORT_ECHO, "x", 1));
	EXPECT_EQ(-ENOTCONN, (int)read_file(INST "/ping", state, sizeof(state)));
	/* Its last words are on the host. */
	instance_file(NAME, "console", console, sizeof(console));
	EXPECT_NE(NULL, strstr(console, "Kernel panic")) TH_LOG("console: %s", console);
	/* Crashed is killable, and the instance can be destroyed then. */
	EXPECT_EQ(-EBUSY, write_str(MK "/destroy", NAME));
	EXPECT_EQ(0, control(NAME, "kill"));
	EXPECT_EQ(0, write_str(MK "/destroy", NAME));
	/* Gone: its console reader reaches the end, its devices are removed. */
	while (read(con, stream, sizeof(stream)) > 0)
		;
	EXPECT_EQ(0, read(con, stream, sizeof(stream)));
	EXPECT_EQ((mode_t)-1, mode_of(DEV ".console"));
	close(con);
}

TEST_HARNESS_MAIN
