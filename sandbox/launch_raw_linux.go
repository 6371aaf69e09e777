//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)

package sandbox

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The raw launcher: clone3 into the new namespaces, then the child executes a list of
// system calls prepared by the parent (see buildChild) and execs the instance init
// (pid1_linux.go), which starts the program. No second Go runtime starts, so
// a launch costs a fork, the mounts and the program's exec. The child runs only
// nosplit code over memory prepared before the fork, like syscall.forkAndExecInChild.
const haveRawLaunch = true

type cloneArgs struct {
	flags, pidFD, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize, cgroup uint64
}

// launchRaw starts the instance; it returns once the instance init is exec'd. stdio
// are the init's files (pid1NumFDs: the program's stdio, the status pipe and the pipe
// ends the init holds), in fd order.
//
// The child shares the parent's memory (CLONE_VM, where the assembly launcher exists)
// but not its stack use: the parent goes on while the child runs, so that with a user
// namespace it can write the child's uid/gid maps when the child asks. The child's copy
// of execW closes at its execve; EOF on execR without a failure report means the init
// runs.
func launchRaw(c *initConfig, hostDirs map[string]string, v1Procs []string, cgroupFD int, stdio []*os.File) (pid, pidfd int, err error) {
	// Every descriptor the child uses must lie above the ones its dup3s fill.
	low := len(stdio)
	fds := make([]int, len(stdio))
	for i, f := range stdio {
		fd, closeFD, err := fdAbove(int(f.Fd()), low)
		if err != nil {
			return 0, 0, err
		}
		defer closeFD()
		fds[i] = fd
	}
	initFD, closeInit, err := fdAbove(c.InitFD, low)
	if err != nil {
		return 0, 0, err
	}
	defer closeInit()
	if c.NetNS >= 0 {
		nfd, closeNet, err := fdAbove(c.NetNS, low)
		if err != nil {
			return 0, 0, err
		}
		defer closeNet()
		cc := *c
		cc.NetNS = nfd
		c = &cc
	}
	var procFDs []int
	for _, f := range v1Procs {
		fd, err := unix.Open(f, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, 0, fmt.Errorf("open %s: %w", f, err)
		}
		if fd < low {
			nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, low)
			unix.Close(fd)
			if err != nil {
				return 0, 0, err
			}
			fd = nfd
		}
		defer unix.Close(fd)
		procFDs = append(procFDs, fd)
	}
	execR, execW, err := pipeAbove(low)
	if err != nil {
		return 0, 0, err
	}
	defer execR.Close()
	defer execW.Close()
	goR, goW, err := pipeAbove(low)
	if err != nil {
		return 0, 0, err
	}
	defer goR.Close()
	defer goW.Close()
	// The failure report: shared with the child in both launch modes.
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0, 0, fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(mem)
	report := (*[2]uint32)(unsafe.Pointer(&mem[0]))
	prog := buildChild(c, procFDs, fds, hostDirs, childSync{notify: int(execW.Fd()), wait: int(goR.Fd())}, initFD)
	pfd := int32(-1)
	args := &cloneArgs{
		flags:      unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_PIDFD,
		pidFD:      uint64(uintptr(unsafe.Pointer(&pfd))),
		exitSignal: uint64(unix.SIGCHLD),
	}
	if c.Loopback && !c.UserNS {
		args.flags |= unix.CLONE_NEWNET // else unshared with the user namespace
	}
	if cgroupFD >= 0 {
		args.flags |= unix.CLONE_INTO_CGROUP
		args.cgroup = uint64(cgroupFD)
	}
	var p uintptr
	var e syscall.Errno
	syscall.ForkLock.Lock()
	runtime.LockOSThread()
	var all, old uint64 = ^uint64(0), 0
	unix.RawSyscallNoError(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)))
	if haveVfork {
		// Shared memory: no page tables are copied.
		args.flags |= unix.CLONE_VM
		p, e = rawVfork(args, unsafe.Sizeof(*args), &prog.ops[0], uintptr(len(prog.ops)), report)
	} else {
		p, e = rawFork(args, prog.ops, report)
	}
	unix.RawSyscallNoError(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0)
	runtime.UnlockOSThread()
	syscall.ForkLock.Unlock()
	if e != 0 {
		return 0, 0, fmt.Errorf("clone3: %w", e)
	}
	pid = int(p)
	execW.Close()
	goR.Close()
	abort := func(err error) (int, int, error) {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		unix.Close(int(pfd))
		return 0, 0, err
	}
	var b [1]byte
	if c.UserNS {
		if n, _ := io.ReadFull(execR, b[:]); n == 1 {
			if err := writeIDMaps(pid, c.HostUID); err != nil {
				return abort(err)
			}
			if _, err := goW.Write(b[:]); err != nil {
				return abort(fmt.Errorf("release child: %w", err))
			}
		}
	}
	io.Copy(io.Discard, execR) // until the child execs or exits
	runtime.KeepAlive(prog)
	runtime.KeepAlive(args)
	if report[0] != 0 {
		what := "?"
		if i := int(report[0]) - 1; i < len(prog.desc) {
			what = prog.desc[i]
		}
		return abort(opError(what, syscall.Errno(report[1])))
	}
	return pid, int(pfd), nil
}

// rawFork clones (a full fork: no shared memory) with all signals blocked; the child
// runs childMain and never returns. Used where no vfork assembly exists.
//
//go:nosplit
//go:norace
func rawFork(args *cloneArgs, ops []rawOp, report *[2]uint32) (uintptr, syscall.Errno) {
	pid, _, e := syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(args)), unsafe.Sizeof(*args), 0)
	if e == 0 && pid == 0 {
		childMain(ops, report)
	}
	return pid, e
}

// childMain runs the prepared system calls; on failure it records (op index + 1, errno)
// in report (shared memory) and exits 127.
//
//go:nosplit
//go:norace
func childMain(ops []rawOp, report *[2]uint32) {
	var prev uintptr
	for i := 0; i < len(ops); i++ {
		op := &ops[i]
		a := op.a
		if op.flags&opPrevA0 != 0 {
			a[0] = prev
		}
		r, _, e := syscall.RawSyscall6(op.nr, a[0], a[1], a[2], a[3], a[4], a[5])
		if e != 0 && op.flags&opMayFail == 0 {
			report[0], report[1] = uint32(i)+1, uint32(e)
			syscall.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
		}
		if op.flags&opKeepPrev == 0 {
			prev = r
		}
	}
	syscall.RawSyscall(unix.SYS_EXIT_GROUP, 126, 0, 0)
}

// fdAbove returns fd, or a close-on-exec duplicate of it >= low when fd < low (it would
// be clobbered by the child's dup3 of the init's files).
func fdAbove(fd, low int) (int, func(), error) {
	if fd >= low {
		return fd, func() {}, nil
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, low)
	if err != nil {
		return 0, nil, err
	}
	return nfd, func() { unix.Close(nfd) }, nil
}

// pipeAbove is os.Pipe with both descriptors >= low (see fdAbove).
func pipeAbove(low int) (*os.File, *os.File, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("pipe: %w", err)
	}
	for i, fd := range fds {
		if fd < low {
			nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, low)
			unix.Close(fd)
			if err != nil {
				unix.Close(fds[1-i])
				return nil, nil, err
			}
			fds[i] = nfd
		}
	}
	return os.NewFile(uintptr(fds[0]), "pipe"), os.NewFile(uintptr(fds[1]), "pipe"), nil
}

// writeIDMaps maps uids and gids 0..65535 of pid's user namespace to hostUID.. .
func writeIDMaps(pid, hostUID int) error {
	m := []byte(fmt.Sprintf("0 %d %d\n", hostUID, userNSSize))
	for _, f := range []string{"uid_map", "gid_map"} {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/%s", pid, f), m, 0); err != nil {
			return fmt.Errorf("write %s: %w", f, err)
		}
	}
	return nil
}
