#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the demo VM: a program run in a kernel of its own with mkctl;
# then by hand, with mkctl and the control tree: an instance created, loaded
# with this same kernel and the sample initramfs, started beside the host;
# IKC: pings, a message through the instance's echo service, a command typed
# into its shell, its console; its network link pinged, a second instance
# pinging it through a host bridge; killed and destroyed.
#   guest-demo.sh KERNEL_IMAGE INITRAMFS MKCTL_DIR
. "$(dirname "$0")/guest-lib.sh"
img=$1 rd=$2
export PATH=$3:$PATH MKCTL_KERNEL=$img
mk=/sys/kernel/multikernel
run() {
	echo "\$ $*"
	eval "$@" 2>&1
}
# wait_started NAME: until it left "starting" (30 s at most).
wait_started() {
	for _ in $(seq 60); do
		[ "$(cat $mk/instances/$1/state)" = starting ] || break
		sleep 0.5
	done
}
echo "=== multikernel demo: host kernel $(uname -r), $(nproc) CPUs online"
run 'dmesg | grep -E "multikernel: (pool|multikernel)"'
run "mkctl pool"
echo "=== a program in a kernel of its own (mkctl run; the kernel: \$MKCTL_KERNEL, this one)"
run "mkctl run -c 2 --file /usr/bin/uname --file /usr/bin/grep -- /bin/sh -c 'echo hello from Linux \$(uname -r) on \$(grep -c ^processor /proc/cpuinfo) CPUs; exit 3'; echo \"exit status \$?\""
echo "=== an instance by hand"
run "mkctl create demo0 --cpus 2-3 --memory 256M"
run "cat $mk/instances/demo0/{id,cpus,memory,state}"
run "cat /sys/devices/system/cpu/online"
run "ls /sys/devices/system/cpu/ | grep -c '^cpu[0-9]'   # CPUs 2-3 belong to demo0: out of the host's view"
run "mkctl create demo9 --cpus 3 --memory 64M      # taken: said in words"
run "mkctl load demo0 $img --initrd $rd --cmdline 'console=ttyS1 kunit.enable=0 panic=0 loglevel=7'"
run "cat $mk/instances/demo0/image"
run "mkctl start demo0"
wait_started demo0
run "mkctl ps"
run 'dmesg | grep -E "multikernel: (start|demo0)"'
echo "=== IKC: the host talks to the instance kernel"
run "mkctl ping demo0 -c 3; mkctl ping demo0 -c 1 -s 4096"
run "(sleep 1; echo 'hello over IKC' | mkctl send demo0 7) & mkctl recv demo0 7 -n 1   # the instance kernel's echo port"
run "grep -E . $mk/instances/demo0/ikc/{tx,rx,bytes,ring_full,errors,doorbells,state}"
run "mkctl console demo0 --once | tail -c 600   # the instance's kernel log, over IKC"
echo "=== its terminal: a shell on /dev/hvc0 in the instance, typed into from the host"
run "echo 'echo instance \$(uname -n) has \$(grep -c ^processor /proc/cpuinfo) CPU' > /dev/mk-demo0.console; sleep 2; mkctl console demo0 --once | tail -c 200"
id=$(cat $mk/instances/demo0/id)
echo "=== its network link: mkv$id on the host, mkv0 inside (its init gives it 169.254.$id.2/16)"
run "cat $mk/instances/demo0/net"
run "ip addr add 169.254.$id.1/24 dev mkv$id; ip link set mkv$id up"
for _ in $(seq 20); do
	busybox ping -c 1 -W 1 169.254.$id.2 >/dev/null 2>&1 && break
done
run "busybox ping -c 3 169.254.$id.2"
run "ip -s link show mkv$id"
echo "=== instance to instance: demo1 on CPU 1, both links bridged on the host"
run "mkctl create demo1 --cpus 1 --memory 160M"
run "mkctl load demo1 $img --initrd $rd --cmdline 'kunit.enable=0 panic=0 loglevel=4'"
run "mkctl start demo1"
wait_started demo1
id1=$(cat $mk/instances/demo1/id)
run "ip addr flush dev mkv$id; ip link add mkbr0 type bridge; ip link set mkv$id master mkbr0; ip link set mkv$id1 master mkbr0; ip link set mkv$id1 up; ip link set mkbr0 up"
sleep 3
run "echo 'ping -c 3 169.254.$id.2' > /dev/mk-demo1.console; sleep 4; mkctl console demo1 --once | tail -c 400   # typed into demo1: it pings demo0"
run "mkctl kill demo1; mkctl destroy demo1; ip link del mkbr0"
run "mkctl kill demo0; cat $mk/instances/demo0/{state,last_stop}"
run "mkctl destroy demo0; cat /sys/devices/system/cpu/online; mkctl pool"
echo "=== end of demo"
