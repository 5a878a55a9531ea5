#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside a test VM: the named kselftest programs, then saves the kernel log.
#   guest-check.sh KSELFTEST_DIR RESULTS_DIR MODULES_DIR KERNEL_IMAGE PROGRAM...
. "$(dirname "$0")/guest-lib.sh"
kst=$1 res=$2
export MK_MODULES_DIR=$3 MK_KERNEL_IMAGE=$4
export MK_INITRAMFS=$(dirname "$kst")/initramfs.cpio.gz
# The kernel's own CPU hotplug selftest, run by reserve_test with a CPU owned.
export MK_CPU_ON_OFF_TEST=$(dirname "$kst")/linux/tools/testing/selftests/cpu-hotplug/cpu-on-off-test.sh
# mkctl, for mkctl_test.
export MK_MKCTL=$(dirname "$kst")/bin/mkctl
# The TCP transfer helper of ikc_test net_link.
export MK_NET_XFER=$(dirname "$kst")/linux/tools/testing/selftests/multikernel/mk_net_xfer.py
# Where tests save instance consoles (instance-*.log), scanned by check.sh.
export MK_RESULTS=$res
# The second serial port, where a VM captures one (an instance console).
[ -f "$res/ttyS1.log" ] && export MK_INSTANCE_CONSOLE=$res/ttyS1.log
shift 4
status=0
# Passes a kselftest program's output through unchanged and writes when each
# test started and ended (seconds, one line each) to $1: check.sh lists the
# slowest tests from these, where the time of a run goes.
stamp() {
	local line
	while IFS= read -r line || [ -n "$line" ]; do
		printf '%s\n' "$line"
		case $line in
		"#  RUN "* | "ok "[0-9]* | "not ok "[0-9]*) printf '%s %s\n' "$EPOCHREALTIME" "$line" >>"$1" ;;
		esac
	done
}
for prog in "$@"; do
	name=kselftest-$prog
	echo "== $name"
	if [ -x "$kst/multikernel/$prog" ]; then
		"$kst/multikernel/$prog" 2>&1 | stamp "$res/$name.times" >"$res/$name.tap"
		rc=${PIPESTATUS[0]}
	else
		echo "not ok 1 $prog # program missing" >"$res/$name.tap"
		rc=127
	fi
	echo $rc >"$res/$name.status"
	[ $rc = 0 ] || status=1
	cat "$res/$name.tap"
done
dmesg >"$res/dmesg.txt"
touch "$res/done"
exit $status
