#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the kexec-reboot VM, twice: ordinary kexec must still replace the
# running kernel. First boot: kexec -s -l this kernel with the same command
# line plus a marker, then kexec -e. Second boot (marker seen): report success.
#   guest-kexec-reboot.sh RESULTS_DIR KERNEL_IMAGE
. "$(dirname "$0")/guest-lib.sh"
res=$1 img=$2
tap=$res/kselftest-kexec_reboot.tap
report() {
	printf 'TAP version 13\n1..1\n%s\n' "$1" >"$tap"
	echo "$2" >"$res/kselftest-kexec_reboot.status"
	dmesg >"$res/dmesg.txt"
	touch "$res/done"
	exit "$2"
}
if grep -qw mk_kexec_second /proc/cmdline; then
	report "ok 1 kexec -s -l + kexec -e started a second kernel ($(uname -r))" 0
fi
dmesg >"$res/dmesg-first.txt"
if ! kexec -s -l "$img" --reuse-cmdline --append=mk_kexec_second; then
	report "not ok 1 kexec -s -l failed" 1
fi
[ "$(cat /sys/kernel/kexec_loaded)" = 1 ] || report "not ok 1 kexec_loaded is not 1" 1
sync
kexec -e
report "not ok 1 kexec -e returned" 1
