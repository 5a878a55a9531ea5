// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark (make bench, not a test): the inter-kernel channel against the
 * same exchanges inside one kernel, measured in the same VM:
 *
 * - round trip: instances/NAME/ping (host kernel -> instance kernel -> host
 *   kernel) with 64-byte and 4 KiB payloads, beside a
 *   smp_call_function_single() round trip to an idle host CPU
 *   (/sys/kernel/multikernel/cpu_call): both wake an idle CPU with an IPI
 *   and spin for the answer. The two are sampled in turn in one loop of
 *   ROUNDS pairs, so drift on a noisy host hits both alike; 5 such runs
 *   after a warm-up run (its ratio printed apart), each giving the ratio
 *   of the medians, printed with their median and
 *   spread (the goal holds in every run or not at all);
 * - stream: 4 KiB messages from a host process to a process in the instance
 *   (mk-stream, the sample init's user-space IKC service, which checks each
 *   one and answers the end of the stream with what it counted), once with
 *   one write(2) per message and once in batches of BATCH per MK_IKC_SEND
 *   (mk-stream receives in batches either way); time from the first send to
 *   the answer, RUNS runs of each, interleaved; beside an in-kernel memcpy
 *   of 4 KiB (the same bytes, copied once);
 * - the same messages through the stream area (mmap of the device,
 *   mk_stream.h): each copied in by this process, no system call per
 *   message; mk-stream's stream child (port 202) reads them in place and
 *   sums every byte ("chck", the sum checked against what was sent), or
 *   copies them out ("sink"); time from the first byte to the moment the
 *   child has read them all.
 *
 *   ikc_bench [ROUNDS]   (needs multikernel.pool=, a CPU besides CPU 0 (the
 *                         highest is taken), $MK_KERNEL_IMAGE, $MK_INITRAMFS)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <linux/multikernel.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "mk_util.h"
#include "mk_instance.h"
#include "mk_stream.h"

#define NAME "bench2"
#define INST MK "/instances/" NAME
#define STREAM_MESSAGES 4000
#define BATCH 64
/* mk-stream's ports: a stream's messages, its end (answered). */
#define STREAM_DATA 200
#define STREAM_END 201

static const char cmdline[] = "console=ttyS1 kunit.enable=0 panic=0 quiet mk_sample=echo";

/* The value after `key` in the baseline text, -1 if missing. */
static double field(const char *text, const char *key)
{
	const char *at = strstr(text, key);

	return at ? atof(at + strlen(key) + 1) : -1;
}

#define RUNS 5

/*
 * ROUNDS pairs: a ping, then a call round trip to an idle CPU; the median of
 * each into *PING_NS and *CALL_NS. 0, or -1 on error.
 */
static int pairs(int rounds, double *ping_ns, double *call_ns)
{
	static double ping[1001], call[1001];
	char buf[64];
	int i, tries;

	for (i = 0; i < rounds; i++) {
		if (read_file(INST "/ping", buf, sizeof(buf)) <= 0)
			return -1;
		ping[i] = atof(buf);
		/* ENXIO: no other CPU was idle at that moment; read again. */
		for (tries = 0; read_file(MK "/cpu_call", buf, sizeof(buf)) <= 0; tries++) {
			if (tries == 1000)
				return -1;
			usleep(100);
		}
		call[i] = atof(buf);
	}
	*ping_ns = median(ping, rounds);
	*call_ns = median(call, rounds);
	return *ping_ns > 0 && *call_ns > 0 ? 0 : -1;
}

/*
 * RUNS runs of ROUNDS pairs of `size` bytes, after one more run that warms
 * up (its ratio printed apart, not counted: without it the first run had the
 * highest ratio of the five in 12 of 23 bench VMs, where chance gives one in
 * five). Prints each run's ratio of medians; -1 on error.
 */
static int round_trips(const char *size, int rounds)
{
	double ratio[RUNS], ping_ns[RUNS], call_ns[RUNS], warm_ping, warm_call;
	char runs[RUNS * 8] = "";
	double mid;
	int run;

	if (write_str(INST "/ping", size) || pairs(rounds, &warm_ping, &warm_call))
		return -1;
	for (run = 0; run < RUNS; run++) {
		if (pairs(rounds, &ping_ns[run], &call_ns[run]))
			return -1;
		ratio[run] = ping_ns[run] / call_ns[run];
		snprintf(runs + strlen(runs), sizeof(runs) - strlen(runs), " %.2f", ratio[run]);
	}
	/* Sorts: ratio[0] is the lowest, ratio[RUNS - 1] the highest. */
	mid = median(ratio, RUNS);
	printf("ikc: round trip %s B, %d runs of %d interleaved pairs: ping %.0f ns, call to an idle CPU %.0f ns (medians of the runs); ratio median %.2f, lowest %.2f, highest %.2f (goal <= 1.5 in every run: %s); the runs in turn:%s; the warm-up run before them %.2f\n",
	       size, RUNS, rounds, median(ping_ns, RUNS), median(call_ns, RUNS),
	       mid, ratio[0], ratio[RUNS - 1], ratio[RUNS - 1] <= 1.5 ? "met" : "not met", runs,
	       warm_ping / warm_call);
	return 0;
}

static unsigned char batch_buf[BATCH * MK_IKC_RECORD_SIZE(MK_IKC_MAX_PAYLOAD)];
/* What mk-stream said at the end of the last batched stream. */
static char last_answer[300];

/* Message i of a stream as mk-stream checks it: i in the first 8 bytes and the last byte. */
static void stamp(struct mk_ikc_msg *m, uint64_t i, uint16_t port)
{
	m->port = port;
	m->flags = 0;
	m->len = MK_IKC_MAX_PAYLOAD;
	memcpy(m->data, &i, 8);
	m->data[MK_IKC_MAX_PAYLOAD - 1] = (unsigned char)i;
}

/*
 * One stream of STREAM_MESSAGES 4 KiB messages to mk-stream, batched or one
 * write(2) each; the end of the stream asks for its count. Returns the
 * seconds from the first send to the answer, -1 on error or a wrong count.
 */
static double stream(int fd, bool batched, uint16_t port)
{
	static struct { struct mk_ikc_msg h; unsigned char data[MK_IKC_MAX_PAYLOAD]; } m;
	char want[128];
	double t0 = clock_s(CLOCK_MONOTONIC);
	uint64_t i = 0;
	ssize_t n;

	while (i < STREAM_MESSAGES) {
		if (!batched) {
			stamp(&m.h, i, port);
			if (write(fd, &m, sizeof(m)) != sizeof(m)) {
				fprintf(stderr, "ikc_bench: stream write: %s\n", strerror(errno));
				return -1;
			}
			i++;
			continue;
		}
		size_t len = 0, at = 0;
		uint64_t first = i;
		unsigned int k;

		for (k = 0; k < BATCH && i < STREAM_MESSAGES; k++, i++) {
			stamp((struct mk_ikc_msg *)(batch_buf + len), i, port);
			len += MK_IKC_RECORD_SIZE(MK_IKC_MAX_PAYLOAD);
		}
		/* A partial send (a signal) goes on with the rest. */
		while (at < len) {
			struct mk_ikc_batch b = { .buf = (uintptr_t)(batch_buf + at), .len = len - at };

			if (ioctl(fd, MK_IKC_SEND, &b) && errno != EINTR) {
				fprintf(stderr, "ikc_bench: MK_IKC_SEND after %llu: %s\n",
					(unsigned long long)first, strerror(errno));
				return -1;
			}
			at += b.count * MK_IKC_RECORD_SIZE(MK_IKC_MAX_PAYLOAD);
		}
	}
	if (port == MK_IKC_PORT_DISCARD) {
		char buf[64];

		/* Ordered channel: the answer to this ping comes after every message was taken. */
		if (read_file(INST "/ping", buf, sizeof(buf)) <= 0)
			return -1;
		return clock_s(CLOCK_MONOTONIC) - t0;
	}
	m.h.port = STREAM_END;
	m.h.len = 0;
	if (write(fd, &m, sizeof(m.h)) != sizeof(m.h))
		return -1;
	/* Only mk-stream's answers come back on this device. */
	n = read(fd, &m, sizeof(m));
	if (n < (ssize_t)sizeof(m.h) || m.h.port != STREAM_END)
		return -1;
	snprintf(want, sizeof(want), "messages=%d bytes=%llu bad=0", STREAM_MESSAGES,
		 STREAM_MESSAGES * (unsigned long long)MK_IKC_MAX_PAYLOAD);
	if (m.h.len <= strlen(want) || memcmp(m.data, want, strlen(want)) ||
	    m.data[strlen(want)] != ' ') {
		fprintf(stderr, "ikc_bench: the instance counted %.*s, not %s\n", (int)m.h.len,
			(char *)m.data, want);
		return -1;
	}
	if (batched)
		snprintf(last_answer, sizeof(last_answer), "%.*s", (int)m.h.len, (char *)m.data);
	return clock_s(CLOCK_MONOTONIC) - t0;
}

/*
 * STREAM_MESSAGES 4 KiB messages through the stream area to mk-stream's
 * child in mode m: "sink" copies them out, "chck" reads them in place and
 * sums every byte (checked here against the sum of what was sent). Seconds
 * from the first to the moment all were read, -1 on error, a wrong count
 * or a wrong sum.
 */
static double mapped_stream(int fd, struct mk_stream *s, const char *m)
{
	static unsigned char msg[MK_IKC_MAX_PAYLOAD];
	const unsigned long long want = STREAM_MESSAGES * (unsigned long long)MK_IKC_MAX_PAYLOAD;
	unsigned long long sunk0, sunk;
	__u64 sum0, sum, sent = 0;
	double t0, secs;
	uint64_t i;
	int tries;

	if (mk_sample_stream_mode(fd, m, &sunk0, &sum0))
		return -1;
	t0 = clock_s(CLOCK_MONOTONIC);
	for (i = 0; i < STREAM_MESSAGES; i++) {
		memcpy(msg, &i, 8);
		msg[sizeof(msg) - 1] = (unsigned char)i;
		/* Its sum: the stamp, and the last byte at the top of the last word. */
		sent += i + ((__u64)(unsigned char)i << 56);
		if (mk_stream_write(s, msg, sizeof(msg)) < 0) {
			fprintf(stderr, "ikc_bench: stream area write at %llu: %s\n",
				(unsigned long long)i, strerror(errno));
			return -1;
		}
	}
	/* All read once the whole ring is free again. */
	if (mk_stream_wait(s, MK_IKC_STREAM_ROOM, MK_IKC_STREAM_SIZE))
		return -1;
	secs = clock_s(CLOCK_MONOTONIC) - t0;
	/* The child counts a read just after it publishes it: ask again for a while. */
	for (tries = 0; tries < 50; tries++) {
		if (mk_sample_stream_mode(fd, m, &sunk, &sum))
			return -1;
		if (sunk - sunk0 == want)
			break;
		usleep(10000);
	}
	if (mk_sample_stream_mode(fd, "echo", &sunk, &sum))
		return -1;
	if (sunk - sunk0 != want) {
		fprintf(stderr, "ikc_bench: the stream child read %llu bytes, not %llu\n",
			sunk - sunk0, want);
		return -1;
	}
	/* Messages start at multiples of 4 KiB in the stream: their sums add up. */
	if (!strcmp(m, "chck") && sum - sum0 != sent) {
		fprintf(stderr, "ikc_bench: the stream child's sum %llx, not %llx\n",
			(unsigned long long)(sum - sum0), (unsigned long long)sent);
		return -1;
	}
	return secs;
}

/*
 * For comparison: what this process alone copies per second when it writes
 * the same messages, stamped the same way, into a 1 MiB ring of its own
 * memory (one copy, as the sender does into the stream area).
 */
static double user_copy_mbs(void)
{
	static unsigned char msg[MK_IKC_MAX_PAYLOAD], ring[MK_IKC_STREAM_SIZE];
	double t0 = clock_s(CLOCK_MONOTONIC);
	uint64_t i;

	for (i = 0; i < STREAM_MESSAGES; i++) {
		memcpy(msg, &i, 8);
		msg[sizeof(msg) - 1] = (unsigned char)i;
		mk_stream_copy(ring + (i * sizeof(msg)) % sizeof(ring), msg, sizeof(msg));
		/* The copies are not dead stores. */
		__asm__ volatile("" : : "r"(ring) : "memory");
	}
	return STREAM_MESSAGES * 4096.0 / (clock_s(CLOCK_MONOTONIC) - t0) / 1e6;
}

/*
 * Waits until the instance's user space is up: its init starts mk-stream
 * last, and mk-stream answers on port 100 (the kernel reports "running"
 * before init runs; an init still busy would share the CPU a ping wakes).
 * Then one more second for what init left running in the background to
 * settle. Returns 0 or -1.
 */
static int instance_settled(void)
{
	static struct { struct mk_ikc_msg h; char data[64]; } hello = { .h = { .port = 100, .len = 5 } };
	int fd = open("/dev/mk-" NAME, O_RDWR), ret = -1;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (fd < 0)
		return -1;
	memcpy(hello.data, "hello", 5);
	if (write(fd, &hello, sizeof(hello.h) + 5) >= 0 && poll(&p, 1, 60000) == 1 &&
	    read(fd, &hello, sizeof(hello)) >= 0 && hello.h.port == 100)
		ret = 0;
	close(fd);
	sleep(1);
	return ret;
}

/* RUNS runs of each stream, interleaved; MB/s and ratios to copy_mbs printed. */
static int streams(double copy_mbs)
{
	double one[RUNS], many[RUNS], kern[RUNS], r1[RUNS], rn[RUNS], area[RUNS], ra[RUNS], secs;
	double ucopy[RUNS], place[RUNS], rp[RUNS];
	struct mk_stream s;
	int run, fd = open("/dev/mk-" NAME, O_RDWR);

	/* mk-stream is up: it answered instance_settled(). */
	if (fd < 0)
		return -1;
	if (mk_stream_map(&s, fd, 1)) {
		fprintf(stderr, "ikc_bench: cannot map the stream area\n");
		return -1;
	}
	for (run = 0; run < RUNS; run++) {
		secs = stream(fd, false, STREAM_DATA);
		if (secs <= 0)
			return -1;
		one[run] = STREAM_MESSAGES * 4096.0 / secs / 1e6;
		secs = stream(fd, true, STREAM_DATA);
		if (secs <= 0)
			return -1;
		many[run] = STREAM_MESSAGES * 4096.0 / secs / 1e6;
		secs = stream(fd, true, MK_IKC_PORT_DISCARD);
		if (secs <= 0)
			return -1;
		kern[run] = STREAM_MESSAGES * 4096.0 / secs / 1e6;
		secs = mapped_stream(fd, &s, "sink");
		if (secs <= 0)
			return -1;
		area[run] = STREAM_MESSAGES * 4096.0 / secs / 1e6;
		secs = mapped_stream(fd, &s, "chck");
		if (secs <= 0)
			return -1;
		place[run] = STREAM_MESSAGES * 4096.0 / secs / 1e6;
		ucopy[run] = user_copy_mbs();
		ra[run] = area[run] / copy_mbs;
		rp[run] = place[run] / copy_mbs;
		r1[run] = one[run] / copy_mbs;
		rn[run] = many[run] / copy_mbs;
	}
	mk_stream_unmap(&s);
	close(fd);
	median(one, RUNS);
	median(r1, RUNS);
	printf("ikc: stream of %d 4 KiB messages user space to user space, one write(2) each: %.1f MB/s (%.1f-%.1f); ratio to memcpy median %.3f (%.3f-%.3f)\n",
	       STREAM_MESSAGES, median(one, RUNS), one[0], one[RUNS - 1], median(r1, RUNS), r1[0],
	       r1[RUNS - 1]);
	median(many, RUNS);
	median(rn, RUNS);
	printf("ikc: stream in batches of %d (MK_IKC_SEND): %.1f MB/s (%.1f-%.1f), in-kernel memcpy of 4 KiB %.1f MB/s; ratio median %.3f (%.3f-%.3f) (goal >= 0.5: %s)\n",
	       BATCH, median(many, RUNS), many[0], many[RUNS - 1], copy_mbs, median(rn, RUNS),
	       rn[0], rn[RUNS - 1], median(rn, RUNS) >= 0.5 ? "met" : "not met");
	printf("ikc: the instance's receiver in the last batched run (receive calls, microseconds from its first message to its last, its CPU's ticks meanwhile): %s\n",
	       last_answer);
	median(kern, RUNS);
	printf("ikc: the same batches to the instance kernel's discard service (no user space there): %.1f MB/s (%.1f-%.1f), ratio %.3f\n",
	       median(kern, RUNS), kern[0], kern[RUNS - 1], median(kern, RUNS) / copy_mbs);
	median(place, RUNS);
	median(rp, RUNS);
	printf("ikc: the same messages through the stream area (mmap, mk_stream.h), read in place by mk-stream's child, which sums every byte (mk_stream_peek, mk_stream_sum; the sum checked here): %.1f MB/s (%.1f-%.1f), in-kernel memcpy of 4 KiB %.1f MB/s; ratio median %.3f (%.3f-%.3f) (goal >= 0.5: %s)\n",
	       median(place, RUNS), place[0], place[RUNS - 1], copy_mbs, median(rp, RUNS), rp[0],
	       rp[RUNS - 1], median(rp, RUNS) >= 0.5 ? "met" : "not met");
	median(area, RUNS);
	median(ra, RUNS);
	printf("ikc: the same, the child copying them out (mk_stream_read into a 64 KiB buffer): %.1f MB/s (%.1f-%.1f); ratio median %.3f (%.3f-%.3f)\n",
	       median(area, RUNS), area[0], area[RUNS - 1], median(ra, RUNS), ra[0], ra[RUNS - 1]);
	median(ucopy, RUNS);
	printf("ikc: for comparison, this process copying the same messages into a 1 MiB ring of its own: %.1f MB/s (%.1f-%.1f); the stream area read in place at %.2f of it, copied out at %.2f\n",
	       median(ucopy, RUNS), ucopy[0], ucopy[RUNS - 1], median(place, RUNS) / median(ucopy, RUNS),
	       median(area, RUNS) / median(ucopy, RUNS));
	return 0;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 201, i;
	double copy[5], copy_ns, copy_mbs;
	char base[512];
	cpu_set_t cpu0;

	if (rounds < 1 || rounds > 1001)
		rounds = 201;
	if (start_bench_instance("ikc_bench", NAME, cmdline, sizeof(cmdline)))
		return 1;
	/* Both round trips from CPU 0, so they start from the same CPU each time. */
	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	if (sched_setaffinity(0, sizeof(cpu0), &cpu0))
		fprintf(stderr, "ikc_bench: not pinned to CPU 0 (%s)\n", strerror(errno));
	if (instance_settled()) {
		fprintf(stderr, "ikc_bench: no echo from the instance's mk-stream\n");
		return 1;
	}
	if (round_trips("64", rounds) || round_trips("4096", rounds)) {
		fprintf(stderr, "ikc_bench: a round trip failed\n");
		return 1;
	}
	/* Each read of the file measures anew. */
	for (i = 0; i < 5; i++) {
		if (read_file(MK "/ikc_baseline", base, sizeof(base)) <= 0)
			base[0] = '\0';
		copy[i] = field(base, "memcpy_4096_ns");
	}
	copy_ns = median(copy, 5);
	if (copy_ns <= 0) {
		fprintf(stderr, "ikc_bench: the memcpy baseline failed\n");
		return 1;
	}

	copy_mbs = 4096.0 / copy_ns * 1e3;
	if (streams(copy_mbs)) {
		fprintf(stderr, "ikc_bench: a stream failed\n");
		return 1;
	}
	control(NAME, "kill");
	write_str(MK "/destroy", NAME);
	return 0;
}
