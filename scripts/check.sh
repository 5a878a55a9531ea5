#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: install, build, boot the kernel under virtme-ng, run the
# multikernel kselftests inside, and judge the KUnit results (our suites and
# the kernel crate's doctests) and the kernel log. Prints "N passed, N failed"
# last and exits non-zero on any failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$MK_ROOT/scripts/vm.sh"

need_root
"$MK_ROOT/scripts/install-deps.sh"
"$MK_ROOT/scripts/build.sh"
"$MK_ROOT/scripts/modules.sh"

TREE=$MK_BUILD/linux
KST=$MK_BUILD/kselftest
RES=$MK_BUILD/results
step "build: kselftests (tools/testing/selftests/multikernel)"
mkdir -p "$KST/multikernel"
make -C "$TREE/tools/testing/selftests/multikernel" OUTPUT="$KST/multikernel" \
	>"$MK_BUILD/kselftest-build.log" 2>&1 ||
	die "kselftest build failed (log: $MK_BUILD/kselftest-build.log)"

rm -rf "$RES"
mkdir -p "$RES"
# Boot parameters every test VM gets (later issues add the pool and more).
APPEND=${MK_CHECK_APPEND:-"loglevel=7"}
step "boot: virtme-ng, $VM_CPUS vCPUs, running kselftests (TCG: a few minutes)"
start=$(date +%s)
rc=0
vm_run "${MK_CHECK_TIMEOUT:-900}" "$RES/console.log" "$APPEND" \
	"$MK_ROOT/scripts/guest-check.sh" "$KST" "$RES" "$MK_BUILD/modules" || rc=$?
step "boot: VM finished in $(($(date +%s) - start)) s (status $rc, console: $RES/console.log)"

passed=0 failed=0 skipped=0
fail() { printf 'FAIL: %s\n' "$*"; failed=$((failed + 1)); }

if [ ! -f "$RES/done" ]; then
	if [ "$rc" = 124 ]; then
		fail "the VM timed out before the tests finished"
	else
		fail "the VM never reached the end of the tests (status $rc)"
	fi
	tail -30 "$RES/console.log" | sed 's/^/  | /'
fi

# kselftests: TAP from each program.
for tap in "$RES"/kselftest-*.tap; do
	[ -f "$tap" ] || continue
	name=$(basename "$tap" .tap)
	p=$(awk '/^ok [0-9]+ / && !/# SKIP/ {n++} END {print n + 0}' "$tap")
	s=$(awk '/^ok [0-9]+ .*# SKIP/ {n++} END {print n + 0}' "$tap")
	f=$(awk '/^not ok [0-9]+ / {n++} END {print n + 0}' "$tap")
	passed=$((passed + p)) skipped=$((skipped + s))
	awk -v name="$name" '/^not ok [0-9]+ / {print "FAIL: " name ": " $0} /^ok [0-9]+ .*# SKIP/ {print "SKIP: " name ": " $0}' "$tap"
	failed=$((failed + f))
	status=$(cat "$RES/$name.status" 2>/dev/null || echo missing)
	if [ "$status" != 0 ] && [ "$f" = 0 ]; then
		fail "$name exited with status $status"
	fi
	echo "kselftest $name: $p passed, $f failed, $s skipped"
done
[ -n "$(ls "$RES"/kselftest-*.tap 2>/dev/null)" ] || [ ! -f "$RES/done" ] || fail "no kselftest output"

# KUnit: per-suite summaries from the console log (the complete kernel log).
LOG=$RES/console.log
[ -f "$RES/dmesg.txt" ] && LOG=$RES/dmesg.txt
ktap=$(sed -E 's/^\[ *[0-9.]+\] //' "$LOG" | grep -E '^ *# [A-Za-z0-9_]+: pass:[0-9]+ fail:[0-9]+ skip:[0-9]+ total:[0-9]+' |
	grep -v '# Totals:' || true)
for suite in ${MK_KUNIT_SUITES:-rust_doctests_kernel multikernel_control}; do
	echo "$ktap" | grep -q "# $suite: " || fail "KUnit suite $suite did not run"
done
while read -r line; do
	[ -n "$line" ] || continue
	suite=$(echo "$line" | sed -E 's/^ *# ([A-Za-z0-9_]+):.*/\1/')
	p=$(echo "$line" | sed -E 's/.*pass:([0-9]+).*/\1/')
	f=$(echo "$line" | sed -E 's/.*fail:([0-9]+).*/\1/')
	s=$(echo "$line" | sed -E 's/.*skip:([0-9]+).*/\1/')
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	echo "kunit $suite: $p passed, $f failed, $s skipped"
	[ "$f" = 0 ] || grep -E "not ok [0-9]+ " "$LOG" | grep -v '^\s*$' | sed 's/^/  | /' | head -20
done <<<"$ktap"

# Kernel log: any oops, BUG, WARN or lockdep report fails the run.
bad='(Oops|BUG:|WARNING:|Kernel panic|general protection fault|Call Trace:|cut here|INFO: possible|INFO: task .* blocked|rcu_.*detected stall|UBSAN:|KASAN:|hung_task)'
for log in "$RES/console.log" "$RES/dmesg.txt"; do
	[ -f "$log" ] || continue
	if grep -qE "$bad" "$log"; then
		fail "kernel log $(basename "$log") has a report:"
		grep -nE -m5 "$bad" "$log" | sed 's/^/  | /'
	fi
done

if [ -f "$RES/done" ] && [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
	fail "the VM exited with status $rc although every test passed"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
