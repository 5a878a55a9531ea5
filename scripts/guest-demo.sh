#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the demo VM: the multikernel control tree; an instance created,
# loaded with this same kernel and the sample initramfs, started beside the
# host; IKC: pings, the instance's console read on the host, a message
# through the instance's echo service, a command typed into its shell; its
# network link pinged, a second instance pinging it through a host bridge;
# killed and destroyed.
#   guest-demo.sh KERNEL_IMAGE INITRAMFS
. "$(dirname "$0")/guest-lib.sh"
img=$1 rd=$2
mk=/sys/kernel/multikernel
run() {
	echo "\$ $*"
	eval "$@" 2>&1
}
echo "=== multikernel demo: host kernel $(uname -r), $(nproc) CPUs online"
run 'dmesg | grep -E "multikernel: (pool|multikernel)"'
run "grep -i multikernel /proc/iomem"
run "ls $mk $mk/pool"
run "echo 'demo0 cpus=2-3 memory=256M' > $mk/create"
run "cat $mk/instances/demo0/{id,cpus,memory,state}"
run "cat /sys/devices/system/cpu/online"
run "echo 1 > /sys/devices/system/cpu/cpu3/online   # owned by demo0: refused"
# load_and_start NAME CMDLINE: this kernel and the sample initramfs into NAME, started.
load_and_start() {
	local id
	id=$(cat $mk/instances/$1/id)
	echo "\$ kexec_file_load(bzImage, initramfs, \"$2\", KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_MK_ID($id))"
	python3 - "$img" "$rd" "$id" "$2" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
k, i = os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], os.O_RDONLY)
cl = sys.argv[4].encode() + b"\0"
SYS_kexec_file_load, KEXEC_FILE_MULTIKERNEL = 320, 0x40
r = libc.syscall(SYS_kexec_file_load, k, i, len(cl), cl, KEXEC_FILE_MULTIKERNEL | (int(sys.argv[3]) << 16))
print("loaded" if r == 0 else "load failed: " + os.strerror(ctypes.get_errno()))
PY
	run "cat $mk/instances/$1/image"
	run "echo start > $mk/instances/$1/control"
	for _ in $(seq 60); do
		[ "$(cat $mk/instances/$1/state)" = starting ] || break
		sleep 0.5
	done
	run "cat $mk/instances/$1/state"
}
load_and_start demo0 "console=ttyS1 kunit.enable=0 panic=0 loglevel=7"
id=$(cat $mk/instances/demo0/id)
run 'dmesg | grep -E "multikernel: (start|demo0)"'
echo "=== IKC: the host talks to the instance kernel"
run "for i in 1 2 3; do cat $mk/instances/demo0/ping; done   # round trips, ns"
run "echo 4096 > $mk/instances/demo0/ping; cat $mk/instances/demo0/ping"
run "ls -l /dev/mk-demo0"
echo "\$ write 'hello over IKC' to /dev/mk-demo0, port 7 (the instance kernel's echo), read the answer"
python3 - <<'PY'
import os, struct
fd = os.open("/dev/mk-demo0", os.O_RDWR)
msg = b"hello over IKC"
os.write(fd, struct.pack("<HHI", 7, 0, len(msg)) + msg)
answer = os.read(fd, 8 + 4096)
port, flags, n = struct.unpack("<HHI", answer[:8])
print("answer on port %d: %r" % (port, answer[8:8 + n]))
PY
run "grep -E . $mk/instances/demo0/ikc/{tx,rx,bytes,ring_full,errors,doorbells,state}"
run "tail -c 600 $mk/instances/demo0/console   # the instance's kernel log, over IKC"
echo "=== its terminal: a shell on /dev/hvc0 in the instance, typed into from the host"
run "echo 'echo instance \$(uname -n) has \$(grep -c ^processor /proc/cpuinfo) CPU' > /dev/mk-demo0.console; sleep 2; tail -c 200 $mk/instances/demo0/console"
echo "=== its network link: mkv$id on the host, mkv0 inside (its init gives it 169.254.$id.2/16)"
run "cat $mk/instances/demo0/net"
run "ip addr add 169.254.$id.1/24 dev mkv$id; ip link set mkv$id up"
for _ in $(seq 20); do
	busybox ping -c 1 -W 1 169.254.$id.2 >/dev/null 2>&1 && break
done
run "busybox ping -c 3 169.254.$id.2"
run "ip -s link show mkv$id"
echo "=== instance to instance: demo1 on CPU 1, both links bridged on the host"
run "echo 'demo1 cpus=1 memory=160M' > $mk/create"
load_and_start demo1 "kunit.enable=0 panic=0 loglevel=4"
id1=$(cat $mk/instances/demo1/id)
run "ip addr flush dev mkv$id; ip link add mkbr0 type bridge; ip link set mkv$id master mkbr0; ip link set mkv$id1 master mkbr0; ip link set mkv$id1 up; ip link set mkbr0 up"
sleep 3
run "echo 'ping -c 3 169.254.$id.2' > /dev/mk-demo1.console; sleep 4; tail -c 400 $mk/instances/demo1/console   # typed into demo1: it pings demo0"
run "echo kill > $mk/instances/demo1/control; echo demo1 > $mk/destroy; ip link del mkbr0"
run "echo kill > $mk/instances/demo0/control; cat $mk/instances/demo0/{state,last_stop}"
run "echo demo0 > $mk/destroy; cat /sys/devices/system/cpu/online $mk/pool/free_bytes"
echo "=== end of demo"
