#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the kexec-reboot VM (booted with multikernel.pool=), once per
# kernel it boots (the kernel command line says which):
#
# 1. No KHO (kho=on is not given): ordinary kexec must still replace the
#    running kernel, but not while an instance runs. Start an instance, check
#    kexec -e is refused (EBUSY, the instance still running), kill and
#    destroy it, kexec -e into this kernel with mk_kexec_second kho=on.
# 2. The host update (Documentation/multikernel/update.rst), mk_update=0:
#    start u1 (1 CPU) and u2 (2 CPUs), each running mk-clock (a loop that
#    stamps time); check the refusals (a kexec_load()ed kernel: no KHO; a
#    kernel without the handover record); start u3 and, while it is still
#    starting, kexec -s -l this kernel with mk_update=1 and kexec -e.
# 3. mk_update=1: the new host adopted both: same id, CPUs, state running,
#    uptime that went on, ping, its devices, its console log from before,
#    and inside, the same boot id, a count that advanced and no gap longer
#    than MAX_GAP_US in its loop. u3, started just before the kexec -e, is
#    adopted once it ran. Update again (mk_update=2).
# 4. mk_update=2: the same checks (u3 too); u3 is killed (its CPU waits in
#    the host's play_dead, which must send it to wait-for-SIPI before the
#    update); a third update.
# 5. mk_update=3: the same checks for u1 and u2; u3 is back stopped and
#    cannot start (its image was not carried); stop u1 in order, kill u2,
#    destroy all three: the CPUs come online and the pool is whole again.
#    Then a KHO kexec with no instances (mk_update=4).
# 6. mk_update=4: the pool is there again (placed after KHO's reservations).
#    Start an instance whose init shuts down in order when asked and leave
#    it running: the VM's power-off must stop it in order, which check.sh
#    reads in the kernel log ("host going down: hd is stopped (stop)").
#   guest-kexec-reboot.sh RESULTS_DIR KERNEL_IMAGE KSELFTEST_DIR
. "$(dirname "$0")/guest-lib.sh"
res=$1 img=$2 kst=$3
export MK_KERNEL_IMAGE=$img MK_INITRAMFS=$(dirname "$kst")/initramfs.cpio.gz
mk=/sys/kernel/multikernel
tap=$res/kselftest-kexec_reboot.tap
utap=$res/kselftest-host_update.tap
ures=$res/host-update.results
# The longest gap the instance's loop may see during an update: an instance
# whose CPUs stopped for the update (tens of seconds under TCG) shows one far
# longer; TCG's own scheduling of the VM's vCPUs stays well below.
MAX_GAP_US=2000000
report() {
	printf 'TAP version 13\n1..1\n%s\n' "$1" >"$tap"
	echo "$2" >"$res/kselftest-kexec_reboot.status"
	dmesg >"$res/dmesg.txt"
	touch "$res/done"
	exit "$2"
}
# The host update's results, one per line, accumulated across the kernels.
uok() { echo "ok $*" >>"$ures"; }
unot() { echo "not ok $*" >>"$ures"; }
ucheck() {
	local what=$1
	shift
	if "$@"; then uok "$what"; else unot "$what"; fi
}
ufinish() {
	[ -f "$ures" ] || echo "not ok the host update never ran" >"$ures"
	{
		printf 'TAP version 13\n1..%d\n' "$(wc -l <"$ures")"
		awk '{ if (sub(/^not ok /, "")) print "not ok " NR " " $0; else { sub(/^ok /, ""); print "ok " NR " " $0 } }' "$ures"
	} >"$utap"
	if grep -q '^not ok' "$ures"; then echo 1; else echo 0; fi >"$res/kselftest-host_update.status"
}
# The highest CPU, for the instance (after an update the instances' CPUs are
# not online, but still possible).
cpu=$(tr ',' '\n' </sys/devices/system/cpu/possible | tail -1 | sed 's/.*-//')
line="kunit.enable=0 panic=0 loglevel=6 mk_sample=graceful"
stage=$(grep -o 'mk_update=[0-9]' /proc/cmdline | tail -1 | cut -d= -f2)

# The last MK-CLOCK line of instance $1's console: "BOOT N MAX_US".
clock_of() {
	grep -a -o 'MK-CLOCK boot=[^ ]* n=[0-9]* max_us=[0-9]*' "$mk/instances/$1/console" |
		tail -1 | sed 's/MK-CLOCK boot=\([^ ]*\) n=\([0-9]*\) max_us=\([0-9]*\)/\1 \2 \3/'
}
# All the console log the host keeps of instance $1 (16 KiB, ikc.rst): its
# device gives it from the oldest byte kept (read without blocking: it ends
# with EAGAIN, which dd reports and we ignore); `console` shows only the
# last 4000 bytes, out of which a slow update's later lines can push a line
# from before it.
console_kept() {
	dd if="/dev/mk-$1.console" iflag=nonblock bs=4k status=none 2>/dev/null
}
# Whether that log of instance $1 has the text $2.
kept_has() {
	local log
	log=$(console_kept "$1")
	grep -aqF -- "$2" <<<"$log"
}
# Records what instance $1 is now, for the next kernel to compare.
record() {
	local d=$mk/instances/$1
	{
		echo "id=$(cat "$d/id")"
		echo "cpus=$(cat "$d/cpus")"
		echo "memory=$(cat "$d/memory")"
		echo "uptime=$(cat "$d/uptime_ms")"
		echo "clock=\"$(clock_of "$1")\""
	} >"$res/update-$1"
}
# Waits up to $2 s for a MK-CLOCK line of instance $1 with a count above $3.
clock_after() {
	local i now
	for i in $(seq $(($2 * 5))); do
		now=$(clock_of "$1")
		if [ -n "$now" ] && [ "$(echo "$now" | cut -d' ' -f2)" -gt "$3" ]; then
			echo "$now"
			return 0
		fi
		sleep 0.2
	done
	return 1
}
# Whether the loop counts of instance $1's MK-CLOCK lines only go up (the
# lines written while no host listened came in order, after the others).
in_order() {
	# (Not the last line: it may still be arriving.)
	grep -a -o 'MK-CLOCK boot=[^ ]* n=[0-9]*' "$mk/instances/$1/console" | sed 's/.*n=//' |
		head -n -1 | awk 'NR > 1 && $1 <= last { bad = 1 } { last = $1 } END { exit bad }'
}
# Gives the host's side of instance $1's link 169.254.$1.1/24 and pings the
# instance's side (the sample init gives its mkv0 .2).
# (A few tries: the instance may still be bringing its side up.)
net_ping() {
	local i
	ip addr add "169.254.$1.1/24" dev "mkv$1" 2>/dev/null
	ip link set "mkv$1" up || return 1
	for i in 1 2 3 4 5; do
		busybox ping -c 1 -W 3 "169.254.$1.2" >/dev/null && return 0
		sleep 1
	done
	return 1
}
# Checks the adoption of instance $1 after an update ($2: which).
adopted() {
	local name=$1 upd=$2 d=$mk/instances/$1 id cpus memory uptime clock now boot n max
	# shellcheck disable=SC1090
	. "$res/update-$name"
	if [ ! -d "$d" ]; then
		unot "update $upd: $name adopted (no $d)"
		return
	fi
	uok "update $upd: $name adopted"
	ucheck "update $upd: $name keeps id $id, CPUs $cpus, memory $memory" \
		test "$(cat "$d/id") $(cat "$d/cpus") $(cat "$d/memory")" = "$id $cpus $memory"
	ucheck "update $upd: $name is running ($(cat "$d/state"))" test "$(cat "$d/state")" = running
	ucheck "update $upd: $name's uptime went on ($(cat "$d/uptime_ms") ms, was $uptime)" \
		test "$(cat "$d/uptime_ms")" -gt "$uptime"
	ucheck "update $upd: $name's devices are back" test -c "/dev/mk-$name" -a -c "/dev/mk-$name.console"
	ucheck "update $upd: $name answers a ping" cat "$d/ping"
	ucheck "update $upd: $name's channel is open ($(cat "$d/ikc/state"))" test "$(cat "$d/ikc/state")" = open
	# Its network link (the host's address on mkvID is host state: set again).
	ucheck "update $upd: $name's network link carries a ping" net_ping "$id"
	set -- $clock
	boot=$1 n=$2
	ucheck "update $upd: $name's console log goes back before the update (to n=$n)" \
		kept_has "$name" "MK-CLOCK boot=$boot n=$n "
	if ! now=$(clock_after "$name" 20 "$n"); then
		unot "update $upd: $name's loop went on (no MK-CLOCK line after n=$n)"
		return
	fi
	set -- $now
	ucheck "update $upd: $name's kernel did not restart (boot id $1, was $boot)" test "$1" = "$boot"
	ucheck "update $upd: $name's console lines arrived in order" in_order "$name"
	uok "update $upd: $name's loop went on (n=$2, was $n)"
	ucheck "update $upd: $name's loop never stopped longer than $MAX_GAP_US us (longest gap $3 us)" \
		test "$3" -le "$MAX_GAP_US"
}
# kexec -e into this kernel again with $1 appended (after running $2, if
# given, between the load and the kexec -e); on failure it reports that.
update_to() {
	local name
	for name in $names; do record "$name"; done
	kexec -s -l "$img" --reuse-cmdline --append="$1" ||
		{ unot "kexec -s -l for $1"; ufinish; report "not ok 1 kexec -s -l failed" 1; }
	[ -z "${2:-}" ] || "$2"
	dmesg >"$res/dmesg-update-$stage.txt"
	sync
	kexec -e
	unot "kexec -e for $1 returned (refused?): $(dmesg | grep -a 'multikernel' | tail -2 | tr '\n' ' ')"
	ufinish
	report "not ok 1 the kexec -e for $1 failed" 1
}
# Starts u3 and returns while it is still starting (for the update to wait).
start_u3() {
	"$kst/multikernel/mk_start" u3 "cpus=3 memory=224M" "$line mk_sample=clock" &
	for i in $(seq 100); do
		[ "$(cat $mk/instances/u3/state 2>/dev/null)" = starting ] && break
		sleep 0.05
	done
	ucheck "u3 is starting at kexec -e" test "$(cat $mk/instances/u3/state)" = starting
	ufinish
}

case "$stage" in
0)
	# The first kernel got here only through the refusal check (a kexec -e that
	# was not refused would boot this kernel too, without the mark).
	[ -f "$res/kexec-refused" ] ||
		report "not ok 1 kexec -e was not refused while instance kx ran (it booted this kernel)" 1
	rm -f "$ures"
	for name in u1 u2; do
		if [ "$name" = u1 ]; then spec="cpus=$cpu memory=224M"; else spec="cpus=1-2 memory=224M"; fi
		ucheck "start $name ($spec) with mk-clock" \
			"$kst/multikernel/mk_start" "$name" "$spec" "$line mk_sample=clock" "MK-CLOCK"
	done
	# Refused, the instances untouched: a kernel loaded by kexec_load (no KHO).
	if kexec -c -l "$img" --reuse-cmdline --append=mk_update=9; then
		if kexec -e; then unot "kexec -e of a kexec_load()ed kernel refused"; else uok "kexec -e of a kexec_load()ed kernel refused"; fi
		kexec -u
	else
		unot "kexec -c -l (kexec_load) of this kernel"
	fi
	# A kernel that does not declare the handover: its MKHO record, in the
	# kernel_info the setup header points to, renamed.
	sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$img" | tr -d ' ')
	info=$(( (sects + 1) * 512 + $(od -An -tu4 -j $((0x268)) -N4 "$img" | tr -d ' ') ))
	off=$(dd if="$img" bs=1 skip="$info" count=256 status=none | grep -obUa MKHO | head -1 | cut -d: -f1)
	[ -n "$off" ] && off=$((info + off))
	cp "$img" /tmp/no-mkho
	if [ -n "$off" ] && printf XKHO | dd of=/tmp/no-mkho bs=1 seek="$off" conv=notrunc status=none &&
		kexec -s -l /tmp/no-mkho --reuse-cmdline --append=mk_update=9; then
		if kexec -e; then unot "kexec -e of a kernel without the handover record refused"; else uok "kexec -e of a kernel without the handover record refused"; fi
		kexec -u
	else
		unot "kexec -s -l of a kernel without the handover record"
	fi
	ucheck "u1's network link carries a ping" net_ping "$(cat $mk/instances/u1/id)"
	ucheck "u2's network link carries a ping" net_ping "$(cat $mk/instances/u2/id)"
	ucheck "after the refusals u1 and u2 are running" \
		test "$(cat $mk/instances/u1/state) $(cat $mk/instances/u2/state)" = "running running"
	# u3 is still starting at kexec -e: the update waits until it runs.
	names="u1 u2"
	update_to mk_update=1 start_u3
	;;
1)
	adopted u1 1
	adopted u2 1
	ucheck "update 1: u3, starting at kexec -e, was adopted once it ran ($(cat $mk/instances/u3/state))" \
		test "$(cat $mk/instances/u3/state)" = running
	ucheck "update 1: u3's loop runs" clock_after u3 20 0
	names="u1 u2 u3"
	update_to mk_update=2
	;;
2)
	adopted u1 2
	adopted u2 2
	adopted u3 2
	# u3 goes through the third update killed: its CPU waits in this
	# kernel's play_dead, which the next one must not leave it in.
	ucheck "u3 is killed before the third update" sh -c "echo kill >$mk/instances/u3/control"
	names="u1 u2"
	update_to mk_update=3
	;;
3)
	adopted u1 3
	adopted u2 3
	ucheck "update 3: u3 is back stopped ($(cat $mk/instances/u3/state), $(cat $mk/instances/u3/last_stop))" \
		test "$(cat $mk/instances/u3/state) $(cat $mk/instances/u3/last_stop)" = "stopped kill"
	if echo start 2>/dev/null >$mk/instances/u3/control; then
		unot "update 3: u3 cannot start without its image (it started)"
	else
		uok "update 3: u3 cannot start without its image"
	fi
	echo stop >$mk/instances/u1/control
	for i in $(seq 100); do [ "$(cat $mk/instances/u1/state)" = stopped ] && break; sleep 0.2; done
	ucheck "u1 stops in order after the updates ($(cat $mk/instances/u1/state), $(cat $mk/instances/u1/last_stop))" \
		test "$(cat $mk/instances/u1/state)" = stopped
	ucheck "u2 is killed after the updates" sh -c "echo kill >$mk/instances/u2/control"
	ucheck "u1, u2 and u3 are destroyed" \
		sh -c "echo u1 >$mk/destroy && echo u2 >$mk/destroy && echo u3 >$mk/destroy"
	ucheck "their CPUs are online again ($(cat /sys/devices/system/cpu/online))" \
		test "$(cat /sys/devices/system/cpu/online)" = "0-$cpu"
	ucheck "the pool is whole again" test "$(cat $mk/pool/free_bytes)" = "$(cat $mk/pool/total_bytes)"
	cat $mk/pool/total_bytes >"$res/pool-total"
	# A KHO kexec with no instance to hand over: the next kernel places its
	# pool once KHO reserved its memory, outside KHO's scratch areas.
	names=""
	update_to mk_update=4
	;;
4)
	ucheck "after a KHO kexec without instances the pool is there ($(cat $mk/pool/total_bytes) bytes)" \
		test "$(cat $mk/pool/total_bytes)" = "$(cat "$res/pool-total")"
	ufinish
	"$kst/multikernel/mk_start" hd "cpus=$cpu memory=256M" "$line" "stop handling ready" ||
		report "not ok 1 last kernel: cannot start instance hd" 1
	report "ok 1 kexec -e refused while an instance ran, then a second kernel ($(uname -r)) ran the host update and left an instance running for the power-off" 0
	;;
9)
	unot "a kexec -e that had to be refused booted this kernel"
	ufinish
	report "not ok 1 a kexec -e that had to be refused booted this kernel" 1
	;;
esac

dmesg >"$res/dmesg-first.txt"
rm -f "$res/kexec-refused"
"$kst/multikernel/mk_start" kx "cpus=$cpu memory=256M" "$line" ||
	report "not ok 1 cannot start instance kx" 1
if ! kexec -s -l "$img" --reuse-cmdline --append="mk_kexec_second kho=on mk_update=0"; then
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
