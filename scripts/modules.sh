#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the repository's loadable parts (see Kbuild) as external modules
# against the built kernel; output in $MK_BUILD/modules, never in the repo.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT=$MK_BUILD/modules
mkdir -p "$OUT"
step "build: external modules from Kbuild into $OUT"
if ! make -C "$MK_BUILD/linux" O="$MK_BUILD/obj" M="$MK_ROOT" MO="$OUT" "${MK_MAKEFLAGS[@]}" \
	-j"$(($(nproc) + 1))" modules >"$MK_BUILD/modules.log" 2>&1; then
	grep -E 'error|Error' "$MK_BUILD/modules.log" | head -20 >&2 || true
	die "module build failed (log: $MK_BUILD/modules.log)"
fi
if grep -qE '^(warning|error)(\[[a-zA-Z0-9_:]+\])?:' "$MK_BUILD/modules.log"; then
	grep -E -A8 '^(warning|error)(\[[a-zA-Z0-9_:]+\])?:' "$MK_BUILD/modules.log" | head -40 >&2
	die "the module build has Rust warnings (log: $MK_BUILD/modules.log)"
fi
