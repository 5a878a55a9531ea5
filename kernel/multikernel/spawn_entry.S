/* SPDX-License-Identifier: GPL-2.0 */
/*
 * multikernel_enter() - leave this kernel on this CPU for an instance kernel.
 *
 * rdi: physical address of an identity-mapping PGD that also maps this page
 *      at its kernel-text address
 * rsi: physical address of the instance kernel's boot_params
 * rdx: physical address of its 64-bit entry point
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
	.align PAGE_SIZE
