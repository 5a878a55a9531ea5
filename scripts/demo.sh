#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo: install, fetch, build, then boot the kernel under QEMU
# (virtme-ng) and show what the multikernel subsystem offers so far.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$MK_ROOT/scripts/vm.sh"

need_root
prepare install-deps build initramfs

mkdir -p "$MK_BUILD/results"
step "boot: $KERNEL_IMAGE under QEMU, $VM_CPUS vCPUs (TCG: about a minute)"
rc=0
rm -f "$MK_BUILD/results/demo-ttyS1.log"
MK_VM_QEMU_OPTS="-serial file:$MK_BUILD/results/demo-ttyS1.log" \
	vm_run 600 "$MK_BUILD/results/demo.log" "multikernel.pool=512M kunit.enable=0 loglevel=4" \
	"$MK_ROOT/scripts/guest-demo.sh" "$KERNEL_IMAGE" "$MK_BUILD/initramfs.cpio.gz" "$MK_BUILD/bin" || rc=$?
# Show what the host printed, without the kernel's boot chatter.
echo "--- host (first serial port) ---"
sed -n '/^=== multikernel demo/,/^=== end of demo/p' "$MK_BUILD/results/demo.log" | tr -d '\r'
echo "--- instance demo0 on CPUs 2-3 (second serial port), excerpt ---"
tr -d '\r' <"$MK_BUILD/results/demo-ttyS1.log" 2>/dev/null |
	grep -aE 'Linux version|Command line|e820: \[mem|multikernel instance|Brought up|Run /init|MULTIKERNEL-SAMPLE-INIT (up|cpus)' |
	sed -E 's/(Command line: .{100}).*/\1.../'
if [ "$rc" != 0 ] || ! grep -q '^=== end of demo' "$MK_BUILD/results/demo.log"; then
	die "the demo VM failed (status $rc, log: $MK_BUILD/results/demo.log)"
fi
