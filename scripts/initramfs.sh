#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the sample instance initramfs (samples/multikernel/initramfs/): a
# static busybox and the sample init, as a gzip'd newc cpio at
# $MK_BUILD/initramfs.cpio.gz. Rebuilt only when its inputs change.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT=$MK_BUILD/initramfs.cpio.gz
BUSYBOX=/bin/busybox
SRC=$MK_ROOT/samples/multikernel/initramfs
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing: install busybox-static"
if readelf -l "$BUSYBOX" | grep -q INTERP; then
	die "$BUSYBOX is dynamically linked: install busybox-static"
fi
# Rebuilt when the content of an input changes (not its time: a clone of the tree
# building into the same cache must not pass for this tree's sources, or the reverse).
STREAM_H=$MK_ROOT/tools/testing/selftests/multikernel/mk_stream.h
inputs_id=$({ cat "$SRC/init" "$SRC"/*.c "$MK_ROOT/include/uapi/linux/multikernel.h" "$STREAM_H" \
	"$MK_BUILD/obj/usr/include/linux/kexec.h" "$BUSYBOX" 2>/dev/null || true; } |
	sha256sum | cut -d' ' -f1)
if [ -f "$OUT" ] && [ "$(cat "$OUT.id" 2>/dev/null)" = "$inputs_id" ] &&
	[ -x "$MK_BUILD/mk-jitter" ]; then
	exit 0
fi
step "initramfs: $OUT (busybox-static + samples/multikernel/initramfs/{init,mk-kexec.c,mk-clock.c,mk-jitter.c,mk-stream.c})"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/dev" "$tmp/proc" "$tmp/sys"
cp "$BUSYBOX" "$tmp/bin/busybox"
# The uapi headers of the patched tree (make headers in build.sh) for <linux/kexec.h>.
gcc -static -O2 -Wall -Werror -isystem "$MK_BUILD/obj/usr/include" -o "$tmp/bin/mk-kexec" "$SRC/mk-kexec.c"
gcc -static -O2 -Wall -Werror -o "$tmp/bin/mk-clock" "$SRC/mk-clock.c"
gcc -static -O2 -Wall -Werror -o "$tmp/bin/mk-jitter" "$SRC/mk-jitter.c"
# mk-stream also uses the selftests' stream helpers (mk_stream.h).
gcc -static -O2 -Wall -Werror -isystem "$MK_BUILD/obj/usr/include" -I "$(dirname "$STREAM_H")" \
	-o "$tmp/bin/mk-stream" "$SRC/mk-stream.c"
# The host's copy, for make bench's jitter comparison (the VM sees $MK_BUILD).
cp "$tmp/bin/mk-jitter" "$MK_BUILD/mk-jitter"
cp "$SRC/init" "$tmp/init"
chmod 755 "$tmp/init" "$tmp/bin/busybox"
ln -s busybox "$tmp/bin/sh"
(cd "$tmp" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -9) >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "$inputs_id" >"$OUT.id"
