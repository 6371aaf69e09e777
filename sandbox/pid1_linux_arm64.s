#include "textflag.h"

// func pid1Text() unsafe.Pointer
TEXT ·pid1Text(SB),NOSPLIT,$0-8
	MOVD	$·pid1Main(SB), R0
	MOVD	R0, ret+0(FP)
	RET

// pid1Main is the instance init; see pid1_linux_amd64.s for what it does. Registers:
// R19 argc, R20 argv, R21 envp, R22 scratch area, R23 the program's pid.
TEXT ·pid1Main(SB),NOSPLIT|NOFRAME,$0
	MOVD	0(RSP), R19
	CMP	$3, R19
	BGE	argsok
	MOVD	$125, R0
	MOVD	$94, R8 // exit_group
	SVC
argsok:
	ADD	$8, RSP, R20
	ADD	$2, R19, R9
	LSL	$3, R9, R9
	ADD	R9, RSP, R21
	SUB	$256, RSP
	MOVD	RSP, R22
	// 0(R22): every signal; 8: no signal; 16: wait status; 24: record; 32: comm name;
	// 40: exec errno; 48: exec pipe; 64: siginfo (128 bytes).
	MOVD	$-1, R9
	MOVD	R9, 0(R22)
	MOVD	ZR, 8(R22)
	MOVD	$0x74696e69, R9 // "init"
	MOVD	R9, 32(R22)
	MOVD	$15, R0 // prctl(PR_SET_NAME, "init")
	ADD	$32, R22, R1
	MOVD	$167, R8
	SVC
	MOVD	$4, R0 // prctl(PR_SET_DUMPABLE, 0)
	MOVD	ZR, R1
	MOVD	$167, R8
	SVC
	MOVD	$2, R0 // rt_sigprocmask(SIG_SETMASK, all)
	MOVD	R22, R1
	MOVD	ZR, R2
	MOVD	$8, R3
	MOVD	$135, R8
	SVC
	MOVD	$-1, R9
	MOVD	R9, 48(R22)
	ADD	$48, R22, R0 // pipe2(48(R22), O_CLOEXEC)
	MOVD	$0x80000, R1
	MOVD	$59, R8
	SVC
	MOVD	$17, R0 // clone(SIGCHLD): fork
	MOVD	ZR, R1
	MOVD	ZR, R2
	MOVD	ZR, R3
	MOVD	ZR, R4
	MOVD	$220, R8
	SVC
	CBZ	R0, child
	CMP	$0, R0
	BGT	forked
	MOVD	$126, R0 // fork failed
	MOVD	$94, R8
	SVC
forked:
	MOVD	R0, R23
	MOVWU	52(R22), R0 // close the exec pipe's write end
	MOVD	$57, R8
	SVC
	MOVW	ZR, 40(R22)
	MOVWU	48(R22), R0 // read(exec pipe, 40(R22), 4): EOF once the program is exec'd
	ADD	$40, R22, R1
	MOVD	$4, R2
	MOVD	$63, R8
	SVC
	MOVD	R0, R24
	MOVWU	48(R22), R0
	MOVD	$57, R8
	SVC
	MOVD	$3, R9 // {3, pid}: started
	MOVW	R9, 24(R22)
	MOVW	R23, 28(R22)
	CMP	$4, R24
	BNE	report
	MOVD	$2, R9 // {2, errno}: exec failed
	MOVW	R9, 24(R22)
	MOVWU	40(R22), R9
	MOVW	R9, 28(R22)
report:
	MOVD	$3, R0 // write(3, record, 8)
	ADD	$24, R22, R1
	MOVD	$8, R2
	MOVD	$64, R8
	SVC
wait:
	MOVD	R22, R0 // rt_sigtimedwait(all, &info, NULL)
	ADD	$64, R22, R1
	MOVD	ZR, R2
	MOVD	$8, R3
	MOVD	$137, R8
	SVC
	CMP	$17, R0 // SIGCHLD
	BEQ	reap
	CMP	$0, R0
	BLE	wait
	MOVD	R0, R24
	NEG	R23, R0 // kill(-pgid, sig)
	MOVD	R24, R1
	MOVD	$129, R8
	SVC
	CBZ	R0, wait
	MOVD	R23, R0 // kill(pid, sig)
	MOVD	R24, R1
	MOVD	$129, R8
	SVC
	B	wait
reap:
	MOVD	$-1, R0 // wait4(-1, &status, WNOHANG, NULL)
	ADD	$16, R22, R1
	MOVD	$1, R2
	MOVD	ZR, R3
	MOVD	$260, R8
	SVC
	CMP	$0, R0
	BLE	wait
	CMP	R23, R0
	BNE	reap
	MOVWU	16(R22), R24
	MOVD	$1, R9
	MOVW	R9, 24(R22)
	MOVW	R24, 28(R22)
	MOVD	$3, R0 // write(3, {1, status}, 8)
	ADD	$24, R22, R1
	MOVD	$8, R2
	MOVD	$64, R8
	SVC
	AND	$0x7f, R24, R0
	CBZ	R0, exited
	ADD	$128, R0
	B	exit
exited:
	LSR	$8, R24, R0
	AND	$0xff, R0
exit:
	MOVD	$94, R8
	SVC

child:
	MOVD	ZR, R0 // setpgid(0, 0)
	MOVD	ZR, R1
	MOVD	$154, R8
	SVC
	MOVD	$3, R24
cloexec:
	MOVD	R24, R0 // fcntl(fd, F_SETFD, FD_CLOEXEC)
	MOVD	$2, R1
	MOVD	$1, R2
	MOVD	$25, R8
	SVC
	ADD	$1, R24
	CMP	$7, R24
	BLT	cloexec
	MOVD	$2, R0 // rt_sigprocmask(SIG_SETMASK, none)
	ADD	$8, R22, R1
	MOVD	ZR, R2
	MOVD	$8, R3
	MOVD	$135, R8
	SVC
	MOVD	8(R20), R0 // execve(argv[1], argv+2, envp)
	ADD	$16, R20, R1
	MOVD	R21, R2
	MOVD	$221, R8
	SVC
	NEG	R0, R0
	MOVW	R0, 40(R22)
	MOVWU	52(R22), R0 // write(exec pipe, errno, 4)
	ADD	$40, R22, R1
	MOVD	$4, R2
	MOVD	$64, R8
	SVC
	MOVD	$127, R0
	MOVD	$94, R8
	SVC
	// End marker "pid1end!".
	DWORD	$0x21646e6531646970
