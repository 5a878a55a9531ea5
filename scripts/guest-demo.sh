#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the demo VM: shows the multikernel control tree.
. "$(dirname "$0")/guest-lib.sh"
echo "=== multikernel demo: $(uname -r), $(nproc) CPUs"
echo "\$ dmesg | grep multikernel"
dmesg | grep -E "multikernel[:_]"
echo "\$ find /sys/kernel/multikernel -exec ls -ld {} +"
find /sys/kernel/multikernel -exec ls -ld {} +
for f in $(find /sys/kernel/multikernel -type f -perm -0444); do
	echo "\$ cat $f"
	cat "$f"
done
echo "=== end of demo"
