#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build mkctl (tools/multikernel/mkctl) with Debian's cargo and rustc into
# $MK_BUILD/bin/mkctl; with --test, run its unit tests first. Crates come
# from crates.io, pinned by Cargo.lock.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export CARGO_TARGET_DIR=$MK_BUILD/mkctl RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
# Debian's cargo subcommands (cargo-clippy, cargo-fmt) before any rustup ones
# (cargo would put a CARGO_HOME's bin/ first).
unset CARGO_HOME
export PATH=/usr/bin:$PATH
CARGO=/usr/bin/cargo
SRC=$MK_ROOT/tools/multikernel/mkctl
[ -x "$CARGO" ] || die "$CARGO not found (Debian package cargo-web; make install)"
mkdir -p "$MK_BUILD/bin"
if [ "${1:-}" = --test ]; then
	step "build: mkctl unit tests (cargo test)"
	"$CARGO" test --locked --release --manifest-path "$SRC/Cargo.toml" \
		>"$MK_BUILD/mkctl-test.log" 2>&1 ||
		die "mkctl unit tests failed (log: $MK_BUILD/mkctl-test.log)"
	"$CARGO" fmt --manifest-path "$SRC/Cargo.toml" --check >"$MK_BUILD/mkctl-fmt.log" 2>&1 ||
		die "mkctl is not cargo fmt clean (log: $MK_BUILD/mkctl-fmt.log)"
	"$CARGO" clippy --locked --release --manifest-path "$SRC/Cargo.toml" -- -D warnings \
		>"$MK_BUILD/mkctl-clippy.log" 2>&1 ||
		die "mkctl has clippy warnings (log: $MK_BUILD/mkctl-clippy.log)"
fi
step "build: mkctl into $MK_BUILD/bin/mkctl"
"$CARGO" build --locked --release --manifest-path "$SRC/Cargo.toml" \
	>"$MK_BUILD/mkctl-build.log" 2>&1 ||
	die "mkctl build failed (log: $MK_BUILD/mkctl-build.log)"
if grep -q '^warning' "$MK_BUILD/mkctl-build.log"; then
	grep -A5 '^warning' "$MK_BUILD/mkctl-build.log" | head -20 >&2
	die "mkctl build has warnings (log: $MK_BUILD/mkctl-build.log)"
fi
install -m 0755 "$CARGO_TARGET_DIR/release/mkctl" "$MK_BUILD/bin/mkctl"
