#include "textflag.h"

// func rawVfork(args *cloneArgs, size uintptr, ops *rawOp, n uintptr, report *[2]uint32) (pid uintptr, errno syscall.Errno)
//
// See vfork_linux_amd64.s.
TEXT ·rawVfork(SB),NOSPLIT|NOFRAME,$0-56
	MOVD	args+0(FP), R0
	MOVD	size+8(FP), R1
	MOVD	ops+16(FP), R19
	MOVD	n+24(FP), R20
	MOVD	report+32(FP), R21
	MOVD	$435, R8 // SYS_clone3
	SVC
	CMP	$0, R0
	BEQ	child
	CMN	$4095, R0
	BCC	ok
	NEG	R0, R0
	MOVD	ZR, pid+40(FP)
	MOVD	R0, errno+48(FP)
	RET
ok:
	MOVD	R0, pid+40(FP)
	MOVD	ZR, errno+48(FP)
	RET

child:
	MOVD	ZR, R22 // result of the previous op
	MOVD	$1, R23 // 1-based op index
loop:
	CBZ	R20, done
	MOVD	0(R19), R8
	MOVD	8(R19), R0
	MOVD	16(R19), R1
	MOVD	24(R19), R2
	MOVD	32(R19), R3
	MOVD	40(R19), R4
	MOVD	48(R19), R5
	MOVD	56(R19), R6
	TBZ	$0, R6, call
	MOVD	R22, R0
call:
	SVC
	CMN	$4095, R0
	BCC	next
	MOVD	56(R19), R6
	TBNZ	$1, R6, next // opMayFail
	NEG	R0, R0
	MOVW	R23, 0(R21)
	MOVW	R0, 4(R21)
	MOVD	$127, R0
	MOVD	$94, R8 // SYS_exit_group
	SVC
next:
	MOVD	56(R19), R6
	TBNZ	$2, R6, kept // opKeepPrev
	MOVD	R0, R22
kept:
	ADD	$64, R19
	SUB	$1, R20
	ADD	$1, R23
	B	loop
done:
	MOVD	$126, R0
	MOVD	$94, R8 // SYS_exit_group
	SVC
	B	done
