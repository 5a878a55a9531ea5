# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the project scripts. Sourced, not executed.

MK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# CI may run with a bare environment: the caches and cargo live under HOME.
if [ -z "${HOME:-}" ]; then
	HOME=$(getent passwd "$(id -u)" | cut -d: -f6)
	export HOME
fi
MK_CACHE=${MK_CACHE:-$HOME/.cache/multikernel}
MK_BUILD=${MK_BUILD:-$MK_CACHE/build}
mkdir -p "$MK_CACHE" 2>/dev/null || true

# The toolchain the kernel build must use: Debian's rustc-web, not rustup's.
# virtme-ng from install-deps.sh's virtual environment if none is in PATH.
export PATH=/usr/lib/llvm-19/bin:$HOME/.cargo/bin:$PATH:$MK_CACHE/venv/bin
# Rust code is always built through Debian's clippy (CLIPPY=1): the build fails
# on any Rust warning, lints included.
MK_MAKEFLAGS=(LLVM=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
	CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver KRUSTFLAGS=-Dwarnings
	BINDGEN="$HOME/.cargo/bin/bindgen")

step() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root (installs packages, boots VMs)"; }
# Runs scripts/STEP.sh for each STEP, in order (each is idempotent and fast
# when there is nothing to do): what a target needs before it boots a VM.
prepare() {
	local s
	for s in "$@"; do "$MK_ROOT/scripts/$s.sh"; done
}
