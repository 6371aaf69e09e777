#include "textflag.h"

// func pid1Text() unsafe.Pointer
//
// The address of pid1Main's machine code (pid1_linux.go copies it into the init ELF).
TEXT ·pid1Text(SB),NOSPLIT,$0-8
	MOVQ	$·pid1Main(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// pid1Main is the instance init. It is never called from Go: its bytes, up to the end
// marker, are the text of a standalone static program (see pid1ELF), so it uses only
// registers, its own stack and PC-relative jumps, and no Go symbol.
//
// Started as: init PATH ARGV0 ARGS... with every signal blocked and fds 3 (status pipe,
// write end) and 4-6 (held for the runtime) open. It makes itself non-dumpable (the
// program runs as the same uid, and must neither ptrace it nor take its files). It forks; the child makes its own
// process group, marks fds 3-6 close-on-exec, unblocks signals and execs PATH with
// ARGV0 ARGS... (on failure it writes errno to a close-on-exec pipe and exits 127).
// The parent learns from that pipe whether the exec worked and writes {3, pid} or
// {2, errno} to fd 3. Then it waits for signals: SIGCHLD reaps every exited child; any
// other signal is forwarded to the program's process group (or the program when that
// group is gone). When the program has been reaped, the parent writes {1, wait status}
// to fd 3 and exits with the program's exit code, or 128+signal.
TEXT ·pid1Main(SB),NOSPLIT|NOFRAME,$0
	MOVQ	0(SP), R12 // argc
	CMPQ	R12, $3
	JGE	argsok
	MOVQ	$125, DI
	MOVQ	$231, AX // exit_group
	SYSCALL
argsok:
	LEAQ	8(SP), R13 // argv
	LEAQ	16(SP)(R12*8), R14 // envp
	SUBQ	$256, SP
	ANDQ	$~15, SP
	// 0(SP): every signal; 8(SP): no signal; 16(SP): wait status; 24(SP): record;
	// 32(SP): comm name; 40(SP): exec errno; 48(SP): exec pipe; 64(SP): siginfo.
	MOVQ	$-1, 0(SP)
	MOVQ	$0, 8(SP)
	MOVQ	$0x74696e69, AX // "init"
	MOVQ	AX, 32(SP)
	MOVQ	$157, AX // prctl(PR_SET_NAME, "init")
	MOVQ	$15, DI
	LEAQ	32(SP), SI
	SYSCALL
	MOVQ	$157, AX // prctl(PR_SET_DUMPABLE, 0): the program (same uid) cannot ptrace
	MOVQ	$4, DI   // the init or take its files (the program is dumpable again after its exec)
	XORQ	SI, SI
	SYSCALL
	MOVQ	$14, AX // rt_sigprocmask(SIG_SETMASK, all)
	MOVQ	$2, DI
	LEAQ	0(SP), SI
	XORQ	DX, DX
	MOVQ	$8, R10
	SYSCALL
	MOVQ	$-1, 48(SP)
	MOVQ	$293, AX // pipe2(48(SP), O_CLOEXEC)
	LEAQ	48(SP), DI
	MOVQ	$0x80000, SI
	SYSCALL
	MOVQ	$56, AX // clone(SIGCHLD): fork
	MOVQ	$17, DI
	XORQ	SI, SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	SYSCALL
	TESTQ	AX, AX
	JEQ	child
	JGT	forked
	MOVQ	$126, DI // fork failed
	MOVQ	$231, AX
	SYSCALL
forked:
	MOVQ	AX, R15 // the program's pid
	MOVL	52(SP), DI // close the exec pipe's write end
	MOVQ	$3, AX
	SYSCALL
	MOVL	$0, 40(SP)
	MOVL	48(SP), DI // read(exec pipe, 40(SP), 4): EOF once the program is exec'd
	LEAQ	40(SP), SI
	MOVQ	$4, DX
	XORQ	AX, AX
	SYSCALL
	MOVQ	AX, BX
	MOVL	48(SP), DI
	MOVQ	$3, AX
	SYSCALL
	MOVL	$3, 24(SP) // {3, pid}: started
	MOVL	R15, 28(SP)
	CMPQ	BX, $4
	JNE	report
	MOVL	$2, 24(SP) // {2, errno}: exec failed
	MOVL	40(SP), AX
	MOVL	AX, 28(SP)
report:
	MOVQ	$1, AX // write(3, record, 8)
	MOVQ	$3, DI
	LEAQ	24(SP), SI
	MOVQ	$8, DX
	SYSCALL
wait:
	MOVQ	$128, AX // rt_sigtimedwait(all, &info, NULL)
	LEAQ	0(SP), DI
	LEAQ	64(SP), SI
	XORQ	DX, DX
	MOVQ	$8, R10
	SYSCALL
	CMPQ	AX, $17 // SIGCHLD
	JEQ	reap
	CMPQ	AX, $0
	JLE	wait // EINTR and the like
	MOVQ	AX, BX
	MOVQ	R15, DI // kill(-pgid, sig)
	NEGQ	DI
	MOVQ	BX, SI
	MOVQ	$62, AX
	SYSCALL
	TESTQ	AX, AX
	JEQ	wait
	MOVQ	R15, DI // kill(pid, sig)
	MOVQ	BX, SI
	MOVQ	$62, AX
	SYSCALL
	JMP	wait
reap:
	MOVQ	$61, AX // wait4(-1, &status, WNOHANG, NULL)
	MOVQ	$-1, DI
	LEAQ	16(SP), SI
	MOVQ	$1, DX
	XORQ	R10, R10
	SYSCALL
	CMPQ	AX, $0
	JLE	wait // nothing more now (0) or no children
	CMPQ	AX, R15
	JNE	reap
	MOVL	16(SP), BX
	MOVL	$1, 24(SP)
	MOVL	BX, 28(SP)
	MOVQ	$1, AX // write(3, {1, status}, 8)
	MOVQ	$3, DI
	LEAQ	24(SP), SI
	MOVQ	$8, DX
	SYSCALL
	MOVQ	BX, DI
	ANDQ	$0x7f, DI
	JEQ	exited
	ADDQ	$128, DI
	JMP	exit
exited:
	MOVQ	BX, DI
	SHRQ	$8, DI
	ANDQ	$0xff, DI
exit:
	MOVQ	$231, AX
	SYSCALL

child:
	MOVQ	$109, AX // setpgid(0, 0)
	XORQ	DI, DI
	XORQ	SI, SI
	SYSCALL
	MOVQ	$3, BX
cloexec:
	MOVQ	$72, AX // fcntl(fd, F_SETFD, FD_CLOEXEC)
	MOVQ	BX, DI
	MOVQ	$2, SI
	MOVQ	$1, DX
	SYSCALL
	INCQ	BX
	CMPQ	BX, $7
	JLT	cloexec
	MOVQ	$14, AX // rt_sigprocmask(SIG_SETMASK, none)
	MOVQ	$2, DI
	LEAQ	8(SP), SI
	XORQ	DX, DX
	MOVQ	$8, R10
	SYSCALL
	MOVQ	$59, AX // execve(argv[1], argv+2, envp)
	MOVQ	8(R13), DI
	LEAQ	16(R13), SI
	MOVQ	R14, DX
	SYSCALL
	NEGQ	AX
	MOVL	AX, 40(SP)
	MOVQ	$1, AX // write(exec pipe, errno, 4)
	MOVL	52(SP), DI
	LEAQ	40(SP), SI
	MOVQ	$4, DX
	SYSCALL
	MOVQ	$127, DI
	MOVQ	$231, AX
	SYSCALL
	// End marker "pid1end!" (pid1ELF copies the code before it).
	QUAD	$0x21646e6531646970
