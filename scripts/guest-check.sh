#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM: each kselftest program, then the kernel log.
#   guest-check.sh KSELFTEST_DIR RESULTS_DIR MODULES_DIR
. "$(dirname "$0")/guest-lib.sh"
kst=$1 res=$2
export MK_MODULES_DIR=$3
status=0
for prog in "$kst"/multikernel/*_test; do
	[ -x "$prog" ] || continue
	name=kselftest-$(basename "$prog")
	echo "== $name"
	"$prog" >"$res/$name.tap" 2>&1
	rc=$?
	echo $rc >"$res/$name.status"
	[ $rc = 0 ] || status=1
	cat "$res/$name.tap"
done
dmesg >"$res/dmesg.txt"
touch "$res/done"
exit $status
