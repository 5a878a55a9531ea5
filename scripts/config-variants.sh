#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The subsystem's other configuration: CONFIG_MULTIKERNEL_KUNIT_TEST=n and
# CONFIG_MULTIKERNEL_IKC_FAULT_INJECT=n (what a production kernel builds).
# A second full kernel build would cost minutes; the options only select
# code inside kernel/multikernel/, so this compiles exactly that code again
# with both options off: the Rust crate (type and borrow checks, lints and
# warnings as errors, as kbuild runs them; metadata only) and the C files
# (to objects in a scratch directory), with the commands kbuild recorded
# for the tested build. Run by check.sh after build.sh.
. "$(dirname "$0")/lib.sh"

OBJ=$MK_BUILD/obj
OUT=$MK_BUILD/variant
OFF=(CONFIG_MULTIKERNEL_KUNIT_TEST CONFIG_MULTIKERNEL_IKC_FAULT_INJECT)
rm -rf "$OUT"
mkdir -p "$OUT"

# The command kbuild saved for an object (its .cmd file), as one line.
saved_cmd() {
	sed -n "s|^savedcmd_$1 := ||p" "$OBJ/$(dirname "$1")/.$(basename "$1").cmd"
}

# Rust: the rustc cfg list without the two options; output to $OUT.
off_re=$(IFS='|'; echo "${OFF[*]}")
grep -vE -- "--cfg=($off_re)(=|\$)" "$OBJ/include/generated/rustc_cfg" >"$OUT/rustc_cfg"
grep -qE "($off_re)" "$OUT/rustc_cfg" && die "config-variants: options still in the cfg list"
cmd=$(saved_cmd kernel/multikernel/multikernel.o)
[ -n "$cmd" ] || die "config-variants: no saved command for kernel/multikernel/multikernel.o"
cmd=${cmd//@.\/include\/generated\/rustc_cfg/@$OUT/rustc_cfg}
cmd=$(echo "$cmd" | sed -E "s|--out-dir [^ ]+|--out-dir $OUT|; s|--emit=dep-info=[^ ]+||; s|--emit=obj=[^ ]+|--emit=metadata=$OUT/multikernel.rmeta|")
(cd "$OBJ" && RUSTC_BOOTSTRAP=1 CLIPPY_CONF_DIR=$MK_BUILD/linux eval "$cmd") >"$OUT/rust.log" 2>&1 ||
	die "config-variants: the driver does not build with ${OFF[*]} off (log: $OUT/rust.log)"

# C: the same compiler commands, with a header after kconfig.h that turns the options off.
{
	for opt in "${OFF[@]}"; do echo "#undef $opt"; done
} >"$OUT/off.h"
for c in "$MK_ROOT"/kernel/multikernel/*.c; do
	o=kernel/multikernel/$(basename "$c" .c).o
	cmd=$(saved_cmd "$o")
	[ -n "$cmd" ] || die "config-variants: no saved command for $o"
	cmd=$(echo "$cmd" | sed -E "s|(-include [^ ]*/linux/kconfig.h)|\\1 -include $OUT/off.h|; s|-Wp,-MMD,[^ ]+||; s| -o [^ ]+| -o $OUT/$(basename "$o")|")
	echo "$cmd" | grep -q -- "-include $OUT/off.h" || die "config-variants: cannot place the header in the command for $o"
	(cd "$OBJ" && eval "$cmd") >>"$OUT/c.log" 2>&1 ||
		die "config-variants: $o does not build with ${OFF[*]} off (log: $OUT/c.log)"
done
grep -q 'warning:' "$OUT/c.log" 2>/dev/null &&
	die "config-variants: warnings with ${OFF[*]} off (log: $OUT/c.log)"
echo "config-variants: kernel/multikernel builds with ${OFF[*]} off (Rust and C)"
