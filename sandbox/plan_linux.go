package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An instance is set up by a list of system calls (a childProg) built from its
// initConfig. The raw launcher runs the list in the cloned child before execve (no Go
// runtime there); the fallback Go init (Init) runs the same list. In order, as host root
// in new mount, PID, UTS and IPC namespaces:
//
//   - join the instance's cgroups (v1) and unshare a cgroup namespace rooted there;
//   - build the root: a read-only tmpfs with read-only binds of the system directories,
//     a tmpfs /etc (generated files, copies or read-only binds of a few host /etc
//     entries), /app, /tmp,
//     a nodev /dev holding binds of the allowed device nodes and a private devpts, /proc
//     with Docker's masked and read-only paths, /run/constellation (the node's run
//     directory, read-only) and the node's bind mounts (Config.StartMounts: the DFS
//     views of --mount-fs); pivot_root into it;
//   - unshare a user namespace (and the network namespace, owned by it) and wait for the
//     parent to write the uid/gid maps: the mount, PID, UTS, IPC and cgroup namespaces
//     stay owned by the host's user namespace, so root inside can change none of them;
//   - drop capabilities (bounding set first), switch to the instance's uid/gid, clear
//     the ambient set, set no_new_privs, install the seccomp filter and exec the
//     instance init (pid1_linux.go) from its memfd, which starts the program. The init
//     thus runs with everything the program gets: the instance's uid, its capabilities
//     and seccomp filter, no_new_privs; the filter must allow execveat (and the init's
//     few calls: checkInitSyscalls).

// Capabilities kept by uid 0 of an instance: a subset of Docker's default set (no
// MKNOD, NET_RAW, AUDIT_WRITE, SETFCAP, SETPCAP, SYS_CHROOT). Other uids keep none.
const rootCaps = 1<<unix.CAP_CHOWN | 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_FOWNER | 1<<unix.CAP_FSETID |
	1<<unix.CAP_KILL | 1<<unix.CAP_SETGID | 1<<unix.CAP_SETUID | 1<<unix.CAP_NET_BIND_SERVICE

// Docker's masked and read-only /proc paths. Masked files are covered with /dev/null,
// masked directories with an empty read-only tmpfs; read-only ones are bound read-only
// onto themselves. Paths missing on the host kernel are skipped.
var (
	procMaskedFiles = []string{"kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "interrupts"}
	procMaskedDirs  = []string{"acpi", "asound", "scsi"}
	procReadOnly    = []string{"bus", "fs", "irq", "sys", "sysrq-trigger"}
)

// devNodes are bound from the host's /dev; devLinks are symlinks in /dev.
var (
	devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}
	devLinks = [][2]string{{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"}}
)

// rawOp is one system call of the child program. The layout is shared with the
// assembly in vfork_*.s: 8 words.
type rawOp struct {
	nr    uintptr
	a     [6]uintptr
	flags uintptr // opPrevA0, opMayFail
}

const (
	opPrevA0   = 1 // a[0] = result of the previous op
	opMayFail  = 2 // an error is ignored
	opKeepPrev = 4 // the next op's "previous result" stays that of the op before this one
)

type childProg struct {
	ops  []rawOp
	desc []string
	keep []any // keeps the memory the ops point to alive
	made map[string]bool
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

// setattr sets mount attributes (MOUNT_ATTR_*) of the mount at path, and of the mounts
// below it when recursive, without touching the others (atime flags stay).
func (p *childProg) setattr(path string, attrs uint64, recursive bool) {
	a := &unix.MountAttr{Attr_set: attrs}
	p.keep = append(p.keep, a)
	flags := uintptr(0)
	if recursive {
		flags = unix.AT_RECURSIVE
	}
	p.add("mount_setattr "+path, unix.SYS_MOUNT_SETATTR, atFDCWD, p.str(path), flags, uintptr(unsafe.Pointer(a)), unsafe.Sizeof(*a))
}

// bindRO binds src at dst (recursively) and makes every mount there read-only, nosuid
// and nodev (and noexec when asked).
func (p *childProg) bindRO(src, dst string, noexec bool) {
	p.mount(src, dst, "", unix.MS_BIND|unix.MS_REC, "")
	attrs := uint64(unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV)
	if noexec {
		attrs |= unix.MOUNT_ATTR_NOEXEC
	}
	p.setattr(dst, attrs, true)
}

// mkdirAll creates path and its missing parents below root (the empty root tmpfs, so
// what exists is what the program made).
func (p *childProg) mkdirAll(root, path string, mode uintptr) {
	if p.made == nil {
		p.made = map[string]bool{}
	}
	if path == root || p.made[path] {
		return
	}
	p.mkdirAll(root, filepath.Dir(path), 0o755)
	p.add("mkdir "+path, unix.SYS_MKDIRAT, atFDCWD, p.str(path), mode)
	p.made[path] = true
}

// touch creates an empty regular file (a bind mount point).
func (p *childProg) touch(path string) {
	p.add("create "+path, unix.SYS_MKNODAT, atFDCWD, p.str(path), unix.S_IFREG|0o644, 0)
}

const atFDCWD = ^uintptr(99) // AT_FDCWD (-100)

// childSync are the descriptors of the user-namespace handshake: the child writes one
// byte to notify once it has unshared its user namespace, then reads one byte from wait
// (the parent has written the uid/gid maps).
type childSync struct{ notify, wait int }

// buildChild prepares the child's system calls from the init configuration. In the raw
// launcher's child (stdio: the init's files, pid1NumFDs of them) the list ends with the
// execveat of the native init (initFD, pid1_raw_linux.go). stdio is nil in the Go init,
// which already has its files, session and cgroups, runs the list on one locked thread
// and then stays resident as PID 1 (goPID1).
func buildChild(c *initConfig, v1Procs []int, stdio []int, hostDirs map[string]string, sync childSync, initFD int) *childProg {
	p := &childProg{}
	if stdio != nil {
		for i, fd := range stdio {
			p.add("dup3", unix.SYS_DUP3, uintptr(fd), uintptr(i), 0)
		}
		p.add("setsid", unix.SYS_SETSID)
	}
	p.add("umask", unix.SYS_UMASK, 0)
	if c.NetNS >= 0 {
		// The bridge-mode namespace, made by host root: it belongs to the host's user
		// namespace, so root inside cannot reconfigure it.
		p.add("join network namespace", unix.SYS_SETNS, uintptr(c.NetNS), unix.CLONE_NEWNET)
		p.add("close network namespace", unix.SYS_CLOSE, uintptr(c.NetNS))
	}
	zero := []byte("0")
	p.keep = append(p.keep, zero)
	for _, fd := range v1Procs { // cgroup.procs files opened by the parent
		p.add("join cgroup", unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&zero[0])), 1)
	}
	p.add("unshare cgroup namespace", unix.SYS_UNSHARE, unix.CLONE_NEWCGROUP)
	r := c.Root
	p.mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
	p.mount("tmpfs", r, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=64k")
	// Owner options of the instance's writable tmpfs mounts: root inside.
	owner := ""
	if c.UserNS {
		owner = fmt.Sprintf(",uid=%d,gid=%d", c.HostUID, c.HostUID)
	}
	for _, d := range c.SystemDirs {
		link, ok := hostDirs[d]
		if !ok {
			continue
		}
		t := filepath.Join(r, d)
		p.mkdirAll(r, filepath.Dir(t), 0o755)
		if link != "" {
			p.add("symlink "+d, unix.SYS_SYMLINKAT, p.str(link), atFDCWD, p.str(t))
			continue
		}
		p.mkdirAll(r, t, 0o755)
		p.bindRO(d, t, false)
	}
	// /etc: a tmpfs with the generated files and copies of small host files, host
	// directories bound read-only, then all of it read-only.
	etc := filepath.Join(r, "etc")
	p.mkdirAll(r, etc, 0o755)
	p.mount("tmpfs", etc, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=755,size=%d", etcSize(c.Etc)))
	for _, e := range c.Etc {
		t := filepath.Join(etc, e.Name)
		switch {
		case e.Link != "":
			p.add("symlink /etc/"+e.Name, unix.SYS_SYMLINKAT, p.str(e.Link), atFDCWD, p.str(t))
		case e.Bind:
			if e.Dir {
				p.add("mkdir "+t, unix.SYS_MKDIRAT, atFDCWD, p.str(t), 0o755)
			} else {
				p.touch(t)
			}
			p.mount(filepath.Join("/etc", e.Name), t, "", unix.MS_BIND|unix.MS_REC, "")
		default:
			// open, write (keeping the descriptor as the previous result), close: no
			// writer may remain when /etc becomes read-only.
			p.add("create /etc/"+e.Name, unix.SYS_OPENAT, atFDCWD, p.str(t), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
			if len(e.Content) > 0 {
				p.keep = append(p.keep, e.Content)
				op := p.add("write /etc/"+e.Name, unix.SYS_WRITE, 0, uintptr(unsafe.Pointer(&e.Content[0])), uintptr(len(e.Content)))
				op.flags = opPrevA0 | opKeepPrev
			}
			p.add("close /etc/"+e.Name, unix.SYS_CLOSE, 0).flags = opPrevA0
		}
	}
	p.setattr(etc, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, true)
	app := filepath.Join(r, "app")
	p.mkdirAll(r, app, 0o755)
	if c.Code != "" {
		p.mount("overlay", app, "overlay", unix.MS_NOSUID|unix.MS_NODEV, "lowerdir="+c.Code+",upperdir="+c.Upper+",workdir="+c.Work)
	} else {
		p.mount(c.Upper, app, "", unix.MS_BIND, "")
		p.setattr(app, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, false)
	}
	tmp := filepath.Join(r, "tmp")
	p.mkdirAll(r, tmp, 0o755)
	p.mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=1777,size=%dm%s", c.TmpMB, owner))
	if len(c.Secrets) > 0 {
		p.secretFiles(r, c)
	}
	p.binds(r, c)
	// /dev: nodev, so no device node made there works; the allowed devices are binds
	// of the host's nodes (and the devices cgroup allows only those).
	dev := filepath.Join(r, "dev")
	p.mkdirAll(r, dev, 0o755)
	p.mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755,size=64k")
	for _, n := range c.DevNodes {
		t := filepath.Join(dev, n)
		p.touch(t)
		p.mount(filepath.Join("/dev", n), t, "", unix.MS_BIND, "") // a device node cannot be exec'd
	}
	for _, l := range devLinks {
		p.add("symlink /dev/"+l[0], unix.SYS_SYMLINKAT, p.str(l[1]), atFDCWD, p.str(filepath.Join(dev, l[0])))
	}
	pts := filepath.Join(dev, "pts")
	p.mkdirAll(r, pts, 0o755)
	p.mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, fmt.Sprintf("newinstance,ptmxmode=0666,mode=0620,gid=%d", c.HostUID+5))
	shm := filepath.Join(dev, "shm")
	p.mkdirAll(r, shm, 0o1777)
	p.mount("tmpfs", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=16m"+owner)
	proc := filepath.Join(r, "proc")
	p.mkdirAll(r, proc, 0o755)
	p.mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	for _, f := range c.ProcMaskFiles {
		p.mount("/dev/null", filepath.Join(proc, f), "", unix.MS_BIND, "")
	}
	for _, d := range c.ProcMaskDirs {
		p.mount("tmpfs", filepath.Join(proc, d), "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k")
	}
	for _, f := range c.ProcReadOnly {
		t := filepath.Join(proc, f)
		p.bindRO(t, t, true)
	}
	if c.RunDir != "" {
		run := filepath.Join(r, "run", "constellation")
		p.mkdirAll(r, run, 0o755)
		p.bindRO(c.RunDir, run, true)
	}
	old := filepath.Join(r, ".old")
	p.mkdirAll(r, old, 0o700)
	p.add("pivot_root", unix.SYS_PIVOT_ROOT, p.str(r), p.str(old))
	p.add("chdir /", unix.SYS_CHDIR, p.str("/"))
	p.add("detach old root", unix.SYS_UMOUNT2, p.str("/.old"), unix.MNT_DETACH)
	p.add("rmdir /.old", unix.SYS_UNLINKAT, atFDCWD, p.str("/.old"), unix.AT_REMOVEDIR)
	p.mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
	host := []byte(c.Hostname)
	p.keep = append(p.keep, host)
	p.add("sethostname", unix.SYS_SETHOSTNAME, uintptr(unsafe.Pointer(&host[0])), uintptr(len(host)))
	if c.UserNS {
		flags := uintptr(unix.CLONE_NEWUSER)
		if c.Loopback {
			flags |= unix.CLONE_NEWNET // owned by the new user namespace
		}
		p.add("unshare user namespace", unix.SYS_UNSHARE, flags)
		b := make([]byte, 1)
		p.keep = append(p.keep, b)
		p.add("notify parent", unix.SYS_WRITE, uintptr(sync.notify), uintptr(unsafe.Pointer(&b[0])), 1)
		p.add("wait for uid map", unix.SYS_READ, uintptr(sync.wait), uintptr(unsafe.Pointer(&b[0])), 1)
		p.add("close", unix.SYS_CLOSE, uintptr(sync.wait))
	}
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
	// Capabilities: the bounding set first (needs CAP_SETPCAP), then the ids, then the
	// permitted/effective/inheritable sets and the ambient set.
	caps := uint64(0)
	if c.UID == 0 {
		caps = rootCaps
	}
	for cp := 0; cp <= c.LastCap; cp++ {
		if caps&(1<<cp) == 0 {
			p.add(fmt.Sprintf("drop capability %d from the bounding set", cp), unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(cp))
		}
	}
	p.add("setgroups", sysSetgroups, 0, 0)
	p.add("setresgid", sysSetresgid, uintptr(c.GID), uintptr(c.GID), uintptr(c.GID))
	p.add("setresuid", sysSetresuid, uintptr(c.UID), uintptr(c.UID), uintptr(c.UID))
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := &[2]unix.CapUserData{{Effective: uint32(caps), Permitted: uint32(caps)}, {Effective: uint32(caps >> 32), Permitted: uint32(caps >> 32)}}
	p.keep = append(p.keep, hdr, data)
	p.add("capset", unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(data)))
	p.add("clear ambient capabilities", unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	p.add("no_new_privs", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	if stdio != nil {
		// Reset the supervisor's (Go runtime's) signal handlers: with CLONE_VM the child
		// shares the parent's memory, and no Go handler may run in it. The Go init keeps
		// its handlers (it is a Go program and stays resident).
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
	}
	// Signals stay blocked: the init starts that way, so it cannot miss a stop sent
	// before it waits for signals; it unblocks them for the program.
	if len(c.Seccomp) > 0 {
		filter := make([]unix.SockFilter, len(c.Seccomp))
		for i, in := range c.Seccomp {
			filter[i] = unix.SockFilter{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
		}
		fprog := &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		p.keep = append(p.keep, filter, fprog)
		p.add("seccomp filter", unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(c.SeccompFlags), uintptr(unsafe.Pointer(fprog)))
	}
	if stdio != nil {
		p.execInit(c, initFD)
	}
	return p
}

// execInit ends the raw launcher's child program: execveat of the init binary (a memfd,
// initFD) with argv "init PATH ARGV...". Every signal is still blocked (the parent
// blocked them before the clone): the init starts that way and cannot miss a stop
// sent before it waits for signals; its child unblocks them for the program.
func (p *childProg) execInit(c *initConfig, initFD int) {
	argv, _ := syscall.SlicePtrFromStrings(pid1Argv(c.Path, c.Argv))
	envv, _ := syscall.SlicePtrFromStrings(c.Env)
	p.keep = append(p.keep, argv, envv)
	p.add("exec init for "+c.Path, unix.SYS_EXECVEAT, uintptr(initFD), p.str(""), uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH)
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

// existing returns the names under dir that exist on the host.
func existing(dir string, names []string) []string {
	var out []string
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// lastCap is the highest capability the kernel knows.
func lastCap() int {
	n, err := readInt("/proc/sys/kernel/cap_last_cap")
	if err != nil || n < unix.CAP_AUDIT_READ {
		return unix.CAP_LAST_CAP
	}
	return int(n)
}

// opError renders the failure of one setup step.
func opError(desc string, errno syscall.Errno) error {
	if strings.HasPrefix(desc, "mount_setattr") && errno == unix.ENOSYS {
		return fmt.Errorf("instance setup: %s: %w (mount_setattr needs Linux 5.12 or later)", desc, errno)
	}
	return fmt.Errorf("instance setup: %s: %w", desc, errno)
}

// secretFiles mounts /run/secrets: a tmpfs just big enough (noexec, nosuid, nodev), its
// directory 0500 and files 0400 owned by the instance's uid/gid (as the host sees them),
// then read-only.
func (p *childProg) secretFiles(r string, c *initConfig) {
	uid, gid := c.UID, c.GID
	if c.UserNS {
		uid, gid = c.HostUID+c.UID, c.HostUID+c.GID
	}
	size := 4096
	for _, e := range c.Secrets {
		size += (len(e.Content)/4096 + 1) * 4096
	}
	dir := filepath.Join(r, "run", "secrets")
	p.mkdirAll(r, dir, 0o755)
	p.mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=500,size=%d,nr_inodes=%d,uid=%d,gid=%d", size, len(c.Secrets)+2, uid, gid))
	for _, e := range c.Secrets {
		t := filepath.Join(dir, e.Name)
		p.add("create secret file", unix.SYS_OPENAT, atFDCWD, p.str(t), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o400)
		if len(e.Content) > 0 {
			p.keep = append(p.keep, e.Content)
			op := p.add("write secret file", unix.SYS_WRITE, 0, uintptr(unsafe.Pointer(&e.Content[0])), uintptr(len(e.Content)))
			op.flags = opPrevA0 | opKeepPrev
		}
		p.add("close secret file", unix.SYS_CLOSE, 0).flags = opPrevA0
		p.add("chown secret file", unix.SYS_FCHOWNAT, atFDCWD, p.str(t), uintptr(uid), uintptr(gid), 0)
	}
	p.setattr(dir, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC, false)
}

// binds bind the node's host directories (Config.StartMounts) at their targets: the
// target directory is made when missing (it may exist, e.g. in the code layer), the bind
// is nosuid and nodev, and read-only when asked. The attributes are set by host root in
// a mount namespace owned by the host's user namespace: root inside cannot change them.
func (p *childProg) binds(r string, c *initConfig) {
	for _, b := range c.Binds {
		t := filepath.Join(r, b.Target)
		p.mkdirAll(r, filepath.Dir(t), 0o755)
		if p.made == nil {
			p.made = map[string]bool{}
		}
		if !p.made[t] {
			p.add("mkdir "+t, unix.SYS_MKDIRAT, atFDCWD, p.str(t), 0o755).flags = opMayFail
			p.made[t] = true
		}
		p.mount(b.Source, t, "", unix.MS_BIND, "")
		attrs := uint64(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV)
		if b.ReadOnly {
			attrs |= unix.MOUNT_ATTR_RDONLY
		}
		p.setattr(t, attrs, false)
	}
}
