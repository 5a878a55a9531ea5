# SPDX-License-Identifier: GPL-2.0
# Sourced by the scripts that run inside a virtme-ng guest.

# virtme-ng-init reports the command's exit status through
# /dev/virtio-ports/virtme.ret, a link udev makes; the host root we boot has no
# udev, so make the links from sysfs, or vng always returns 255.
mkdir -p /dev/virtio-ports
for port in /sys/class/virtio-ports/*; do
	[ -f "$port/name" ] || continue
	ln -sf "/dev/$(basename "$port")" "/dev/virtio-ports/$(cat "$port/name")"
done
