#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fetch and unpack the mainline tree we patch: Debian's linux-source-7.3
# (7.3.4-1~bpo13+1, trixie-backports), through a private apt configuration
# kept in the cache. The system's apt sources are never touched.
#
# Prints the path of the unpacked, pristine tree on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PKG=linux-source-7.3
VERSION=7.3.4-1~bpo13+1
APT_DIR=$MK_CACHE/apt
SRC_DIR=$MK_CACHE/src/linux-7.3.4
STAMP=$SRC_DIR/.mk-unpacked

if [ -f "$STAMP" ]; then
	echo "$SRC_DIR"
	exit 0
fi

step "fetch: $PKG $VERSION from trixie-backports (private apt config)" >&2
mkdir -p "$APT_DIR"/{lists/partial,cache/archives/partial,debs} "$APT_DIR/etc/preferences.d"
cat >"$APT_DIR/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
SRC
: >"$APT_DIR/status"
cat >"$APT_DIR/apt.conf" <<CONF
Dir::Etc::SourceList "$APT_DIR/sources.list";
Dir::Etc::SourceParts "/nonexistent";
Dir::Etc::Preferences "/nonexistent";
Dir::Etc::PreferencesParts "$APT_DIR/etc/preferences.d";
Dir::State "$APT_DIR";
Dir::State::Lists "$APT_DIR/lists";
Dir::State::status "$APT_DIR/status";
Dir::Cache "$APT_DIR/cache";
Dir::Cache::archives "$APT_DIR/cache/archives";
APT::Architecture "amd64";
Acquire::Languages "none";
CONF
export APT_CONFIG=$APT_DIR/apt.conf
if ! apt-get update -q >"$APT_DIR/update.log" 2>&1; then
	die "apt-get update (private config) failed: is the Debian package registry reachable? (log: $APT_DIR/update.log)"
fi

deb=$(ls "$APT_DIR/debs/${PKG}_"*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
	(cd "$APT_DIR/debs" && apt-get download -q "$PKG=$VERSION") >"$APT_DIR/download.log" 2>&1 ||
		die "apt-get download $PKG=$VERSION failed (log: $APT_DIR/download.log)"
	deb=$(ls "$APT_DIR/debs/${PKG}_"*.deb | head -1)
fi

# apt-get download checks the signed index; check the file against it again
# so a truncated or tampered cache entry is caught on every fresh unpack.
want=$(apt-cache show "$PKG=$VERSION" | awk '/^SHA256:/ {print $2; exit}')
have=$(sha256sum "$deb" | awk '{print $1}')
if [ -z "$want" ] || [ "$want" != "$have" ]; then
	rm -f "$deb"
	die "checksum mismatch for $deb (index: ${want:-none}, file: $have); removed, run again"
fi

step "unpack: $PKG (dpkg -x, then the source tarball)" >&2
tmp=$(mktemp -d "$MK_CACHE/unpack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg -x "$deb" "$tmp"
tarball=$(ls "$tmp"/usr/src/linux-source-7.3*.tar.* | head -1)
[ -n "$tarball" ] || die "no source tarball inside $deb"
rm -rf "$SRC_DIR"
mkdir -p "$SRC_DIR"
tar -xf "$tarball" -C "$SRC_DIR" --strip-components=1
touch "$STAMP"
echo "$SRC_DIR"
