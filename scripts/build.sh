#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the multikernel kernel: pristine 7.3.4 tree + patches/ + overlay, in a
# build directory outside the repository, incrementally.
#
#   KSRC=/path/to/linux-7.3  use this tree instead of fetching Debian's
#   MK_BUILD=/path           build directory (default ~/.cache/multikernel/build)
#   MK_KERNEL_VARIANT=bench  the kernel make bench measures instead, in obj-bench/:
#                            configs/bench.config on top (no lockdep, no test code)
#
# Layout of $MK_BUILD: linux/ (patched tree with our overlay), obj/ (O= output,
# with its config.log), build.log; for make bench obj-bench/ and build-bench.log.
# Prints nothing but progress lines; the log has the details.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Folders of the repository that are copied into the kernel tree at the same
# path. Top-level Makefile, Kbuild, README.md, scripts/, configs/, patches/
# and .ci/ are project tooling and are never copied.
OVERLAY_DIRS=(Documentation LICENSES arch drivers include init kernel lib mm rust samples tools)

TREE=$MK_BUILD/linux
FRAGMENTS=("$MK_ROOT/configs/multikernel.config" "$MK_ROOT/configs/vm.config")
case "${MK_KERNEL_VARIANT:-}" in
"")
	OBJ=$MK_BUILD/obj
	LOG=$MK_BUILD/build.log
	;;
bench)
	OBJ=$MK_BUILD/obj-bench
	LOG=$MK_BUILD/build-bench.log
	FRAGMENTS+=("$MK_ROOT/configs/bench.config")
	;;
*) die "MK_KERNEL_VARIANT=$MK_KERNEL_VARIANT: no such kernel (bench, or unset)" ;;
esac
mkdir -p "$MK_BUILD"

# --- 1. pristine source ---------------------------------------------------
if [ -n "${KSRC:-}" ]; then
	[ -f "$KSRC/Makefile" ] || die "KSRC=$KSRC is not a kernel tree (no Makefile)"
	v=$(awk '/^VERSION =/ {v=$3} /^PATCHLEVEL =/ {p=$3} END {print v "." p}' "$KSRC/Makefile")
	[ "$v" = 7.3 ] || die "KSRC=$KSRC is Linux $v, not a 7.3 tree"
	PRISTINE=$(cd "$KSRC" && pwd)
else
	PRISTINE=$("$MK_ROOT/scripts/fetch-source.sh")
fi

# --- 2. working tree: a private copy of the pristine tree --------------------
if [ "$(cat "$TREE/.mk-pristine" 2>/dev/null)" != "$PRISTINE" ]; then
	step "tree: copying $PRISTINE to $TREE"
	# Both kernels' objects: they were built from the tree being replaced.
	rm -rf "$TREE" "$MK_BUILD/obj" "$MK_BUILD/obj-bench"
	mkdir -p "$TREE"
	(cd "$PRISTINE" && tar --exclude=.git -cf - .) | (cd "$TREE" && tar -xf -)
	echo "$PRISTINE" >"$TREE/.mk-pristine"
fi

# Put a file of the tree back as it is in the pristine source (or remove it
# when the pristine tree does not have it). Only touches it if it differs.
restore() {
	local f=$1
	if [ -f "$PRISTINE/$f" ]; then
		cmp -s "$PRISTINE/$f" "$TREE/$f" || cp "$PRISTINE/$f" "$TREE/$f"
	else
		rm -f "$TREE/$f"
	fi
}

# --- 3. patch series ----------------------------------------------------------
mapfile -t SERIES < <(cd "$MK_ROOT/patches" 2>/dev/null && ls -1 -- *.patch 2>/dev/null | sort)
series_id=$( (cd "$MK_ROOT/patches" 2>/dev/null && cat -- "${SERIES[@]}" /dev/null) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$TREE/.mk-series" 2>/dev/null)" != "$series_id" ]; then
	step "patch: applying ${#SERIES[@]} patches from patches/"
	# Undo the previous series file by file (patch names its files in +++ lines).
	if [ -f "$TREE/.mk-patched-files" ]; then
		while read -r f; do restore "$f"; done <"$TREE/.mk-patched-files"
	fi
	: >"$TREE/.mk-patched-files.new"
	for p in "${SERIES[@]}"; do
		grep -E '^\+\+\+ b/' "$MK_ROOT/patches/$p" | sed -e 's|^+++ b/||' -e 's|\t.*||' \
			>>"$TREE/.mk-patched-files.new"
		if ! (cd "$TREE" && patch -p1 --forward --batch --no-backup-if-mismatch -s \
			<"$MK_ROOT/patches/$p") >"$MK_BUILD/patch.log" 2>&1; then
			sort -u "$TREE/.mk-patched-files.new" | while read -r f; do restore "$f"; done
			rm -f "$TREE/.mk-series" "$TREE/.mk-patched-files" "$TREE/.mk-patched-files.new"
			cat "$MK_BUILD/patch.log" >&2
			die "patch patches/$p does not apply to $PRISTINE (log: $MK_BUILD/patch.log)"
		fi
	done
	sort -u "$TREE/.mk-patched-files.new" >"$TREE/.mk-patched-files"
	rm -f "$TREE/.mk-patched-files.new"
	echo "$series_id" >"$TREE/.mk-series"
fi

# --- 4. overlay: copy only what changed -----------------------------------------
step "overlay: ${OVERLAY_DIRS[*]}"
cd "$MK_ROOT"
if git rev-parse --git-dir >/dev/null 2>&1; then
	list_files() { git ls-files --cached --others --exclude-standard -- "$@"; }
else
	list_files() { find "$@" -type f 2>/dev/null; }
fi
present=()
for d in "${OVERLAY_DIRS[@]}"; do [ -d "$d" ] && present+=("$d"); done
: >"$TREE/.mk-overlay.new"
if ((${#present[@]})); then
	list_files "${present[@]}" | while read -r f; do
		[ -f "$f" ] || continue
		echo "$f" >>"$TREE/.mk-overlay.new"
		if grep -qxF "$f" "$TREE/.mk-patched-files" 2>/dev/null; then
			die "$f is both in the overlay and changed by patches/: pick one"
		fi
		if ! cmp -s "$f" "$TREE/$f"; then
			mkdir -p "$TREE/$(dirname "$f")"
			cp "$f" "$TREE/$f"
		fi
	done
fi
# Files that left the overlay go back to their pristine state.
if [ -f "$TREE/.mk-overlay" ]; then
	sort "$TREE/.mk-overlay" | comm -23 - <(sort "$TREE/.mk-overlay.new") |
		while read -r f; do restore "$f"; done
fi
mv "$TREE/.mk-overlay.new" "$TREE/.mk-overlay"

# --- 5. configuration -------------------------------------------------------------
config_id=$(cat "${FRAGMENTS[@]}" "$TREE/.mk-series" | sha256sum | cut -d' ' -f1)
kmake() { make -C "$TREE" O="$OBJ" "${MK_MAKEFLAGS[@]}" "$@"; }
if [ ! -f "$OBJ/.config" ] || [ "$(cat "$OBJ/.mk-config" 2>/dev/null)" != "$config_id" ]; then
	step "config: tinyconfig + configs/*.config"
	mkdir -p "$OBJ"
	{
		kmake tinyconfig
		KCONFIG_CONFIG=$OBJ/.config "$TREE/scripts/kconfig/merge_config.sh" -m -O "$OBJ" \
			"$OBJ/.config" "${FRAGMENTS[@]}"
		kmake olddefconfig
	} >"$OBJ/config.log" 2>&1 || die "configuration failed (log: $OBJ/config.log)"
	# Every option the fragments ask for (the last fragment's word for it, as
	# merge_config.sh takes it) must have survived olddefconfig.
	missing=$(cat "${FRAGMENTS[@]}" | grep -E '^CONFIG_[A-Z0-9_]+=' |
		awk -F= '{v[$1] = $0; if (!($1 in at)) at[$1] = NR} END {for (o in at) print at[o], v[o]}' |
		sort -n | cut -d' ' -f2- | while IFS= read -r line; do
		opt=${line%%=*} val=${line#*=}
		if [ "$val" = n ]; then
			if grep -qE "^$opt=" "$OBJ/.config"; then echo "$line"; fi
		else
			if ! grep -qxF "$line" "$OBJ/.config"; then echo "$line"; fi
		fi
	done)
	[ -z "$missing" ] || die "config options not set as asked (unmet dependencies?): $(echo $missing)"
	echo "$config_id" >"$OBJ/.mk-config"
fi

# --- 6. build -------------------------------------------------------------------
step "build: bzImage in $OBJ (log: $LOG)"
start=$(date +%s)
if ! kmake -j"$(($(nproc) + 1))" bzImage modules headers >"$LOG" 2>&1; then
	grep -E 'error|Error' "$LOG" | head -20 >&2 || true
	die "kernel build failed (log: $LOG)"
fi
# Rust warnings (rustc and clippy) fail the build: mainline 7.3 has none.
if grep -qE '^(warning|error)(\[[a-zA-Z0-9_:]+\])?:' "$LOG"; then
	grep -E -A8 '^(warning|error)(\[[a-zA-Z0-9_:]+\])?:' "$LOG" | head -40 >&2
	die "the build has Rust warnings (log: $LOG)"
fi
step "build: done in $(($(date +%s) - start)) s: $OBJ/arch/x86/boot/bzImage"
[ -n "${MK_KERNEL_VARIANT:-}" ] || "$MK_ROOT/scripts/build-mkctl.sh"
