# SPDX-License-Identifier: GPL-2.0
# Booting the built kernel under virtme-ng. Sourced, not executed.

KERNEL_IMAGE=$MK_BUILD/obj/arch/x86/boot/bzImage
VM_CPUS=${MK_VM_CPUS:-4}
VM_MEMORY=${MK_VM_MEMORY:-2G}

# KVM hangs at kernel entry on these machines even though /dev/kvm exists, so
# use it only when a short probe boot gets through; remember the answer for
# this host kernel. MK_ACCEL=tcg or MK_ACCEL=kvm skips the probe.
vm_accel_flags() {
	local cache=$MK_CACHE/accel-$(uname -r) accel=${MK_ACCEL:-}
	if [ -z "$accel" ]; then
		if [ ! -w /dev/kvm ]; then
			accel=tcg
		elif [ -f "$cache" ]; then
			accel=$(cat "$cache")
		else
			step "boot: probing KVM (falls back to TCG if a guest cannot boot in 60 s)" >&2
			if timeout 60 vng --run "$KERNEL_IMAGE" --memory 512M --cpus 1 \
				--exec true >"$MK_CACHE/kvm-probe.log" 2>&1; then
				accel=kvm
			else
				accel=tcg
			fi
			echo "$accel" >"$cache"
		fi
	fi
	[ "$accel" = kvm ] || echo --disable-kvm
}

# vm_run TIMEOUT LOG APPEND CMD...: boot the kernel, run CMD inside as root,
# (MK_VM_QEMU_OPTS: extra QEMU options, e.g. a second serial port),
# (root=/dev/root: vng exports / over 9p with that mount tag but names no root
# device, which a kernel without CONFIG_BLOCK needs),
# kernel console and command output to LOG. Returns the command's status,
# 124 on timeout, or 200 if the guest did not reach init in time (see below).
vm_run() {
	local limit=$1 log=$2 append=$3
	shift 3
	local extra=()
	[ -z "${MK_VM_QEMU_OPTS:-}" ] || extra=(--qemu-opts "$MK_VM_QEMU_OPTS")
	local accel pid start rc=0
	accel=$(vm_accel_flags)
	# shellcheck disable=SC2086
	timeout --kill-after=10 "$limit" vng --run "$KERNEL_IMAGE" $accel \
		--cpus "$VM_CPUS" --memory "$VM_MEMORY" --force-9p --verbose "${extra[@]}" \
		--append "root=/dev/root $append" --rwdir "$MK_BUILD/results" \
		--exec "$*" </dev/null >"$log" 2>&1 &
	pid=$!
	# MK_VM_BOOT_LIMIT=S: a guest that has not started init within S seconds
	# hung in early boot (seen once in ~17 boots under TCG, before any of our
	# code ran: the log ends at "clocksource: Switched to clocksource
	# tsc-early"). Stop it (timeout passes the signal to its process group,
	# QEMU included) and return 200, so the caller can boot it once more.
	if [ -n "${MK_VM_BOOT_LIMIT:-}" ]; then
		start=$(date +%s)
		while kill -0 "$pid" 2>/dev/null; do
			grep -qa ' as init process' "$log" 2>/dev/null && break
			if [ $(($(date +%s) - start)) -ge "$MK_VM_BOOT_LIMIT" ]; then
				kill -TERM "$pid" 2>/dev/null || true
				wait "$pid" || true
				return 200
			fi
			sleep 2
		done
	fi
	wait "$pid" || rc=$?
	return "$rc"
}
