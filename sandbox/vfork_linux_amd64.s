#include "textflag.h"

// func rawVfork(args *cloneArgs, size uintptr, ops *rawOp, n uintptr, report *[2]uint32) (pid uintptr, errno syscall.Errno)
//
// clone3 with CLONE_VM. The child shares the parent's memory and stack, so it touches
// neither: it runs the ops from registers and the ops array only, writes a failure into
// *report and exits; or its last op execs. The parent returns at once and learns of the
// exec from a close-on-exec pipe (launchRaw).
TEXT ·rawVfork(SB),NOSPLIT|NOFRAME,$0-56
	MOVQ	args+0(FP), DI
	MOVQ	size+8(FP), SI
	MOVQ	ops+16(FP), R12
	MOVQ	n+24(FP), R13
	MOVQ	report+32(FP), R14
	MOVQ	$435, AX // SYS_clone3
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	NEGQ	AX
	MOVQ	$0, pid+40(FP)
	MOVQ	AX, errno+48(FP)
	RET
ok:
	MOVQ	AX, pid+40(FP)
	MOVQ	$0, errno+48(FP)
	RET

child:
	XORQ	BX, BX // result of the previous op
	MOVQ	$1, R15 // 1-based op index
loop:
	TESTQ	R13, R13
	JEQ	done
	MOVQ	0(R12), AX
	MOVQ	8(R12), DI
	MOVQ	16(R12), SI
	MOVQ	24(R12), DX
	MOVQ	32(R12), R10
	MOVQ	40(R12), R8
	MOVQ	48(R12), R9
	MOVQ	56(R12), CX
	TESTQ	$1, CX
	JEQ	call
	MOVQ	BX, DI
call:
	SYSCALL
	CMPQ	AX, $0xfffffffffffff001
	JLS	next
	MOVQ	56(R12), CX
	TESTQ	$2, CX // opMayFail
	JNE	next
	NEGQ	AX
	MOVL	R15, 0(R14)
	MOVL	AX, 4(R14)
	MOVQ	$127, DI
	MOVQ	$231, AX // SYS_exit_group
	SYSCALL
next:
	MOVQ	56(R12), CX // SYSCALL clobbered CX
	TESTQ	$4, CX // opKeepPrev
	JNE	kept
	MOVQ	AX, BX
kept:
	ADDQ	$64, R12
	DECQ	R13
	INCQ	R15
	JMP	loop
done:
	MOVQ	$126, DI
	MOVQ	$231, AX // SYS_exit_group
	SYSCALL
	JMP	done
