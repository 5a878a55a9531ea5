#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything the multikernel build and tests need, idempotently:
# Debian packages, bindgen-cli (built with Debian's cargo and rustc) and
# virtme-ng (into a virtual environment under the cache: Debian's Python
# refuses pip installs into the system, PEP 668). Neither rustup nor a
# user-installed Python is needed. Skips what is already present, so
# re-running costs a few seconds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEB_PKGS=(
	clang-19 lld-19 llvm-19 libclang-19-dev
	rustc-web rust-web-src rust-web-clippy rustfmt-web cargo-web
	qemu-system-x86 busybox-static
	make gcc libc6-dev flex bison bc cpio kmod xz-utils zstd
	libelf-dev libssl-dev python3-pip python3-venv
	kexec-tools
)
# Packages only some commands need, named by them (make bench: stress-ng).
read -r -a extra <<<"${MK_DEB_EXTRA:-}"
DEB_PKGS+=("${extra[@]}")
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

# bindgen: the kernel wants a known version, in ~/.cargo/bin (lib.sh);
# Debian's cargo builds it.
if ! "$HOME/.cargo/bin/bindgen" --version 2>/dev/null | grep -q "^bindgen $BINDGEN_VERSION\$"; then
	step "install: bindgen-cli $BINDGEN_VERSION (cargo install, ~3 min)"
	if ! RUSTC=/usr/bin/rustc /usr/bin/cargo install --locked --root "$HOME/.cargo" \
		--version "$BINDGEN_VERSION" bindgen-cli \
		>"$MK_CACHE/bindgen-install.log" 2>&1; then
		die "cargo install bindgen-cli failed: is crates.io reachable? (log: $MK_CACHE/bindgen-install.log)"
	fi
fi

# virtme-ng: one already in PATH is used; else it goes into $MK_CACHE/venv
# (lib.sh puts its bin/ at the end of PATH). A venv that no longer works (its
# Python upgraded) or holds another version is made again.
if [ -x "$MK_CACHE/venv/bin/vng" ] && ! "$MK_CACHE/venv/bin/vng" --version 2>/dev/null |
	grep -q "$VIRTME_NG_VERSION"; then
	rm -rf "$MK_CACHE/venv"
fi
if ! command -v vng >/dev/null 2>&1; then
	step "install: virtme-ng $VIRTME_NG_VERSION into $MK_CACHE/venv (pip)"
	if ! { /usr/bin/python3 -m venv "$MK_CACHE/venv" &&
		"$MK_CACHE/venv/bin/pip" install -q "virtme-ng==$VIRTME_NG_VERSION"; } \
		>"$MK_CACHE/pip-install.log" 2>&1; then
		die "installing virtme-ng failed: is PyPI reachable? (log: $MK_CACHE/pip-install.log)"
	fi
fi
