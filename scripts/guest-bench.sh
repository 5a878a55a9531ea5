#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the bench VM: every *_bench program, output to RESULTS/bench.txt.
#   guest-bench.sh PROGRAM_DIR RESULTS_DIR KERNEL_IMAGE INITRAMFS
. "$(dirname "$0")/guest-lib.sh"
export MK_KERNEL_IMAGE=$3 MK_INITRAMFS=$4
# The TCP transfer helper (net_bench), in the patched tree's selftests.
export MK_NET_XFER=$(dirname "$(dirname "$1")")/linux/tools/testing/selftests/multikernel/mk_net_xfer.py
status=0
for prog in "$1"/*_bench; do
	"$prog" >>"$2/bench.txt" 2>&1 || status=1
done
exit $status
