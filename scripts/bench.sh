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
"$MK_ROOT/scripts/install-deps.sh"
"$MK_ROOT/scripts/build.sh"
"$MK_ROOT/scripts/build-tests.sh"

RES=$MK_BUILD/results/bench
rm -rf "$RES"
mkdir -p "$RES"
step "boot: bench VM ($VM_CPUS vCPUs, multikernel.pool=512M)"
rc=0
vm_run 900 "$RES/console.log" "multikernel.pool=512M kunit.enable=0 loglevel=4" \
	"$MK_ROOT/scripts/guest-bench.sh" "$MK_BUILD/kselftest/multikernel" "$RES" || rc=$?
cat "$RES/bench.txt" 2>/dev/null || true
[ "$rc" = 0 ] && [ -s "$RES/bench.txt" ] || die "benchmarks failed (status $rc, log: $RES/console.log)"
