#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: build, boot the kernel under QEMU and run every benchmark
# program (tools/testing/selftests/multikernel/*_bench) inside. Each prints
# its own numbers beside a baseline measured in the same run, as a ratio:
# these machines are emulated and noisy, so only ratios mean something.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$MK_ROOT/scripts/vm.sh"

need_root
# The jitter benchmark loads the host with stress-ng; make check does not need it.
MK_DEB_EXTRA="stress-ng" prepare install-deps
MK_KERNEL_VARIANT= prepare build build-tests initramfs
# The kernel measured: the tested one's configuration without lockdep and the
# test code (configs/bench.config), in obj-bench/; host, instances and the
# cold boot all run it.
MK_KERNEL_VARIANT=bench "$MK_ROOT/scripts/build.sh"
KERNEL_IMAGE=$MK_BUILD/obj-bench/arch/x86/boot/bzImage

RES=$MK_BUILD/results/bench
rm -rf "$RES"
mkdir -p "$RES"
step "boot: bench VM ($VM_CPUS vCPUs, multikernel.pool=512M)"
rc=0
MK_VM_QEMU_OPTS="-serial file:$RES/ttyS1.log" \
	vm_run 900 "$RES/console.log" "multikernel.pool=512M kunit.enable=0 loglevel=4" \
	"$MK_ROOT/scripts/guest-bench.sh" "$MK_BUILD/kselftest/multikernel" "$RES" \
	"$KERNEL_IMAGE" "$MK_BUILD/initramfs.cpio.gz" || rc=$?
cat "$RES/bench.txt" 2>/dev/null || true
[ "$rc" = 0 ] && [ -s "$RES/bench.txt" ] || die "benchmarks failed (status $rc, log: $RES/console.log)"

# The host update (update.rst): a VM of its own, since it kexecs its kernel
# twice (an ordinary kexec as the baseline, then an update with an instance).
step "boot: update bench VM ($VM_CPUS vCPUs, kho=on multikernel.pool=512M)"
URES=$RES/update
mkdir -p "$URES"
urc=0
vm_run 600 "$URES/console.log" "kho=on multikernel.pool=512M kunit.enable=0 loglevel=4" \
	"$MK_ROOT/scripts/guest-update-bench.sh" "$URES" "$KERNEL_IMAGE" "$MK_BUILD/kselftest" \
	"$MK_BUILD/initramfs.cpio.gz" || urc=$?
if [ -s "$URES/update.txt" ] && ! grep -q FAILED "$URES/update.txt"; then
	cat "$URES/update.txt" | tee -a "$RES/bench.txt"
else
	cat "$URES/update.txt" 2>/dev/null || true
	die "update benchmark failed (status $urc, log: $URES/console.log)"
fi

# The floor under both sides of the jitter benchmark: the same loop on this
# machine itself, outside QEMU, unloaded (every vCPU is a thread of this
# machine; a machine that is itself a VM adds its hypervisor's delays).
step "bench: jitter of this machine itself (mk-jitter, 10 s, outside QEMU)"
# The last CPU this script may run on ("0-3,5" -> 5).
cpus=$(taskset -pc $$ | sed 's/.*: *//')
machine=$("$MK_BUILD/mk-jitter" machine 10 "${cpus##*[,-]}") || die "mk-jitter on this machine failed"
rt=" (SCHED_FIFO)"
case $machine in *" rt=0"*) rt=" (without SCHED_FIFO or mlockall: refused here)" ;; esac
line=$(echo "$machine" | sed -nE "s/.* max_us=([0-9]+) p999_us=([0-9]+).*/jitter: this machine itself$rt, outside QEMU, no stress, CPU ${cpus##*[,-]}: max us \\1, p99.9 us \\2: a floor under both sides below/p")
[ -n "$line" ] || die "cannot read mk-jitter's line: $machine"
echo "$line" | tee -a "$RES/bench.txt"

# Real-time jitter (spawn.rst): a VM of its own, booted with host CPU 2
# isolated (isolcpus=), the instance on CPU 3.
step "boot: jitter bench VM ($VM_CPUS vCPUs, isolcpus=2)"
JRES=$RES/jitter
mkdir -p "$JRES"
jrc=0
vm_run 600 "$JRES/console.log" "multikernel.pool=512M kunit.enable=0 loglevel=4 isolcpus=2" \
	"$MK_ROOT/scripts/guest-jitter-bench.sh" "$JRES" "$KERNEL_IMAGE" "$MK_BUILD/kselftest" \
	"$MK_BUILD/initramfs.cpio.gz" "$MK_BUILD/mk-jitter" || jrc=$?
if [ -s "$JRES/jitter.txt" ] && ! grep -q FAILED "$JRES/jitter.txt"; then
	tee -a "$RES/bench.txt" <"$JRES/jitter.txt"
else
	cat "$JRES/jitter.txt" 2>/dev/null || true
	die "jitter benchmark failed (status $jrc, log: $JRES/console.log)"
fi

# Baseline for the spawn: a cold QEMU boot (TCG, 1 vCPU, 256 MiB, like the
# instance) of the same kernel and initramfs until its init has run (the
# sample init powers off at once with mk_sample=poweroff). Median of 5.
step "bench: cold QEMU boot of the same kernel and initramfs (5 boots)"
cold=()
for _ in 1 2 3 4 5; do
	t0=$(date +%s%N)
	timeout 120 qemu-system-x86_64 -accel tcg -m 256M -smp 1 -nographic -no-reboot \
		-kernel "$KERNEL_IMAGE" -initrd "$MK_BUILD/initramfs.cpio.gz" \
		-append "console=ttyS0 kunit.enable=0 panic=-1 quiet mk_sample=poweroff" \
		</dev/null >"$RES/cold.log" 2>&1 || true
	grep -qa 'MULTIKERNEL-SAMPLE-INIT up' "$RES/cold.log" || die "cold boot did not reach init (log: $RES/cold.log)"
	cold+=($(( ($(date +%s%N) - t0) / 1000000 )))
done
cold_sorted=$(printf '%s\n' "${cold[@]}" | sort -n)
cold_ms=$(echo "$cold_sorted" | sed -n 3p)
echo "cold boot: 5 boots, QEMU start to power-off after init ms $cold_ms ($(echo "$cold_sorted" | head -1)-$(echo "$cold_sorted" | tail -1))" |
	tee -a "$RES/bench.txt"
# The spawn's medians (first number after each label) against the cold boot's.
field() { # LINE LABEL
	echo "$1" | sed -nE "s/.*$2 ms ([0-9]+).*/\1/p"
}
for kind in unpacked compressed; do
	line=$(grep "^spawn ($kind)" "$RES/bench.txt" || true)
	[ -n "$line" ] || continue
	load=$(field "$line" load)
	[ -n "$load" ] && [ -n "$(field "$line" start-to-running)" ] && [ -n "$(field "$line" start-to-init)" ] ||
		die "cannot read the spawn's numbers from: $line"
	running=$(field "$line" start-to-running)
	init=$(field "$line" start-to-init)
	goal=""
	[ "$kind" = unpacked ] && goal=" (goal <= 0.5)"
	awk -v k="$kind" -v l="$load" -v r="$running" -v i="$init" -v c="$cold_ms" -v g="$goal" 'BEGIN {
		printf "spawn (%s): start-to-running / cold boot %.2f%s, start-to-init / cold boot %.2f, load + start-to-init / cold boot %.2f\n", k, r / c, g, i / c, (l + i) / c }'
done
spawn_ms=$(field "$(grep '^spawn (unpacked)' "$RES/bench.txt" || true)" start-to-running)
# Graceful stop and restart, beside the start of the same run: a restart is a stop and a
# start, and should cost no more than doing both by hand.
stop_ms=$(field "$(grep '^stop:' "$RES/bench.txt" || true)" stop-to-stopped)
restart_ms=$(field "$(grep '^restart:' "$RES/bench.txt" || true)" restart-to-running)
if [ -n "$spawn_ms" ] && [ -n "$stop_ms" ] && [ -n "$restart_ms" ]; then
	awk -v s="$spawn_ms" -v t="$stop_ms" -v r="$restart_ms" 'BEGIN {
		printf "stop: graceful stop %d ms, %.2f x the start\n", t, t / s
		printf "restart: %d ms, ratio to stop + start %.2f (goal <= 1.2)\n", r, r / (t + s) }'
fi
