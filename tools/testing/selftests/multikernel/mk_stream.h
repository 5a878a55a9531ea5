/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One end of an IKC stream area (struct mk_ikc_stream in
 * include/uapi/linux/multikernel.h), mapped from a message device: the host
 * writes to_instance and reads to_host, an instance the other way round.
 * Used by the tests, ikc_bench and the instance's mk-stream; a program of
 * one's own may copy it.
 */
#ifndef MK_STREAM_H
#define MK_STREAM_H

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <linux/multikernel.h>

/*
 * How long a side polls the other's index before it sleeps in the kernel
 * (as busy-polling sockets do: net.core.busy_poll is often 50 us).
 */
#ifndef MK_STREAM_SPIN_NS
#define MK_STREAM_SPIN_NS 50000
#endif

/* The layout both kernels use (kernel/multikernel/base/stream.rs checks the same numbers). */
_Static_assert(sizeof(struct mk_ikc_stream_dir) == 256, "stream direction layout");
_Static_assert(offsetof(struct mk_ikc_stream_dir, head) == 64, "stream head");
_Static_assert(offsetof(struct mk_ikc_stream_dir, want_data) == 128, "stream want_data");
_Static_assert(offsetof(struct mk_ikc_stream_dir, want_room) == 192, "stream want_room");
_Static_assert(offsetof(struct mk_ikc_stream_dir, kicked_data) == 136, "stream kicked_data");
_Static_assert(offsetof(struct mk_ikc_stream_dir, kicked_room) == 200, "stream kicked_room");
_Static_assert(offsetof(struct mk_ikc_stream, to_instance) == 64, "stream to_instance");
_Static_assert(offsetof(struct mk_ikc_stream, to_host) == 320, "stream to_host");
_Static_assert(MK_IKC_STREAM_BYTES == 4096 + 2 * (1 << 20), "stream area size");

struct mk_stream {
	int fd;
	struct mk_ikc_stream *st;
	struct mk_ikc_stream_dir *tx, *rx;
	unsigned char *txdata, *rxdata;
	__u64 size;
};

/*
 * Copies in pieces of at most 4 KiB: above a few KiB glibc's memcpy turns to
 * rep movsb, which QEMU's TCG (the machines this is tested on) runs about
 * ten times slower than the vector loop it uses for smaller copies; on real
 * hardware the pieces cost nothing noticeable.
 */
static inline void mk_stream_copy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	while (n) {
		size_t k = n < 4096 ? n : 4096;

		memcpy(d, s, k);
		d += k;
		s += k;
		n -= k;
	}
}

/*
 * Maps the stream area of message device fd (opened O_RDWR); host says which
 * side we are.
 */
static inline int mk_stream_map(struct mk_stream *s, int fd, int host)
{
	unsigned char *base = mmap(NULL, MK_IKC_STREAM_BYTES,
				   PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	memset(s, 0, sizeof(*s));
	if (base == MAP_FAILED)
		return -errno;
	s->fd = fd;
	s->st = (struct mk_ikc_stream *)base;
	if (s->st->magic != MK_IKC_STREAM_MAGIC ||
	    s->st->size != MK_IKC_STREAM_SIZE) {
		munmap(base, MK_IKC_STREAM_BYTES);
		return -EPROTO;
	}
	s->size = MK_IKC_STREAM_SIZE;
	s->tx = host ? &s->st->to_instance : &s->st->to_host;
	s->rx = host ? &s->st->to_host : &s->st->to_instance;
	s->txdata = base + (host ? MK_IKC_STREAM_TO_INSTANCE : MK_IKC_STREAM_TO_HOST);
	s->rxdata = base + (host ? MK_IKC_STREAM_TO_HOST : MK_IKC_STREAM_TO_INSTANCE);
	return 0;
}

static inline void mk_stream_unmap(struct mk_stream *s)
{
	munmap(s->st, MK_IKC_STREAM_BYTES);
}

static inline long long mk_stream_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/*
 * Waits until bytes are there (MK_IKC_STREAM_DATA) or free (ROOM): polls the
 * other side's index for MK_STREAM_SPIN_NS first (a sleep and a wakeup cost a
 * doorbell and a scheduler round trip in each kernel), then sleeps in
 * MK_IKC_STREAM_WAIT. Returns 0 or -errno.
 */
static inline int mk_stream_wait(struct mk_stream *s, __u32 what, __u64 bytes)
{
	struct mk_ikc_stream_wait w = {
		.what = what,
		.bytes = bytes > s->size ? s->size : bytes,
	};
	struct mk_ikc_stream_dir *d = what == MK_IKC_STREAM_DATA ? s->rx : s->tx;
	long long until = mk_stream_ns() + MK_STREAM_SPIN_NS;
	unsigned int i;

	do {
		for (i = 0; i < 64; i++) {
			__u64 used = __atomic_load_n(&d->tail, __ATOMIC_ACQUIRE) -
				     __atomic_load_n(&d->head, __ATOMIC_ACQUIRE);

			if (used > s->size)
				return -EIO;
			if (what == MK_IKC_STREAM_DATA ? used >= w.bytes : s->size - used >= w.bytes)
				return 0;
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
		}
	} while (mk_stream_ns() < until);
	while (ioctl(s->fd, MK_IKC_STREAM_WAIT, &w)) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/*
 * After publishing an index of direction d: kick the other kernel if its
 * process sleeps there (want_data for a consumer, want_room for a producer),
 * what it waits for is now there, and we did not kick for this very word
 * already (each look of a waiter writes a new one; d->kicked_* keeps the
 * last one, in the area, so a restart that zeroes the area forgets it too):
 * a producer writing while its consumer wakes up kicks once, not per write.
 */
static inline int mk_stream_kick_if(struct mk_stream *s,
				    struct mk_ikc_stream_dir *d, int consumer)
{
	__u64 *kicked = consumer ? &d->kicked_data : &d->kicked_room;
	__u64 want, bytes, used;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	want = __atomic_load_n(consumer ? &d->want_data : &d->want_room,
			       __ATOMIC_SEQ_CST);
	bytes = want & 0xffffffffu;
	if (!want || want == __atomic_load_n(kicked, __ATOMIC_RELAXED))
		return 0;
	used = __atomic_load_n(&d->tail, __ATOMIC_ACQUIRE) -
	       __atomic_load_n(&d->head, __ATOMIC_ACQUIRE);
	if (consumer ? used < bytes : s->size - used < bytes)
		return 0;
	if (ioctl(s->fd, MK_IKC_STREAM_KICK))
		return -errno;
	__atomic_store_n(kicked, want, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Writes all len bytes, sleeping for room when the ring is full (waiting
 * for a quarter of it at least, so the two sides do not wake each other
 * for every few bytes). Returns len, fewer bytes if an error stopped it
 * after some went, or -errno.
 */
static inline ssize_t mk_stream_write(struct mk_stream *s, const void *buf,
				      size_t len)
{
	const unsigned char *p = buf;
	size_t done = 0;

	while (done < len) {
		__u64 tail = s->tx->tail;
		__u64 head = __atomic_load_n(&s->tx->head, __ATOMIC_ACQUIRE);
		__u64 used = tail - head, room, n, at, first;
		int err;

		if (used > s->size)
			return done ? (ssize_t)done : -EIO;
		room = s->size - used;
		if (!room) {
			__u64 want = len - done;

			if (want > s->size / 4)
				want = s->size / 4;
			err = mk_stream_wait(s, MK_IKC_STREAM_ROOM, want);
			if (err)
				return done ? (ssize_t)done : err;
			continue;
		}
		n = len - done < room ? len - done : room;
		at = tail % s->size;
		first = s->size - at < n ? s->size - at : n;
		mk_stream_copy(s->txdata + at, p + done, first);
		mk_stream_copy(s->txdata, p + done + first, n - first);
		__atomic_store_n(&s->tx->tail, tail + n, __ATOMIC_RELEASE);
		done += n;
		/* A failed kick (the channel went) shows in the next wait. */
		mk_stream_kick_if(s, s->tx, 1);
	}
	return len;
}

/* Waits until there are bytes to read: how many (at least 1), or -errno. */
static inline ssize_t mk_stream_readable(struct mk_stream *s)
{
	for (;;) {
		__u64 head = s->rx->head;
		__u64 used = __atomic_load_n(&s->rx->tail, __ATOMIC_ACQUIRE) - head;
		int err;

		if (used > s->size)
			return -EIO;
		if (used)
			return used;
		err = mk_stream_wait(s, MK_IKC_STREAM_DATA, 1);
		if (err)
			return err;
	}
}

/*
 * Gives back the first n bytes at the head (read, or shown by
 * mk_stream_peek(): n at most what it returned) and kicks a waiting producer.
 */
static inline void mk_stream_consume(struct mk_stream *s, size_t n)
{
	__atomic_store_n(&s->rx->head, s->rx->head + n, __ATOMIC_RELEASE);
	/* A failed kick (the channel went) shows in the next wait. */
	mk_stream_kick_if(s, s->rx, 0);
}

/*
 * Reads what is there, up to len bytes (at least 1: sleeps while the ring
 * is empty). Returns the bytes read or -errno.
 */
static inline ssize_t mk_stream_read(struct mk_stream *s, void *buf, size_t len)
{
	unsigned char *p = buf;
	ssize_t used = mk_stream_readable(s);
	__u64 n, at, first;

	/* After a failed wait the area may be gone (SIGBUS): no look at it. */
	if (used < 0)
		return used;
	n = len < (size_t)used ? len : (size_t)used;
	at = s->rx->head % s->size;
	first = s->size - at < n ? s->size - at : n;
	mk_stream_copy(p, s->rxdata + at, first);
	mk_stream_copy(p + first, s->rxdata, n - first);
	mk_stream_consume(s, n);
	return n;
}

/*
 * Reading in place, no copy: points *p at the bytes readable in one piece at
 * the head (up to the ring's end, so a piece may be followed by more),
 * sleeping while the ring is empty. They stay in the ring until
 * mk_stream_consume() gives them back. The other kernel can still write
 * there (it is untrusted): copy what must not change under a check. Returns
 * their count (at least 1) or -errno.
 */
static inline ssize_t mk_stream_peek(struct mk_stream *s, const void **p)
{
	ssize_t used = mk_stream_readable(s);
	__u64 at;

	if (used < 0)
		return used;
	at = s->rx->head % s->size;
	*p = s->rxdata + at;
	return (__u64)used < s->size - at ? used : (ssize_t)(s->size - at);
}

/*
 * A check of a stream's bytes: their sum as little-endian 64-bit words, by
 * stream index (byte i adds byte << 8 * (i % 8)), so pieces of any length
 * sum to what the whole does. For tests and benchmarks that want every byte
 * read where it lies and checked (mk-stream's "chck" mode). A sum does not
 * see words swapped: with the byte count it shows lost, added and stale
 * bytes, not every reordering.
 */
#if defined(__x86_64__)
typedef __u64 mk_stream_v4 __attribute__((vector_size(32)));

/* The sum of the first words & ~7 words at b. */
__attribute__((target("avx2"))) static inline __u64 mk_stream_sum_avx2(const unsigned char *b,
									 size_t words)
{
	mk_stream_v4 a = { 0 }, c = { 0 }, x, y;
	size_t i;

	for (i = 0; i + 8 <= words; i += 8) {
		memcpy(&x, b + 8 * i, 32);
		memcpy(&y, b + 8 * i + 32, 32);
		a += x;
		c += y;
	}
	a += c;
	return a[0] + a[1] + a[2] + a[3];
}
#endif

static inline __u64 mk_stream_sum_words(const unsigned char *b, size_t words)
{
	__u64 sum = 0, w;
	size_t i = 0;

#if defined(__x86_64__)
	/* Vector adds: 1.3-1.5 times a copy's speed under TCG, where scalar ones are slower. */
	if (__builtin_cpu_supports("avx2")) {
		sum = mk_stream_sum_avx2(b, words);
		i = words & ~(size_t)7;
	}
#endif
	for (; i < words; i++) {
		memcpy(&w, b + 8 * i, 8);
		sum += w;
	}
	return sum;
}

/* Adds the n bytes at p, stream index at onwards, to sum (little-endian machines). */
static inline __u64 mk_stream_sum(__u64 sum, __u64 at, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (; n && (at & 7); n--, at++)
		sum += (__u64)*b++ << 8 * (at & 7);
	sum += mk_stream_sum_words(b, n / 8);
	b += n & ~(size_t)7;
	at += n & ~(size_t)7;
	for (n &= 7; n; n--, at++)
		sum += (__u64)*b++ << 8 * (at & 7);
	return sum;
}

/*
 * For the host's tests and benchmarks: sets what the instance's sample
 * mk-stream child does with the bytes of the stream area (its port 202,
 * samples/multikernel/initramfs/mk-stream.c): "echo", "sink" (copied out,
 * dropped) or "chck" (read in place, summed); -1 for anything else. fd is
 * the message device, on which only mk-stream answers. *sunk: bytes it
 * dropped since it started; *sum: mk_stream_sum() of those it read in
 * place. 0 or -1.
 */
static inline int mk_sample_stream_mode(int fd, const char *m, unsigned long long *sunk,
					__u64 *sum)
{
	static struct { struct mk_ikc_msg h; char data[64]; } x;
	const char *at;
	ssize_t n;

	if (strlen(m) != 4)
		return -1;
	x.h.port = 202;
	x.h.flags = 0;
	x.h.len = 4;
	memcpy(x.data, m, 4);
	if (write(fd, &x, sizeof(x.h) + 4) < 0)
		return -1;
	n = read(fd, &x, sizeof(x) - 1);
	if (n < (ssize_t)sizeof(x.h) || x.h.port != 202)
		return -1;
	x.data[x.h.len < 63 ? x.h.len : 63] = '\0';
	/* The mode it took: an unknown one is taken for "echo". */
	if (strncmp(x.data, "mode=", 5) || strncmp(x.data + 5, m, 4))
		return -1;
	at = strstr(x.data, "sunk=");
	if (!at)
		return -1;
	*sunk = strtoull(at + 5, NULL, 10);
	at = strstr(x.data, "sum=");
	if (!at)
		return -1;
	*sum = strtoull(at + 4, NULL, 16);
	return 0;
}

#endif /* MK_STREAM_H */
