#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the bench VM: every *_bench program, output to RESULTS/bench.txt.
#   guest-bench.sh PROGRAM_DIR RESULTS_DIR
. "$(dirname "$0")/guest-lib.sh"
status=0
for prog in "$1"/*_bench; do
	"$prog" >>"$2/bench.txt" 2>&1 || status=1
done
exit $status
