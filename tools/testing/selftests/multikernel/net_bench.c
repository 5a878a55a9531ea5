// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark (make bench, not a test): an instance's network link against a
 * veth pair between two network namespaces of the same VM, measured in the
 * same run with the same tools on both:
 *
 * - TCP throughput host -> peer: 100 MB sent by mk_net_xfer.py to a busybox
 *   nc that counts them (wc -c) and answers with the count once the sender
 *   closed: timed until the answer, so until all arrived;
 * - TCP throughput peer -> host: 100 MB made by busybox yes | head in the
 *   peer, read by mk_net_xfer.py;
 * - round trip of a 64-byte ICMP echo (busybox ping -s 56), median of the
 *   per-run averages.
 *
 * The peer is the instance's user space (its sample init with
 * mk_sample=netbench listens on 5003 and 5004) or the namespace's.
 *
 *   net_bench   (needs multikernel.pool=, a CPU besides CPU 0,
 *                $MK_KERNEL_IMAGE, $MK_INITRAMFS, $MK_NET_XFER)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_util.h"
#include "mk_instance.h"

#define NAME "bench3"
#define NETNS "mkbench"
#define VETH_HOST "169.254.250.1"
#define VETH_PEER "169.254.250.2"
#define PINGS 3

static const char cmdline[] = "console=ttyS1 kunit.enable=0 panic=0 quiet mk_sample=netbench";
static const char *xfer;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* MB/s of one transfer of @bytes ("send" or "recv") with @addr:@port; -1 on error. */
static double throughput(const char *what, const char *addr, int port, long long bytes)
{
	double t0 = clock_s(CLOCK_MONOTONIC);

	if (sh("python3 %s %s %s %d %lld >/dev/null", xfer, what, addr, port, bytes))
		return -1;
	return bytes / 1e6 / (clock_s(CLOCK_MONOTONIC) - t0);
}

/* Median over PINGS runs of the average 64-byte round trip to @addr, in µs; -1 on error. */
static double rtt_us(const char *addr)
{
	double avg[PINGS];
	char cmd[256], line[256];
	int i;

	for (i = 0; i < PINGS; i++) {
		FILE *p;
		double mn, av = -1;

		snprintf(cmd, sizeof(cmd), "busybox ping -c 50 -s 56 -W 5 %s 2>&1", addr);
		p = popen(cmd, "r");
		if (!p)
			return -1;
		while (fgets(line, sizeof(line), p))
			if (sscanf(line, "round-trip min/avg/max = %lf/%lf", &mn, &av) == 2)
				break;
		while (fgets(line, sizeof(line), p))
			;
		if (pclose(p) || av < 0)
			return -1;
		avg[i] = av * 1000;
	}
	return median(avg, PINGS);
}

static void veth_down(void)
{
	sh("ip netns pids " NETNS " 2>/dev/null | xargs -r kill 2>/dev/null; "
	   "ip netns del " NETNS " 2>/dev/null; ip link del mkvb0 2>/dev/null");
}

/* The same listeners as the sample init's (netbench), in the namespace. */
static int veth_up(long long bytes)
{
	veth_down();
	return sh("ip netns add " NETNS " && "
		  "ip link add mkvb0 type veth peer name mkvb1 netns " NETNS " && "
		  "ip addr add " VETH_HOST "/24 dev mkvb0 && ip link set mkvb0 up && "
		  "ip -n " NETNS " addr add " VETH_PEER "/24 dev mkvb1 && "
		  "ip -n " NETNS " link set mkvb1 up && ip -n " NETNS " link set lo up && "
		  "(ip netns exec " NETNS " sh -c 'while :; do busybox nc -l -p 5003 -e busybox wc -c; done' "
		  "</dev/null >/dev/null 2>&1 &) && "
		  "(ip netns exec " NETNS " sh -c 'while :; do busybox nc -l -p 5004 -e sh -c "
		  "\"busybox yes multikernel | busybox head -c %lld\"; done' "
		  "</dev/null >/dev/null 2>&1 &) && sleep 1 && "
		  "busybox ping -c 1 -W 5 " VETH_PEER " >/dev/null", bytes);
}

struct result {
	double to_peer, from_peer, rtt;
};

static int measure(const char *addr, long long bytes, struct result *r)
{
	r->to_peer = throughput("send", addr, 5003, bytes);
	r->from_peer = throughput("recv", addr, 5004, bytes);
	r->rtt = rtt_us(addr);
	return r->to_peer < 0 || r->from_peer < 0 || r->rtt < 0 ? -1 : 0;
}

int main(void)
{
	/* What the sample init's source sends (mk_sample=netbench). */
	long long bytes = 100000000LL;
	char addr[32], id[16];
	struct result mkv, veth;
	int n, i, ret;

	xfer = getenv("MK_NET_XFER");
	if (!xfer || access(xfer, R_OK)) {
		fprintf(stderr, "net_bench: needs $MK_NET_XFER (mk_net_xfer.py)\n");
		return 1;
	}
	if (start_bench_instance("net_bench", NAME, cmdline, sizeof(cmdline)))
		return 1;
	instance_file(NAME, "id", id, sizeof(id));
	n = atoi(id);
	snprintf(addr, sizeof(addr), "169.254.%d.2", n % 256);
	ret = sh("ip addr add 169.254.%d.1/24 dev mkv%d && ip link set mkv%d up", n % 256, n, n);
	/* Its init brings mkv0 up and starts listening within a few seconds. */
	for (i = 0; !ret && i < 30; i++) {
		if (!sh("busybox ping -c 1 -W 1 %s >/dev/null 2>&1", addr))
			break;
	}
	if (ret || i == 30 || measure(addr, bytes, &mkv)) {
		fprintf(stderr, "net_bench: the instance's link failed (ret %d, %d pings)\n", ret, i);
		mk_remove(NAME);
		return 1;
	}
	mk_remove(NAME);
	ret = veth_up(bytes) || measure(VETH_PEER, bytes, &veth);
	veth_down();
	if (ret) {
		fprintf(stderr, "net_bench: the veth baseline failed\n");
		return 1;
	}
	printf("net: TCP host->instance %.1f MB/s, veth %.1f MB/s, ratio %.2f (goal >= 0.5)\n",
	       mkv.to_peer, veth.to_peer, mkv.to_peer / veth.to_peer);
	printf("net: TCP instance->host %.1f MB/s, veth %.1f MB/s, ratio %.2f (goal >= 0.5)\n",
	       mkv.from_peer, veth.from_peer, mkv.from_peer / veth.from_peer);
	printf("net: round trip 64 B %.0f us, veth %.0f us, ratio %.2f\n", mkv.rtt, veth.rtt,
	       mkv.rtt / veth.rtt);
	return 0;
}
