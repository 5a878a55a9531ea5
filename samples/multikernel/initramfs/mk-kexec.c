// SPDX-License-Identifier: GPL-2.0
/*
 * mk-kexec: what "kexec -l X; kexec -e" does, without kexec-tools: load a
 * one-page "kernel" (hlt; jmp back) with kexec_load(2) at an address of this
 * machine's RAM (/proc/iomem) and reboot into it. In a multikernel instance
 * this must stop the instance (the host shows last_stop "kexec"), never jump.
 *
 * mk-kexec crash: what "kexec -p X" does: load it as the crash kernel, into
 * the "Crash kernel" range (boot with crashkernel=); a panic would enter it.
 * In an instance the panic must stop it instead ("crashed: panic").
 *
 * Built static into the sample initramfs (scripts/initramfs.sh).
 */
#include <linux/kexec.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static unsigned char code[4096] __attribute__((aligned(4096))) = { 0xf4, 0xeb, 0xfd };

int main(int argc, char **argv)
{
	int crash = argc > 1 && !strcmp(argv[1], "crash");
	unsigned long long start, end, dest = 0;
	struct kexec_segment seg;
	char line[256];
	FILE *iomem = fopen("/proc/iomem", "r");

	while (iomem && fgets(line, sizeof(line), iomem)) {
		if (sscanf(line, " %llx-%llx", &start, &end) != 2)
			continue;
		if (crash && strstr(line, "Crash kernel"))
			dest = start;
		/* Else the last top-level System RAM range, 16 MiB into it. */
		else if (!crash && line[0] != ' ' && strstr(line, "System RAM") &&
			 end - start > (32 << 20))
			dest = start + (16 << 20);
	}
	if (!dest) {
		printf("no %s range found in /proc/iomem\n", crash ? "Crash kernel" : "RAM");
		return 1;
	}
	seg = (struct kexec_segment){
		.buf = code, .bufsz = sizeof(code), .mem = (void *)dest, .memsz = sizeof(code),
	};
	if (syscall(SYS_kexec_load, dest, 1, &seg,
		    KEXEC_ARCH_DEFAULT | (crash ? KEXEC_ON_CRASH : 0))) {
		printf("kexec_load at %#llx: %m\n", dest);
		return 1;
	}
	if (crash) {
		printf("crash kernel loaded at %#llx\n", dest);
		return 0;
	}
	printf("loaded at %#llx, executing\n", dest);
	fflush(stdout);
	sync();
	syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_KEXEC, NULL);
	printf("reboot(KEXEC): %m\n");
	return 1;
}
