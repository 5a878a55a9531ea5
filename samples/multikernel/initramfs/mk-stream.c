// SPDX-License-Identifier: GPL-2.0
/*
 * mk-stream: the instance's user-space IKC service (init's mk_sample=echo),
 * on /dev/mk-host, moving messages in batches (MK_IKC_RECV, MK_IKC_SEND):
 *
 * - a message on STREAM_DATA (port 200) is a piece of a stream: taken and
 *   checked (its first 8 bytes count the stream's messages from 0, its last
 *   byte is that count's low byte), not answered;
 * - a message on STREAM_END (port 201) ends the stream: answered on the same
 *   port with "messages=N bytes=B bad=K calls=C us=T" (C receive calls since
 *   the last end, T microseconds from its first message to its last), and
 *   the next stream starts at 0;
 * - a message on STREAM_MODE (port 202) says what a child process does with
 *   the bytes that come through the stream area (mmap of the device, see
 *   mk_stream.h): "echo" (the default) sends them back, "sink" copies them
 *   out (mk_stream_read) and drops them, "chck" reads them in place
 *   (mk_stream_peek), adds them to a sum (mk_stream_sum) and gives them
 *   back; answered on the same port with "mode=M sunk=B sum=S" (B: bytes
 *   dropped since mk-stream started, S: the sum of those "chck" took, in
 *   hex; a reader publishes its head before it counts B, so B may lag the
 *   ring by one read for a moment; S is stored before);
 * - a message on any other port comes back as it came.
 *
 * It runs until the device fails (the channel closed), then exits 1 (the
 * child dies with it).
 *
 *   mk-stream [DEVICE]    (default /dev/mk-host)
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/multikernel.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "mk_stream.h"

#define STREAM_DATA 200
#define STREAM_END 201
#define STREAM_MODE 202
/* Room for 64 records of the largest payload. */
#define BATCH_BYTES (64 * MK_IKC_RECORD_SIZE(MK_IKC_MAX_PAYLOAD))

static unsigned char in[BATCH_BYTES], out[BATCH_BYTES];

struct stream {
	uint64_t messages, bytes, bad, calls;
	double first, last;
	unsigned long long stat0[8], stat1[8];
};

/* The first 8 fields of /proc/stat's cpu line (user nice system idle iowait irq softirq steal). */
static void cpu_ticks(unsigned long long *t)
{
	FILE *f = fopen("/proc/stat", "r");

	if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &t[0], &t[1], &t[2],
			 &t[3], &t[4], &t[5], &t[6], &t[7]) != 8)
		memset(t, 0, 8 * sizeof(*t));
	if (f)
		fclose(f);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Sends `len` bytes of records at buf, all of them (a partial send goes on). */
static int send_all(int fd, unsigned char *buf, size_t len)
{
	while (len) {
		struct mk_ikc_batch b = { .buf = (uintptr_t)buf, .len = len };
		size_t done = 0;
		unsigned int i;

		if (ioctl(fd, MK_IKC_SEND, &b)) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		/* Skip the records that went. */
		for (i = 0; i < b.count; i++) {
			struct mk_ikc_msg *m = (struct mk_ikc_msg *)(buf + done);

			done += MK_IKC_RECORD_SIZE(m->len);
		}
		if (done > len)
			done = len;
		buf += done;
		len -= done;
	}
	return 0;
}

/* What the stream child does, shared with it. */
enum { ECHO, SINK, CHECK };
struct mode {
	int what;
	unsigned long long sunk;
	unsigned long long sum;
};

/* Moves the stream area's bytes: back to the host, or nowhere (mode). */
static void stream_child(int fd, struct mode *mode)
{
	static unsigned char buf[64 << 10];
	struct mk_stream s;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;) {
		ssize_t n;

		/* A stream the host broke (impossible indices) is mapped again later. */
		if (mk_stream_map(&s, fd, 0)) {
			sleep(1);
			continue;
		}
		for (;;) {
			const void *p = NULL;
			__u64 at = s.rx->head;
			int what;

			/* Bytes first, then the mode: the one set before they were sent. */
			n = mk_stream_peek(&s, &p);
			if (n < 0)
				break;
			what = __atomic_load_n(&mode->what, __ATOMIC_RELAXED);
			if (what == CHECK) {
				__atomic_store_n(&mode->sum, mk_stream_sum(mode->sum, at, p, n),
						 __ATOMIC_RELAXED);
				mk_stream_consume(&s, n);
				__atomic_add_fetch(&mode->sunk, n, __ATOMIC_RELAXED);
				continue;
			}
			n = mk_stream_read(&s, buf, sizeof(buf));
			if (n < 0)
				break;
			if (what == SINK) {
				__atomic_add_fetch(&mode->sunk, n, __ATOMIC_RELAXED);
				continue;
			}
			if (mk_stream_write(&s, buf, n) < 0)
				break;
		}
		mk_stream_unmap(&s);
		usleep(100000);
	}
}

static void take(struct stream *s, const struct mk_ikc_msg *m)
{
	uint64_t n = s->messages;

	if (m->len < 8 || memcmp(m->data, &n, 8) || m->data[m->len - 1] != (unsigned char)n)
		s->bad++;
	if (!s->messages) {
		s->first = now();
		cpu_ticks(s->stat0);
	}
	s->last = now();
	s->messages++;
	s->bytes += m->len;
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/mk-host";
	struct stream s = { 0 };
	int fd = open(dev, O_RDWR);

	struct mode *mode;

	if (fd < 0) {
		fprintf(stderr, "mk-stream: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	mode = mmap(NULL, sizeof(*mode), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		    -1, 0);
	if (mode == MAP_FAILED) {
		fprintf(stderr, "mk-stream: mmap: %s\n", strerror(errno));
		return 1;
	}
	if (fork() == 0)
		stream_child(fd, mode);
	for (;;) {
		struct mk_ikc_batch b = { .buf = (uintptr_t)in, .len = sizeof(in) };
		size_t at = 0, echo = 0;
		unsigned int i;

		if (ioctl(fd, MK_IKC_RECV, &b)) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "mk-stream: receive: %s\n", strerror(errno));
			return 1;
		}
		s.calls++;
		for (i = 0; i < b.count && at < b.len; i++) {
			struct mk_ikc_msg *m = (struct mk_ikc_msg *)(in + at);
			size_t size = MK_IKC_RECORD_SIZE(m->len);

			if (echo + MK_IKC_RECORD_SIZE(MK_IKC_MAX_PAYLOAD) > sizeof(out)) {
				if (send_all(fd, out, echo)) {
					fprintf(stderr, "mk-stream: send: %s\n", strerror(errno));
					return 1;
				}
				echo = 0;
			}
			if (m->port == STREAM_DATA) {
				take(&s, m);
			} else if (m->port == STREAM_END) {
				struct mk_ikc_msg *r = (struct mk_ikc_msg *)(out + echo);
				unsigned long long *a = s.stat0, *z = s.stat1;
				int n;

				cpu_ticks(s.stat1);
				n = snprintf((char *)r->data, 256,
					     "messages=%llu bytes=%llu bad=%llu calls=%llu us=%.0f ticks user=%llu system=%llu idle=%llu irq=%llu softirq=%llu",
					     (unsigned long long)s.messages,
					     (unsigned long long)s.bytes,
					     (unsigned long long)s.bad,
					     (unsigned long long)s.calls,
					     (s.last - s.first) * 1e6, z[0] - a[0], z[2] - a[2],
					     z[3] - a[3], z[5] - a[5], z[6] - a[6]);

				r->port = STREAM_END;
				r->flags = 0;
				r->len = n < 0 ? 0 : n < 256 ? n : 255;
				echo += MK_IKC_RECORD_SIZE(r->len);
				memset(&s, 0, sizeof(s));
			} else if (m->port == STREAM_MODE) {
				struct mk_ikc_msg *r = (struct mk_ikc_msg *)(out + echo);
				static const char *const names[] = { "echo", "sink", "chck" };
				int what = ECHO, n;

				if (m->len == 4 && !memcmp(m->data, "sink", 4))
					what = SINK;
				else if (m->len == 4 && !memcmp(m->data, "chck", 4))
					what = CHECK;
				__atomic_store_n(&mode->what, what, __ATOMIC_RELAXED);
				n = snprintf((char *)r->data, 64, "mode=%s sunk=%llu sum=%llx",
					     names[what],
					     __atomic_load_n(&mode->sunk, __ATOMIC_RELAXED),
					     __atomic_load_n(&mode->sum, __ATOMIC_RELAXED));
				r->port = STREAM_MODE;
				r->flags = 0;
				r->len = n < 0 ? 0 : n < 64 ? n : 63;
				echo += MK_IKC_RECORD_SIZE(r->len);
			} else {
				memcpy(out + echo, m, size);
				echo += size;
			}
			at += size;
		}
		if (echo && send_all(fd, out, echo)) {
			fprintf(stderr, "mk-stream: send: %s\n", strerror(errno));
			return 1;
		}
	}
}
