#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the kexec-reboot VM (booted with multikernel.pool=), twice:
# ordinary kexec must still replace the running kernel, but not while an
# instance runs. First boot: start an instance, kexec -s -l this kernel with
# the same command line plus a marker, check kexec -e is refused (EBUSY, the
# instance still running), kill and destroy the instance, then kexec -e.
# Second boot (marker seen): start an instance whose init shuts down in order
# when asked, report success and leave it running: the VM's power-off must
# stop it in order, which check.sh reads in the kernel log ("host going down:
# hd is stopped (stop)").
#   guest-kexec-reboot.sh RESULTS_DIR KERNEL_IMAGE KSELFTEST_DIR
. "$(dirname "$0")/guest-lib.sh"
res=$1 img=$2 kst=$3
export MK_KERNEL_IMAGE=$img MK_INITRAMFS=$(dirname "$kst")/initramfs.cpio.gz
tap=$res/kselftest-kexec_reboot.tap
report() {
	printf 'TAP version 13\n1..1\n%s\n' "$1" >"$tap"
	echo "$2" >"$res/kselftest-kexec_reboot.status"
	dmesg >"$res/dmesg.txt"
	touch "$res/done"
	exit "$2"
}
# The highest online CPU, for the instance.
cpu=$(tr ',' '\n' </sys/devices/system/cpu/online | tail -1 | sed 's/.*-//')
line="kunit.enable=0 panic=0 loglevel=6 mk_sample=graceful"
if grep -qw mk_kexec_second /proc/cmdline; then
	# The first kernel got here only through the refusal check (a kexec -e that
	# was not refused would boot this kernel too, without the mark).
	[ -f "$res/kexec-refused" ] ||
		report "not ok 1 kexec -e was not refused while instance kx ran (it booted this kernel)" 1
	"$kst/multikernel/mk_start" hd "cpus=$cpu memory=256M" "$line" "stop handling ready" ||
		report "not ok 1 second kernel: cannot start instance hd" 1
	report "ok 1 kexec -e refused while an instance ran, then started a second kernel ($(uname -r)), which left an instance running for the power-off" 0
fi
dmesg >"$res/dmesg-first.txt"
rm -f "$res/kexec-refused"
"$kst/multikernel/mk_start" kx "cpus=$cpu memory=256M" "$line" ||
	report "not ok 1 cannot start instance kx" 1
if ! kexec -s -l "$img" --reuse-cmdline --append=mk_kexec_second; then
	report "not ok 1 kexec -s -l failed" 1
fi
[ "$(cat /sys/kernel/kexec_loaded)" = 1 ] || report "not ok 1 kexec_loaded is not 1" 1
sync
if kexec -e; then
	report "not ok 1 kexec -e returned success while instance kx ran" 1
fi
[ "$(cat /sys/kernel/multikernel/instances/kx/state)" = running ] ||
	report "not ok 1 instance kx is $(cat /sys/kernel/multikernel/instances/kx/state) after the refused kexec -e" 1
touch "$res/kexec-refused"
echo kill >/sys/kernel/multikernel/instances/kx/control || report "not ok 1 kill kx failed" 1
echo kx >/sys/kernel/multikernel/destroy || report "not ok 1 destroy kx failed" 1
sync
kexec -e
report "not ok 1 kexec -e returned" 1
