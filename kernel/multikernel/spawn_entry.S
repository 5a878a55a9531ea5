/* SPDX-License-Identifier: GPL-2.0 */
/*
 * multikernel_enter() - leave this kernel on this CPU for an instance kernel.
 *
 * rdi: physical address of an identity-mapping PGD that also maps this page
 *      at its kernel-text address
 * rsi: physical address of the instance kernel's boot_params
 * rdx: physical address of its 64-bit entry point
 * rcx: passed through untouched (the park loop's APIC id)
 * r8:  address of a GDT descriptor (+0) and an IDT descriptor (+16) in the
 *      instance's park area, mapped at the same address in both page tables
 * r9:  top of this CPU's stack in the park area, likewise
 *
 * Called with interrupts off, on a CPU the host has declared dead. From the
 * first instruction on, an NMI or exception is taken on the instance's own
 * tables and stack (spawn_x86.c: multikernel_park_prepare()), never on the
 * host's, which the identity map does not map. Follows the x86 64-bit boot
 * protocol: paging on with the identity map covering the kernel, boot_params
 * and command line; RSI = boot_params; IF = 0; __BOOT_DS data segments.
 */
#include <linux/linkage.h>
#include <asm/nospec-branch.h>
#include <asm/page_types.h>
#include <asm/processor-flags.h>
#include <asm/unwind_hints.h>

	.text
	.align PAGE_SIZE
SYM_CODE_START(multikernel_enter)
	/* It leaves this kernel's stack for good: nothing to unwind past here. */
	UNWIND_HINT_END_OF_STACK
	ANNOTATE_NOENDBR
	cli
	/*
	 * No CET into the new kernel; no global TLB entries past the CR3
	 * switch. CET off first: under IBT, the park IDT's handlers (no ENDBR)
	 * would fault. FRED off: with it, lidt does nothing and events go to
	 * the host's FRED entry; LASS off: the identity map is in the lower
	 * half (as relocate_kernel_64.S does).
	 */
	movq	%cr4, %rax
	movabsq	$~(X86_CR4_PGE | X86_CR4_CET | X86_CR4_LASS | X86_CR4_FRED), %r10
	andq	%r10, %rax
	movq	%rax, %cr4

	lgdt	(%r8)
	lidt	16(%r8)
	movq	%r9, %rsp
	movl	$0x18, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs

	/* This page is mapped at the same address in the identity map. */
	movq	%rdi, %cr3

	xorl	%ebp, %ebp
	xorl	%edi, %edi
	ANNOTATE_RETPOLINE_SAFE
	jmp	*%rdx
SYM_CODE_END(multikernel_enter)

/*
 * The park area's IDT points here (this page is mapped in both page tables):
 * an NMI returns to what the CPU was doing; any exception halts the CPU for
 * good (the host's kill takes it back with INIT).
 */
SYM_CODE_START(multikernel_nmi)
	UNWIND_HINT_END_OF_STACK
	ANNOTATE_NOENDBR
	iretq
SYM_CODE_END(multikernel_nmi)

SYM_CODE_START(multikernel_fault)
	UNWIND_HINT_END_OF_STACK
	ANNOTATE_NOENDBR
1:	cli
	hlt
	jmp	1b
SYM_CODE_END(multikernel_fault)

/*
 * multikernel_park - where an instance's other CPUs wait for their kernel.
 *
 * Copied into a page of the instance's memory and entered through
 * multikernel_enter() with rsi = the wakeup mailbox (physical, identity
 * mapped) and ecx = this CPU's APIC id, on the park area's tables and
 * stack. Waits, like an ACPI MP-wakeup firmware loop, for
 * { u32 command, u32 apic_id, u64 vector, u64 cr3 } naming it (struct
 * multikernel_wakeup), acknowledges by clearing command, loads cr3 unless it
 * is 0 (page tables of the instance kernel that map this page at the same
 * address), and jumps to vector in 64-bit mode. Position independent; no
 * stack.
 */
	.balign 16
SYM_CODE_START(multikernel_park)
	UNWIND_HINT_END_OF_STACK
	ANNOTATE_NOENDBR
1:	pause
	movl	(%rsi), %eax
	testl	%eax, %eax
	jz	1b
	cmpl	4(%rsi), %ecx
	jne	1b
	movq	8(%rsi), %rax
	movq	16(%rsi), %rdx
	movl	$0, (%rsi)
	testq	%rdx, %rdx
	jz	2f
	movq	%rdx, %cr3
2:	ANNOTATE_RETPOLINE_SAFE
	jmp	*%rax
SYM_INNER_LABEL(multikernel_park_end, SYM_L_GLOBAL)
SYM_CODE_END(multikernel_park)

/*
 * multikernel_park_self(record, apic_id) - in an instance kernel, a CPU it
 * takes offline waits in the park loop again (this kernel's copy of it, on
 * this kernel's page tables, polling the wakeup record through its mapping),
 * so that bringing it online again works as the first time did. Called with
 * interrupts off from play_dead; does not return. CET off: the loop jumps to
 * secondary_startup_64, which has no ENDBR.
 */
SYM_CODE_START(multikernel_park_self)
	UNWIND_HINT_END_OF_STACK
	ANNOTATE_NOENDBR
	cli
	movq	%cr4, %rax
	andq	$~X86_CR4_CET, %rax
	movq	%rax, %cr4
	movl	%esi, %ecx
	movq	%rdi, %rsi
	jmp	multikernel_park
SYM_CODE_END(multikernel_park_self)

/*
 * multikernel_ap_entry - where the park loop sends a CPU an instance kernel
 * starts (the wakeup record's vector), on that kernel's page tables (the
 * record's cr3). The park loop's stack is at the host's address for the park
 * area, which those tables do not map: take the stack lock
 * secondary_startup_64 releases once on its own stack (trampoline_lock, as
 * the real-mode trampoline does), and enter it on this kernel's AP stack.
 */
SYM_CODE_START(multikernel_ap_entry)
	UNWIND_HINT_END_OF_STACK
	ANNOTATE_NOENDBR
1:	lock btsl	$0, multikernel_ap_lock(%rip)
	jnc	2f
	pause
	jmp	1b
2:	leaq	multikernel_ap_stack_end(%rip), %rsp
	jmp	secondary_startup_64
SYM_CODE_END(multikernel_ap_entry)

	.data
	.balign 4
SYM_DATA(multikernel_ap_lock, .long 0)

	.bss
	.balign PAGE_SIZE
SYM_DATA_START_LOCAL(multikernel_ap_stack)
	.skip PAGE_SIZE
SYM_DATA_END_LABEL(multikernel_ap_stack, SYM_L_LOCAL, multikernel_ap_stack_end)
	.align PAGE_SIZE
