#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build tools/testing/selftests/multikernel (tests and benchmarks) from the
# patched tree into $MK_BUILD/kselftest/multikernel.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KST=$MK_BUILD/kselftest
step "build: kselftests (tools/testing/selftests/multikernel)"
mkdir -p "$KST/multikernel"
# KHDR_INCLUDES: the uapi headers of the patched tree (make headers in build.sh).
make -C "$MK_BUILD/linux/tools/testing/selftests/multikernel" OUTPUT="$KST/multikernel" \
	KHDR_INCLUDES="-isystem $MK_BUILD/obj/usr/include" \
	>"$MK_BUILD/kselftest-build.log" 2>&1 ||
	die "kselftest build failed (log: $MK_BUILD/kselftest-build.log)"
if grep -q 'warning:' "$MK_BUILD/kselftest-build.log"; then
	grep -A3 'warning:' "$MK_BUILD/kselftest-build.log" | head -20 >&2
	die "kselftest build has warnings (log: $MK_BUILD/kselftest-build.log)"
fi
