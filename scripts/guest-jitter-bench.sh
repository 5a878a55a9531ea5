#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench's real-time jitter, inside the jitter bench VM (booted with
# isolcpus=2 and a pool): the same small cyclictest (mk-jitter,
# samples/multikernel/initramfs/mk-jitter.c: SCHED_FIFO, a 1 ms absolute
# sleep, how late each wakeup is) at once on
#   - an instance kernel on CPU 3 (the sample init runs it, mk_sample=jitter),
#   - host CPU 2, isolated (isolcpus=: no other task, no unbound work), what
#     a single kernel offers an RT task here (the tick stays periodic),
# while stress-ng loads the host's other CPUs (0 and 1) with CPU and memory
# stress. RUNS runs of SECS seconds each, side by side; writes
# RESULTS/jitter.txt with each side's max and 99.9th percentile (medians and
# spread of the runs) and the ratio of the maxima.
#   guest-jitter-bench.sh RESULTS_DIR KERNEL_IMAGE KSELFTEST_DIR INITRAMFS MK_JITTER
. "$(dirname "$0")/guest-lib.sh"
res=$1 kst=$3 jitter=$5
export MK_KERNEL_IMAGE=$2 MK_INITRAMFS=$4
mk=/sys/kernel/multikernel
out=$res/jitter.txt
RUNS=5 SECS=10
stress=
fail() {
	echo "jitter: FAILED: $*" >>"$out"
	[ -z "$stress" ] || kill "$stress" 2>/dev/null
	if [ -d "$mk/instances/jit" ]; then
		echo kill >"$mk/instances/jit/control" 2>/dev/null
		echo jit >"$mk/destroy" 2>/dev/null
	fi
	dmesg >"$res/dmesg.txt"
	exit 1
}
rm -f "$out"
command -v stress-ng >/dev/null || fail "stress-ng is not installed"
grep -qw 'isolcpus=2' /proc/cmdline || fail "not booted with isolcpus=2"
[ "$(nproc --all)" -ge 4 ] || fail "needs 4 CPUs (host CPUs 0-2, the instance on CPU 3), has $(nproc --all)"

stress-ng --temp-path /tmp --cpu 2 --vm 2 --vm-bytes 64M --taskset 0,1 --timeout $((RUNS * SECS + 60)) \
	>"$res/stress.log" 2>&1 &
stress=$!
sleep 2
kill -0 $stress 2>/dev/null || fail "stress-ng did not start (log: $res/stress.log)"

"$kst/multikernel/mk_start" jit "cpus=3 memory=256M" \
	"kunit.enable=0 panic=0 loglevel=6 mk_sample=jitter mk_jitter_secs=$SECS mk_jitter_runs=$RUNS" \
	"jitter running" || fail "cannot start the instance"
# Its clock and timer mode (the loader's tsc=reliable, spawn.rst), read now:
# the console file shows only its last 4000 bytes. Without high-resolution
# timers every 1 ms sleep would wait for the next tick.
clock=$(grep -a -o 'MULTIKERNEL-SAMPLE-INIT clock: [a-z_-]* hres=[0-9]' "$mk/instances/jit/console" | head -1)
clock=${clock#MULTIKERNEL-SAMPLE-INIT clock: }
for i in $(seq $RUNS); do
	"$jitter" host $SECS 2 >>"$res/host.txt" || fail "mk-jitter on the host"
done
# The instance's runs end at about the same time; give it a little longer.
# Each run's line reaches the console twice (the init's stdout and the kernel
# log): one per run label (instance-1 ...).
instance_runs() {
	grep -a -o 'MK-JITTER label=instance-[0-9]*[^\r]*' "$mk/instances/jit/console" |
		awk '!seen[$2]++'
}
for i in $(seq 100); do
	[ "$(instance_runs | wc -l)" -ge $RUNS ] && break
	sleep 0.2
done
instance_runs >"$res/instance.txt"
kill $stress 2>/dev/null
wait $stress 2>/dev/null
echo kill >"$mk/instances/jit/control"
echo jit >"$mk/destroy"
! grep -q ' rt=0' "$res/host.txt" "$res/instance.txt" || fail "a run went without SCHED_FIFO or mlockall (rt=0)"
case $clock in
*hres=1) ;;
*) fail "the instance's timers are not in high-resolution mode (its clock: '$clock'; the host's: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource))" ;;
esac
[ "$(wc -l <"$res/instance.txt")" -ge $RUNS ] || fail "the instance reported $(wc -l <"$res/instance.txt") of $RUNS runs"

# "median (lowest-highest)" of field $2 of the MK-JITTER lines in file $1.
spread() {
	sed -nE "s/.* $2=([0-9.]+).*/\\1/p" "$1" | sort -n |
		awk '{ v[NR] = $1 } END { printf "%d (%d-%d)", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
med() {
	sed -nE "s/.* $2=([0-9.]+).*/\\1/p" "$1" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
{
	echo "jitter: $RUNS runs of $SECS s, 1 ms SCHED_FIFO timer loop, stress-ng (CPU and memory) on host CPUs 0-1:"
	echo "jitter:   instance clock: $clock (host: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource))"
	echo "jitter:   instance kernel on CPU 3: max us $(spread "$res/instance.txt" max_us), p99.9 us $(spread "$res/instance.txt" p999_us)"
	echo "jitter:   host CPU 2 (isolcpus): max us $(spread "$res/host.txt" max_us), p99.9 us $(spread "$res/host.txt" p999_us)"
	awk -v i="$(med "$res/instance.txt" max_us)" -v h="$(med "$res/host.txt" max_us)" \
		-v a="$(med "$res/instance.txt" p999_us)" -v b="$(med "$res/host.txt" p999_us)" 'BEGIN {
		printf "jitter:   instance / isolated host CPU: max %.2f (goal <= 1), p99.9 %.2f\n", i / (h ? h : 1), a / (b ? b : 1) }'
} >>"$out"
dmesg >"$res/dmesg.txt"
