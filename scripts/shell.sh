#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make shell: boot the built kernel in a VM (virtme-ng, like vng: the host's
# root file system, read-only, with a shell on the terminal) to try instances
# by hand. The VM has a pool (MK_SHELL_POOL, default 1G), MK_SHELL_CPUS CPUs
# (default 4) and MK_SHELL_MEMORY (default 4G); mkctl is in PATH (the built
# one, over /usr/local/bin), and this kernel is /boot/vmlinuz-RELEASE, so
# `mkctl run -- CMD` finds it. Leave with `exit` (or poweroff).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$MK_ROOT/scripts/vm.sh"

need_root
prepare install-deps build initramfs

release=$(cat "$MK_BUILD/obj/include/config/kernel.release")
dir=$MK_BUILD/shell
rm -rf "$dir"
mkdir -p "$dir/boot" "$dir/bin"
cp "$KERNEL_IMAGE" "$dir/boot/vmlinuz-$release"
cp "$MK_BUILD/bin/mkctl" "$dir/bin/mkctl"
cp "$MK_BUILD/initramfs.cpio.gz" "$dir/boot/sample-initramfs.cpio.gz"
VM_CPUS=${MK_SHELL_CPUS:-4}
step "shell: $VM_CPUS vCPUs, multikernel.pool=${MK_SHELL_POOL:-1G}; try: mkctl run -- uname -a; mkctl ps"
step "shell: the sample initramfs for 'mkctl load' is /boot/sample-initramfs.cpio.gz"
# shellcheck disable=SC2046
exec vng --run "$KERNEL_IMAGE" $(vm_accel_flags) --cpus "$VM_CPUS" \
	--memory "${MK_SHELL_MEMORY:-4G}" --force-9p \
	--append "root=/dev/root multikernel.pool=${MK_SHELL_POOL:-1G} kunit.enable=0" \
	--rodir "/boot=$dir/boot" --rodir "/usr/local/bin=$dir/bin"
