#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench's host update (Documentation/multikernel/update.rst), inside
# the update bench VM (booted with kho=on multikernel.pool=), once per
# kernel it boots:
#   first kernel: an ordinary kexec -e of this kernel, no instances (the
#     baseline);
#   mk_ubench=1: start instance ub running mk-clock, let it idle 10 s, then
#     update the host (kexec -e with the instance handed over);
#   mk_ubench=2: measure, write $RES/update.txt, destroy ub.
# Times across a kexec come from the TSC, which goes on (mk_tsc). Measured:
# kexec -e to the next kernel's user space, for both kexecs; the channel's
# outage as the host sees it (last ping answered before kexec -e to first
# answered after); the longest gap of the instance's loop in the report
# windows that cover the update, beside the longest while idle.
#   guest-update-bench.sh RESULTS_DIR KERNEL_IMAGE KSELFTEST_DIR INITRAMFS
. "$(dirname "$0")/guest-lib.sh"
res=$1 img=$2 kst=$3
export MK_KERNEL_IMAGE=$img MK_INITRAMFS=$4
mk=/sys/kernel/multikernel
out=$res/update.txt
stage=$(grep -o 'mk_ubench=[0-9]' /proc/cmdline | tail -1 | cut -d= -f2)
cpu=$(tr ',' '\n' </sys/devices/system/cpu/possible | tail -1 | sed 's/.*-//')
finish() {
	[ -n "$1" ] && echo "update: FAILED: $1" >>"$out"
	dmesg >"$res/dmesg-$stage.txt"
	touch "$res/done"
	exit 0
}
tsc() { "$kst/multikernel/mk_tsc"; }
# Milliseconds from the TSC reading in file $1 to now.
since() {
	local t0 k t1 k1
	read -r t0 k <"$1"
	read -r t1 k1 < <(tsc)
	awk -v a="$t0" -v b="$t1" -v k="$k1" 'BEGIN { printf "%d", (b - a) / k }'
}
# win_us of the MK-CLOCK lines of ub with n above $1, largest (0: none).
gap_after() {
	grep -a -o 'MK-CLOCK boot=[^ ]* n=[0-9]* max_us=[0-9]* win_us=[0-9]*' "$mk/instances/ub/console" |
		awk -v from="$1" '{ split($3, n, "="); split($5, w, "="); if (n[2] > from && w[2] > m) m = w[2] } END { print m + 0 }'
}
last_n() {
	grep -a -o 'MK-CLOCK boot=[^ ]* n=[0-9]*' "$mk/instances/ub/console" | tail -1 | sed 's/.*n=//'
}
kexec_to() {
	kexec -s -l "$img" --reuse-cmdline --append="mk_ubench=$1" || finish "kexec -s -l"
	sync
	tsc >"$2"
	kexec -e
	finish "kexec -e for mk_ubench=$1 returned"
}
case "$stage" in
"")
	rm -f "$out"
	kexec_to 1 "$res/t-plain"
	;;
1)
	since "$res/t-plain" >"$res/plain-ms"
	"$kst/multikernel/mk_start" ub "cpus=$cpu memory=256M" \
		"kunit.enable=0 panic=0 loglevel=6 mk_sample=clock" "MK-CLOCK" || finish "cannot start ub"
	first=$(last_n)
	sleep 10
	gap_after "$first" >"$res/idle-gap"
	last_n >"$res/n-before"
	cat "$mk/instances/ub/ping" >/dev/null || finish "ping before the update"
	tsc >"$res/t-ping"
	kexec_to 2 "$res/t-update"
	;;
2)
	update_ms=$(since "$res/t-update")
	[ "$(cat "$mk/instances/ub/state" 2>/dev/null)" = running ] || finish "ub was not adopted"
	for i in $(seq 200); do cat "$mk/instances/ub/ping" >/dev/null 2>&1 && break; sleep 0.05; done
	outage_ms=$(since "$res/t-ping")
	adopted=$(dmesg | sed -nE 's/^\[ *([0-9]+)\.([0-9]{3}).*host update: [0-9]+ instance\(s\) adopted.*/\1\2/p' | tail -1)
	before=$(cat "$res/n-before")
	sleep 6
	update_gap=$(gap_after "$before")
	idle_gap=$(cat "$res/idle-gap")
	plain_ms=$(cat "$res/plain-ms")
	{
		awk -v u="$update_ms" -v p="$plain_ms" -v a="$((10#${adopted:-0}))" 'BEGIN {
			printf "update: kexec -e to the new host'"'"'s user space: host update %d ms (instances adopted %d ms into its boot), ordinary kexec of the same kernel %d ms, ratio %.2f\n", u, a, p, u / p }'
		echo "update: channel outage (last ping before kexec -e to the first answered after): $outage_ms ms"
		awk -v g="$update_gap" -v i="$idle_gap" 'BEGIN {
			printf "update: longest gap of the instance'"'"'s 1 ms clock loop: over the update %d us, idle %d us, ratio %.2f\n", g, i, g / (i ? i : 1) }'
	} >>"$out"
	echo kill >"$mk/instances/ub/control"
	echo ub >"$mk/destroy"
	finish ""
	;;
esac
finish "unknown stage $stage"
