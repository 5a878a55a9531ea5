#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything the multikernel build and tests need, idempotently:
# Debian packages, bindgen-cli (cargo) and virtme-ng (pip). Skips what is
# already present, so re-running costs a few seconds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEB_PKGS=(
	clang-19 lld-19 llvm-19 libclang-19-dev
	rustc-web rust-web-src rust-web-clippy rustfmt-web cargo-web
	qemu-system-x86 busybox-static
	make gcc libc6-dev flex bison bc cpio kmod xz-utils zstd
	libelf-dev libssl-dev python3-pip
	kexec-tools
)
BINDGEN_VERSION=0.71.1
VIRTME_NG_VERSION=1.42

need_root

missing=()
for p in "${DEB_PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	step "install: Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get update -q >"$MK_CACHE/apt-update.log" 2>&1; then
		die "apt-get update failed: is the Debian package registry reachable? (log: $MK_CACHE/apt-update.log)"
	fi
	if ! apt-get install -y -q --no-install-recommends "${missing[@]}" \
		>"$MK_CACHE/apt-install.log" 2>&1; then
		die "apt-get install failed (log: $MK_CACHE/apt-install.log)"
	fi
fi

# bindgen: the kernel wants a known version; rustup's cargo builds it.
if ! bindgen --version 2>/dev/null | grep -q "^bindgen $BINDGEN_VERSION\$"; then
	step "install: bindgen-cli $BINDGEN_VERSION (cargo install, ~3 min)"
	command -v cargo >/dev/null || die "cargo not found: the machine's rustup toolchain is needed to build bindgen-cli"
	if ! cargo install --locked --version "$BINDGEN_VERSION" bindgen-cli \
		>"$MK_CACHE/bindgen-install.log" 2>&1; then
		die "cargo install bindgen-cli failed: is crates.io reachable? (log: $MK_CACHE/bindgen-install.log)"
	fi
fi

if ! command -v vng >/dev/null 2>&1; then
	step "install: virtme-ng (pip)"
	if ! python3 -m pip install -q "virtme-ng==$VIRTME_NG_VERSION" \
		>"$MK_CACHE/pip-install.log" 2>&1; then
		die "pip install virtme-ng failed: is PyPI reachable? (log: $MK_CACHE/pip-install.log)"
	fi
fi
