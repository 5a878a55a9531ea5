#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the demo VM: the multikernel control tree; an instance created,
# loaded with this same kernel and the sample initramfs, started beside the
# host; IKC: pings, the instance's console read on the host, a message
# through the instance's echo service; killed and destroyed.
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
id=$(cat $mk/instances/demo0/id)
echo "\$ kexec_file_load(bzImage, initramfs, \"console=ttyS1 ...\", KEXEC_FILE_MULTIKERNEL | KEXEC_FILE_MK_ID($id))"
python3 - "$img" "$rd" "$id" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
k, i = os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], os.O_RDONLY)
cl = b"console=ttyS1 kunit.enable=0 panic=0 loglevel=7\0"
SYS_kexec_file_load, KEXEC_FILE_MULTIKERNEL = 320, 0x40
r = libc.syscall(SYS_kexec_file_load, k, i, len(cl), cl, KEXEC_FILE_MULTIKERNEL | (int(sys.argv[3]) << 16))
print("loaded" if r == 0 else "load failed: " + os.strerror(ctypes.get_errno()))
PY
run "cat $mk/instances/demo0/image"
run "echo start > $mk/instances/demo0/control"
for _ in $(seq 60); do
	[ "$(cat $mk/instances/demo0/state)" = starting ] || break
	sleep 0.5
done
run "cat $mk/instances/demo0/state"
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
run "echo kill > $mk/instances/demo0/control; cat $mk/instances/demo0/{state,last_stop}"
run "echo demo0 > $mk/destroy; cat /sys/devices/system/cpu/online $mk/pool/free_bytes"
echo "=== end of demo"
