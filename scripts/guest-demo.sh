#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the demo VM: the multikernel control tree, and an instance
# created and destroyed through it.
. "$(dirname "$0")/guest-lib.sh"
mk=/sys/kernel/multikernel
run() {
	echo "\$ $*"
	eval "$@" 2>&1
}
echo "=== multikernel demo: $(uname -r), $(nproc) CPUs online"
run 'dmesg | grep -E "multikernel: (pool|multikernel)"'
run "grep -i multikernel /proc/iomem"
run "ls $mk $mk/pool"
run "cat $mk/version $mk/pool/total_bytes"
run "echo 'demo0 cpus=2-3 memory=256M' > $mk/create"
run "ls $mk/instances/demo0"
run "head $mk/instances/demo0/*"
run "cat /sys/devices/system/cpu/online $mk/pool/free_bytes"
run "echo 1 > /sys/devices/system/cpu/cpu2/online   # owned: refused"
run "echo 'demo1 cpus=0 memory=2M' > $mk/create      # the boot CPU: refused"
run "dmesg | tail -2"
run "echo demo0 > $mk/destroy"
run "cat /sys/devices/system/cpu/online $mk/pool/free_bytes"
echo "=== end of demo"
