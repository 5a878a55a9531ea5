/* SPDX-License-Identifier: GPL-2.0 */
/*
 * multikernel_enter() - leave this kernel on this CPU for an instance kernel.
 *
 * rdi: physical address of an identity-mapping PGD that also maps this page
 *      at its kernel-text address
 * rsi: physical address of the instance kernel's boot_params
 * rdx: physical address of its 64-bit entry point
 * rcx: passed through untouched (the park loop's APIC id)
 *
 * Called with interrupts off, on a CPU the host has declared dead. Follows
 * the x86 64-bit boot protocol: paging on with the identity map covering the
 * kernel, boot_params and command line; RSI = boot_params; IF = 0.
 */
#include <linux/linkage.h>
#include <asm/nospec-branch.h>
#include <asm/page_types.h>
#include <asm/processor-flags.h>

	.text
	.align PAGE_SIZE
SYM_FUNC_START(multikernel_enter)
	ANNOTATE_NOENDBR
	cli
	/* No CET into the new kernel; no global TLB entries past the CR3 switch. */
	movq	%cr4, %rax
	andq	$~(X86_CR4_PGE | X86_CR4_CET), %rax
	movq	%rax, %cr4

	/* This page is mapped at the same address in the identity map. */
	movq	%rdi, %cr3

	/* Null data segments are fine in long mode; the new kernel loads its GDT. */
	xorl	%eax, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs

	xorl	%ebp, %ebp
	xorl	%edi, %edi
	ANNOTATE_RETPOLINE_SAFE
	jmp	*%rdx
SYM_FUNC_END(multikernel_enter)

/*
 * multikernel_park - where an instance's other CPUs wait for their kernel.
 *
 * Copied into a page of the instance's memory and entered through
 * multikernel_enter() with rsi = the wakeup mailbox (physical, identity
 * mapped) and ecx = this CPU's APIC id. Waits, like an ACPI MP-wakeup
 * firmware loop, for { u32 command, u32 apic_id, u64 vector } naming it,
 * acknowledges by clearing command, and jumps to vector in 64-bit mode on
 * the same identity map. Position independent; no stack.
 */
	.balign 16
SYM_CODE_START(multikernel_park)
	ANNOTATE_NOENDBR
1:	pause
	movl	(%rsi), %eax
	testl	%eax, %eax
	jz	1b
	cmpl	4(%rsi), %ecx
	jne	1b
	movq	8(%rsi), %rax
	movl	$0, (%rsi)
	ANNOTATE_RETPOLINE_SAFE
	jmp	*%rax
SYM_CODE_END(multikernel_park)
SYM_DATA(multikernel_park_end, .byte 0)
	.align PAGE_SIZE
