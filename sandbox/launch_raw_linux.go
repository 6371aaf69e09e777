//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)

package sandbox

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The raw launcher: clone3 into the new namespaces, then the child executes a list of
// system calls prepared by the parent (cgroup join, mounts, pivot_root, hostname,
// credentials, no_new_privs) and execve's the program. No second Go runtime starts, so
// a launch costs a fork, the mounts and the program's exec. The child runs only
// nosplit code over memory prepared before the fork, like syscall.forkAndExecInChild.
const haveRawLaunch = true

// rawOp is one system call of the child program. The layout is shared with the
// assembly in vfork_*.s: 8 words.
type rawOp struct {
	nr    uintptr
	a     [6]uintptr
	flags uintptr // opPrevA0, opMayFail
}

const (
	opPrevA0  = 1 // a[0] = result of the previous op
	opMayFail = 2 // an error is ignored
)

type childProg struct {
	ops  []rawOp
	desc []string
	keep []any // keeps the memory the ops point to alive
}

func (p *childProg) add(desc string, nr uintptr, args ...uintptr) *rawOp {
	op := rawOp{nr: nr}
	copy(op.a[:], args)
	p.ops = append(p.ops, op)
	p.desc = append(p.desc, desc)
	return &p.ops[len(p.ops)-1]
}

func (p *childProg) str(s string) uintptr {
	b, err := unix.BytePtrFromString(s)
	if err != nil {
		panic(err) // paths are validated before
	}
	p.keep = append(p.keep, b)
	return uintptr(unsafe.Pointer(b))
}

func (p *childProg) mount(src, dst, fstype string, flags uintptr, data string) {
	var s, f, d uintptr
	if src != "" {
		s = p.str(src)
	}
	if fstype != "" {
		f = p.str(fstype)
	}
	if data != "" {
		d = p.str(data)
	}
	p.add("mount "+dst, unix.SYS_MOUNT, s, p.str(dst), f, flags, d)
}

func (p *childProg) mkdir(path string, mode uintptr) {
	p.add("mkdir "+path, unix.SYS_MKDIRAT, atFDCWD, p.str(path), mode)
}

const atFDCWD = ^uintptr(99) // AT_FDCWD (-100)

// buildChild prepares the child's system calls from the init configuration.
func buildChild(c *initConfig, v1Procs []int, stdio []int, hostDirs map[string]string) *childProg {
	p := &childProg{}
	for i, fd := range stdio {
		p.add("dup3", unix.SYS_DUP3, uintptr(fd), uintptr(i), 0)
	}
	p.add("setsid", unix.SYS_SETSID)
	p.add("umask", unix.SYS_UMASK, 0)
	zero := []byte("0")
	p.keep = append(p.keep, zero)
	for _, fd := range v1Procs { // cgroup.procs files opened by the parent
		p.add("join cgroup", unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&zero[0])), 1)
	}
	r := c.Root
	p.mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
	p.mount("tmpfs", r, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=64k")
	for _, d := range c.SystemDirs {
		link, ok := hostDirs[d]
		if !ok {
			continue
		}
		t := filepath.Join(r, d)
		if link != "" {
			p.add("symlink "+d, unix.SYS_SYMLINKAT, p.str(link), atFDCWD, p.str(t))
			continue
		}
		p.mkdir(t, 0o755)
		p.mount(d, t, "", unix.MS_BIND|unix.MS_REC, "")
		p.mount("", t, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
	}
	app := filepath.Join(r, "app")
	p.mkdir(app, 0o755)
	if c.Code != "" {
		p.mount("overlay", app, "overlay", unix.MS_NOSUID|unix.MS_NODEV, "lowerdir="+c.Code+",upperdir="+c.Upper+",workdir="+c.Work)
	} else {
		p.mount(c.Upper, app, "", unix.MS_BIND, "")
	}
	tmp := filepath.Join(r, "tmp")
	p.mkdir(tmp, 0o755)
	p.mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=1777,size=%dm", c.TmpMB))
	dev := filepath.Join(r, "dev")
	p.mkdir(dev, 0o755)
	p.mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=64k")
	for _, n := range devNodes {
		p.add("mknod "+n.name, unix.SYS_MKNODAT, atFDCWD, p.str(filepath.Join(dev, n.name)), unix.S_IFCHR|0o666, uintptr(unix.Mkdev(n.major, n.minor)))
	}
	for _, l := range devLinks {
		p.add("symlink /dev/"+l[0], unix.SYS_SYMLINKAT, p.str(l[1]), atFDCWD, p.str(filepath.Join(dev, l[0])))
	}
	shm := filepath.Join(dev, "shm")
	p.mkdir(shm, 0o1777)
	p.mount("tmpfs", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=16m")
	proc := filepath.Join(r, "proc")
	p.mkdir(proc, 0o755)
	p.mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	old := filepath.Join(r, ".old")
	p.mkdir(old, 0o700)
	p.add("pivot_root", unix.SYS_PIVOT_ROOT, p.str(r), p.str(old))
	p.add("chdir /", unix.SYS_CHDIR, p.str("/"))
	p.add("detach old root", unix.SYS_UMOUNT2, p.str("/.old"), unix.MNT_DETACH)
	p.add("rmdir /.old", unix.SYS_UNLINKAT, atFDCWD, p.str("/.old"), unix.AT_REMOVEDIR)
	p.mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
	host := []byte(c.Hostname)
	p.keep = append(p.keep, host)
	p.add("sethostname", unix.SYS_SETHOSTNAME, uintptr(unsafe.Pointer(&host[0])), uintptr(len(host)))
	if c.Loopback {
		ifr, _ := unix.NewIfreq("lo")
		ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
		p.keep = append(p.keep, ifr)
		p.add("socket", unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		op := p.add("loopback up", unix.SYS_IOCTL, 0, unix.SIOCSIFFLAGS, uintptr(unsafe.Pointer(ifr)))
		op.flags = opPrevA0
	}
	p.add("chdir /app", unix.SYS_CHDIR, p.str(appDir))
	p.add("umask", unix.SYS_UMASK, 0o022)
	p.add("setgroups", unix.SYS_SETGROUPS, 0, 0)
	p.add("setresgid", unix.SYS_SETRESGID, uintptr(c.GID), uintptr(c.GID), uintptr(c.GID))
	p.add("setresuid", unix.SYS_SETRESUID, uintptr(c.UID), uintptr(c.UID), uintptr(c.UID))
	p.add("no_new_privs", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	// Reset the supervisor's (Go runtime's) signal handlers before unblocking: with
	// vfork the child shares the parent's memory, and no Go handler may run in it.
	dfl := new([4]uint64)
	p.keep = append(p.keep, dfl)
	for sig := uintptr(1); sig <= 64; sig++ {
		if sig == uintptr(unix.SIGKILL) || sig == uintptr(unix.SIGSTOP) {
			continue
		}
		op := p.add("reset signal", unix.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(dfl)), 0, 8)
		if sig == 32 || sig == 33 { // may be reserved
			op.flags |= opMayFail
		}
	}
	// >>> pid1: exec the instance init (pid1_raw_linux.go), which execs the program.
	if c.InitFD >= 0 {
		p.execInit(c)
		return p
	}
	// <<< pid1
	empty := new(uint64)
	p.keep = append(p.keep, empty)
	p.add("unblock signals", unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(empty)), 0, 8)
	argv, _ := syscall.SlicePtrFromStrings(c.Argv)
	envv, _ := syscall.SlicePtrFromStrings(c.Env)
	p.keep = append(p.keep, argv, envv)
	p.add("exec "+c.Path, unix.SYS_EXECVE, p.str(c.Path), uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])))
	return p
}

var devNodes = []struct {
	name         string
	major, minor uint32
}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}

var devLinks = [][2]string{{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}}

type cloneArgs struct {
	flags, pidFD, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize, cgroup uint64
}

// rawFork clones (a full fork: no shared memory) with all signals blocked; the child
// runs childMain and never returns. Used where no vfork assembly exists.
//
//go:nosplit
//go:norace
func rawFork(args *cloneArgs, ops []rawOp, report *[2]uint32, errFD uintptr) (uintptr, syscall.Errno) {
	pid, _, e := syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(args)), unsafe.Sizeof(*args), 0)
	if e == 0 && pid == 0 {
		childMain(ops, report, errFD)
	}
	return pid, e
}

// childMain runs the prepared system calls; on failure it reports (op index, errno)
// in report and on errFD, and exits 127.
//
//go:nosplit
//go:norace
func childMain(ops []rawOp, report *[2]uint32, errFD uintptr) {
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
			syscall.RawSyscall(unix.SYS_WRITE, errFD, uintptr(unsafe.Pointer(report)), 8)
			syscall.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
		}
		prev = r
	}
	syscall.RawSyscall(unix.SYS_EXIT_GROUP, 126, 0, 0)
}

// hostSystemDirs lists the system directories that exist: dir -> symlink target ("" for
// a directory).
func hostSystemDirs(dirs []string) map[string]string {
	m := map[string]string{}
	for _, d := range dirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if l, err := os.Readlink(d); err == nil {
				m[d] = l
			}
		case fi.IsDir():
			m[d] = ""
		}
	}
	return m
}

// launchRaw starts the instance; it returns once the program is exec'd.
func launchRaw(c *initConfig, hostDirs map[string]string, v1Procs []string, cgroupFD int, newNet bool, stdio []*os.File) (pid, pidfd int, err error) {
	fds := make([]int, len(stdio))
	for i, f := range stdio {
		fds[i] = int(f.Fd())
		if fds[i] < len(stdio) { // would be clobbered by the dup3 of a lower one
			nfd, err := unix.FcntlInt(uintptr(fds[i]), unix.F_DUPFD_CLOEXEC, len(stdio))
			if err != nil {
				return 0, 0, err
			}
			defer unix.Close(nfd)
			fds[i] = nfd
		}
	}
	var procFDs []int
	for _, f := range v1Procs {
		fd, err := unix.Open(f, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, 0, fmt.Errorf("open %s: %w", f, err)
		}
		defer unix.Close(fd)
		procFDs = append(procFDs, fd)
	}
	prog := buildChild(c, procFDs, fds, hostDirs)
	pfd := int32(-1)
	args := &cloneArgs{
		flags:      unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_PIDFD,
		pidFD:      uint64(uintptr(unsafe.Pointer(&pfd))),
		exitSignal: uint64(unix.SIGCHLD),
	}
	if newNet {
		args.flags |= unix.CLONE_NEWNET
	}
	if cgroupFD >= 0 {
		args.flags |= unix.CLONE_INTO_CGROUP
		args.cgroup = uint64(cgroupFD)
	}
	report := new([2]uint32)
	var p uintptr
	var e syscall.Errno
	if haveVfork {
		// Shared memory, parent suspended until the child execs or exits: no page
		// tables are copied and the report needs no pipe.
		args.flags |= unix.CLONE_VM | unix.CLONE_VFORK
		syscall.ForkLock.Lock()
		runtime.LockOSThread()
		var all, old uint64 = ^uint64(0), 0
		unix.RawSyscallNoError(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)))
		p, e = rawVfork(args, unsafe.Sizeof(*args), &prog.ops[0], uintptr(len(prog.ops)), report)
		unix.RawSyscallNoError(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0)
		runtime.UnlockOSThread()
		syscall.ForkLock.Unlock()
	} else {
		errR, errW, err := os.Pipe()
		if err != nil {
			return 0, 0, err
		}
		syscall.ForkLock.Lock()
		runtime.LockOSThread()
		var all, old uint64 = ^uint64(0), 0
		unix.RawSyscallNoError(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)))
		p, e = rawFork(args, prog.ops, report, errW.Fd())
		unix.RawSyscallNoError(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0)
		runtime.UnlockOSThread()
		syscall.ForkLock.Unlock()
		errW.Close()
		if e == 0 {
			var b [8]byte
			if n, _ := io.ReadFull(errR, b[:]); n == 8 {
				report[0], report[1] = binary.NativeEndian.Uint32(b[:4]), binary.NativeEndian.Uint32(b[4:])
			}
		}
		errR.Close()
	}
	runtime.KeepAlive(prog)
	runtime.KeepAlive(stdio)
	runtime.KeepAlive(args)
	if e != 0 {
		return 0, 0, fmt.Errorf("clone3: %w", e)
	}
	pid = int(p)
	if report[0] != 0 {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		unix.Close(int(pfd))
		what := "?"
		if i := int(report[0]) - 1; i < len(prog.desc) {
			what = prog.desc[i]
		}
		return 0, 0, fmt.Errorf("instance setup: %s: %w", what, syscall.Errno(report[1]))
	}
	return pid, int(pfd), nil
}
