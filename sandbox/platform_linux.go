package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

type linuxPlatform struct {
	cfg  *Config
	cg   *cgroupHost
	xfs  *xfsDisk  // nil unless DiskQuotaXFS
	ext4 *ext4Disk // nil unless DiskQuotaExt4
	mode string
	data string // root of instance data layers (<data>/instances/<name>)
	hst  Host
	raw  bool // use the raw launcher (else the re-executed Go init)
	// hostDirs: the SystemDirs that exist (dir -> symlink target or ""), read once.
	hostDirs map[string]string
	// Read once: what this kernel and host have of the masked /proc paths and /dev nodes.
	procMaskFiles, procMaskDirs, procReadOnly, devNodes []string
	lastCap                                             int
	etc                                                 *hostEtc // host /etc entries instances get
	// seccompDefault is SeccompDefault compiled for this architecture (seccompErr when
	// there is no syscall table for it).
	seccompDefault []bpfInsn
	seccompErr     error
	// initBin is the native instance init (nil: the Go init is used; pid1_linux.go).
	initBin *initBinary
	net     *bridgeNet // bridge networking (network_linux.go)
}

func newPlatform(cfg *Config) (platform, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("sandbox: namespaces and cgroups need root: %w", ErrUnsupported)
	}
	cg, err := newCgroupHost(cfg.CgroupRoot, cfg.CgroupParent)
	if err != nil {
		return nil, err
	}
	p := &linuxPlatform{cfg: cfg, cg: cg, raw: haveRawLaunch}
	if p.net, err = newBridgeNet(cfg); err != nil {
		return nil, err
	}
	p.hostDirs = hostSystemDirs(cfg.SystemDirs)
	p.procMaskFiles = existing("/proc", procMaskedFiles)
	p.procMaskDirs = existing("/proc", procMaskedDirs)
	p.procReadOnly = existing("/proc", procReadOnly)
	p.devNodes = existing("/dev", devNodes)
	p.lastCap = lastCap()
	p.etc = newHostEtc(cfg.EtcFiles)
	p.seccompDefault, p.seccompErr = compileSeccomp(defaultSeccompProfile(), runtime.GOARCH, false)
	// The native init (pid1_linux.go) is what the raw launcher execs; without it the
	// re-executed Go init is PID 1 (and, unable to create user namespaces, runs only
	// host_root instances).
	if p.raw && havePID1 {
		if p.initBin, err = newInitBinary(); err != nil {
			cfg.Logger.Warn("sandbox: native instance init unavailable, using the Go init (host_root instances only)", "err", err)
		}
	}
	if p.initBin == nil {
		p.raw = false
	}
	p.hst = Host{CPUs: runtime.NumCPU(), MemoryMB: totalMemMB(), MaxPIDs: pidMax()}
	mode := cfg.DiskQuota
	if mode == DiskQuotaAuto || mode == DiskQuotaXFS {
		x, err := setupXFS(cfg.StateDir, cfg.DataImageMB)
		switch {
		case err == nil:
			p.xfs, p.mode, p.data = x, DiskQuotaXFS, x.mnt
			p.hst.DiskMB = x.sizeMB
		case mode == DiskQuotaXFS:
			cg.removeParent()
			return nil, err
		default:
			cfg.Logger.Debug("sandbox: no XFS project quotas", "err", err)
		}
	}
	if p.mode == "" && (mode == DiskQuotaAuto || mode == DiskQuotaExt4) {
		e, err := newExt4Disk(cfg.StateDir)
		switch {
		case err == nil:
			p.ext4, p.mode = e, DiskQuotaExt4
		case mode == DiskQuotaExt4:
			cg.removeParent()
			return nil, err
		default:
			cfg.Logger.Warn("sandbox: no quota-capable filesystem, disk_mb enforced by polling", "err", err)
		}
	}
	if p.mode == "" {
		p.mode = mode
		if mode == DiskQuotaAuto {
			p.mode = DiskQuotaPoll
		}
	}
	if p.data == "" {
		p.data = filepath.Join(cfg.StateDir, "data")
		for _, sub := range []string{"instances", "snapshots"} {
			if err := os.MkdirAll(filepath.Join(p.data, sub), 0o711); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

func (p *linuxPlatform) host() Host       { return p.hst }
func (p *linuxPlatform) diskMode() string { return p.mode }

func (p *linuxPlatform) checkLimits(l Limits) error {
	if err := p.cg.check(l); err != nil {
		return err
	}
	if l.DiskMB > 0 && p.mode == DiskQuotaNone {
		return fieldErr("disk_mb", ErrUnenforceable, "no disk quota mode configured")
	}
	return nil
}

// checkSpec rejects what this node cannot enforce for spec.
func (p *linuxPlatform) checkSpec(spec *Spec) error {
	if !spec.HostRoot && !p.raw {
		return fieldErr("host_root", ErrUnenforceable, "user namespaces need the raw launcher (64-bit Linux); on %s only host_root instances run", runtime.GOARCH)
	}
	if spec.Seccomp != SeccompUnconfined && p.seccompErr != nil {
		return p.seccompErr
	}
	return nil
}

// seccompFor compiles the instance's filter (nil: unconfined). A profile file was
// copied into the instance directory at create.
func (p *linuxPlatform) seccompFor(res *resources, spec *Spec) ([]bpfInsn, uint32, error) {
	switch spec.Seccomp {
	case SeccompUnconfined:
		return nil, 0, nil
	case "", SeccompDefault:
		return p.seccompDefault, 0, p.seccompErr
	}
	b, err := os.ReadFile(filepath.Join(res.Dir, seccompFile))
	if err != nil {
		return nil, 0, fmt.Errorf("sandbox: seccomp profile of %q: %w", res.Name, err)
	}
	return compileSeccompJSON(b, runtime.GOARCH)
}

func (p *linuxPlatform) imagePath(name string) string {
	return filepath.Join(p.data, "instances", name+".img")
}

func (p *linuxPlatform) create(res *resources, spec *Spec) (err error) {
	res.DataDir = filepath.Join(p.data, "instances", res.Name)
	cg := p.cg.cgroup(res.Name)
	if err := cg.create(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			cg.destroy()
		}
	}()
	if err := cg.apply(spec.Limits, res.Cpuset); err != nil {
		return err
	}
	kept := false
	if p.ext4 != nil {
		// An image per instance with disk_mb; kept images are mounted again.
		res.DiskMB = spec.DiskMB
		img := p.imagePath(res.Name)
		if fi, err := os.Stat(img); err == nil {
			if size := fi.Size() >> 20; size != spec.DiskMB {
				return fieldErr("disk_mb", ErrUnenforceable, "kept data image of %q is %d MiB; recreate with disk_mb %d or destroy the data", res.Name, size, size)
			}
			kept = true
			res.Image = img
			if err := p.ext4.mount(img, res.DataDir); err != nil {
				return err
			}
		} else if spec.DiskMB > 0 {
			res.Image = img
			if err := p.ext4.prepare(img, res.DataDir, spec.DiskMB); err != nil {
				return err
			}
		} else if fi, err := os.Stat(res.DataDir); err == nil && fi.IsDir() {
			kept = true
		} else if err := os.Mkdir(res.DataDir, 0o711); err != nil {
			return err
		}
		defer func() {
			if err != nil && !kept && res.Image != "" {
				unmountData(res.DataDir)
				os.Remove(res.Image)
			}
		}()
	} else if fi, err := os.Stat(res.DataDir); err == nil && fi.IsDir() {
		kept = true // data kept by an earlier Destroy(keepData)
		if p.xfs != nil {
			if id, err := getProject(res.DataDir); err == nil && id != 0 {
				res.ProjID = id
			} else if err := setProjectTree(res.DataDir, res.ProjID); err != nil {
				return err
			}
			if err := p.xfs.setLimit(res.ProjID, spec.DiskMB); err != nil {
				return err
			}
		}
	} else if p.xfs != nil {
		if err := p.xfs.prepare(res.DataDir, res.ProjID, spec.DiskMB); err != nil {
			return err
		}
	} else if err := os.Mkdir(res.DataDir, 0o711); err != nil {
		return err
	}
	defer func() {
		if err != nil && !kept {
			os.RemoveAll(res.DataDir)
		}
	}()
	for _, d := range []string{res.upper(), res.work()} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	if !kept {
		uid, gid := hostIDs(res, p.cfg, spec)
		if err := os.Chown(res.upper(), uid, gid); err != nil {
			return err
		}
		markDataOwner(res) // kept data is checked (and moved) at start
	}
	if res.IP != "" {
		return p.net.add(res, spec)
	}
	return nil
}

func (p *linuxPlatform) bridgeSubnet() (netip.Prefix, bool)  { return p.net.subnet, true }
func (p *linuxPlatform) adoptNet(res *resources, spec *Spec) { p.net.adopt(res, spec) }
func (p *linuxPlatform) syncNet() error                      { return p.net.sync() }

func (p *linuxPlatform) start(res *resources, spec *Spec, stdout *os.File) (process, runPipes, error) {
	path, argv, err := resolveExec(spec, p.cfg.SystemDirs)
	if err != nil {
		return nil, runPipes{}, err
	}
	if err := p.checkSpec(spec); err != nil {
		return nil, runPipes{}, err
	}
	env, err := startEnv(spec, p.cfg)
	if err != nil {
		return nil, runPipes{}, err
	}
	secretFiles, err := startFiles(spec, p.cfg)
	if err != nil {
		return nil, runPipes{}, err
	}
	uid, gid := specIDs(p.cfg, spec)
	ownerUID, ownerGID := uid, gid
	if res.HostUID != 0 {
		ownerUID, ownerGID = res.HostUID+uid, res.HostUID+gid
	}
	binds, err := startMounts(spec, p.cfg, ownerUID, ownerGID)
	if err != nil {
		return nil, runPipes{}, err
	}
	filter, filterFlags, err := p.seccompFor(res, spec)
	if err != nil {
		return nil, runPipes{}, err
	}
	if err := fixDataOwner(res, p.cfg); err != nil {
		return nil, runPipes{}, err
	}
	mode := effectiveNetwork(spec)
	netNS := -1
	if mode == NetworkBridge {
		if netNS, err = p.net.netnsFD(res); err != nil {
			return nil, runPipes{}, err
		}
		defer unix.Close(netNS)
	}
	ic := initConfig{
		Root:          filepath.Join(res.Dir, "root"),
		SystemDirs:    p.cfg.SystemDirs,
		Code:          spec.Code,
		Upper:         res.upper(),
		Work:          res.work(),
		Hostname:      spec.Name,
		Loopback:      mode == NetworkNone,
		NetNS:         netNS,
		UID:           uid,
		GID:           gid,
		Path:          path,
		Argv:          argv,
		Env:           env,
		TmpMB:         p.cfg.TmpMB,
		UserNS:        res.HostUID != 0,
		HostUID:       res.HostUID,
		Etc:           p.etc.etcFor(spec, uid, gid, mode, res.IP, p.cfg.DNS),
		Secrets:       secretFiles,
		Binds:         binds,
		RunDir:        res.runDir(),
		DevNodes:      p.devNodes,
		ProcMaskFiles: p.procMaskFiles,
		ProcMaskDirs:  p.procMaskDirs,
		ProcReadOnly:  p.procReadOnly,
		LastCap:       p.lastCap,
		Seccomp:       filter,
		SeccompFlags:  filterFlags,
		InitFD:        -1,
	}
	if p.raw {
		ic.InitFD = p.initBin.fd
	}
	cg := p.cg.cgroup(res.Name)
	if !cg.exists() { // e.g. removed by an operator: recreate
		if err := cg.create(); err != nil {
			return nil, runPipes{}, err
		}
		if err := cg.apply(spec.Limits, res.Cpuset); err != nil {
			return nil, runPipes{}, err
		}
	}
	files, err := newInitFiles(stdout, nil)
	if err != nil {
		return nil, runPipes{}, err
	}
	defer files.closeChild()
	fail := func(err error) (process, runPipes, error) {
		files.pipes.close()
		return nil, runPipes{}, err
	}
	cgroupFD := -1
	if p.cg.v2 {
		fd, err := cg.openFD()
		if err != nil {
			return fail(err)
		}
		defer unix.Close(fd)
		cgroupFD = fd
	}
	var pid, pidfd int
	if p.raw {
		var v1Procs []string
		if !p.cg.v2 {
			// The child joins as a single thread ("tasks", pid 0): the kernel then skips
			// the global threadgroup lock, whose write side waits for an RCU grace period
			// (milliseconds on a busy machine). The child has one thread, so this moves
			// the whole process.
			for _, d := range cg.dirs() {
				v1Procs = append(v1Procs, filepath.Join(d, "tasks"))
			}
		}
		pid, pidfd, err = launchRaw(&ic, p.hostDirs, v1Procs, cgroupFD, files.child[:])
	} else {
		pid, pidfd, err = launchInit(&ic, cg, cgroupFD, files.child[:])
	}
	if err != nil {
		return fail(fmt.Errorf("sandbox: start %q: %w", res.Name, err))
	}
	lp := &linuxProc{p: pid, fd: pidfd, child: true, status: files.pipes.status}
	abort := func(err error) (process, runPipes, error) {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		if lp.fd >= 0 {
			unix.Close(lp.fd)
		}
		return fail(err)
	}
	if pidfd < 0 {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			return abort(fmt.Errorf("sandbox: pidfd_open: %w", err))
		}
		lp.fd = fd
	}
	lp.st = procStartTime(pid)
	files.closeChild() // before waiting: the status pipe must be non-blocking again
	// Start returns once the program is exec'd, or with the exec's error.
	if err := awaitExec(files.pipes.status); err != nil {
		return abort(fmt.Errorf("sandbox: start %q: %w", res.Name, err))
	}
	if err := lp.register(); err != nil {
		return abort(err)
	}
	return lp, runPipes{stdout: files.pipes.stdout, stderr: files.pipes.stderr}, nil
}

func (p *linuxPlatform) adopt(res *resources, pid int, startTime uint64, withInit bool) (process, runPipes, error) {
	if pid <= 0 {
		return nil, runPipes{}, fmt.Errorf("sandbox: no pid recorded")
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, runPipes{}, fmt.Errorf("sandbox: pidfd_open %d: %w", pid, err)
	}
	if st := procStartTime(pid); st == 0 || st != startTime {
		unix.Close(fd)
		return nil, runPipes{}, fmt.Errorf("sandbox: pid %d was reused", pid)
	}
	// Our own child (a runtime re-created in the same process) may already be a zombie,
	// which has left its cgroup: waitable, so its exit status is known.
	child := procPPID(pid) == os.Getpid()
	found := child
	for _, q := range p.cg.cgroup(res.Name).procs() {
		if q == pid {
			found = true
		}
	}
	if !found {
		unix.Close(fd)
		return nil, runPipes{}, fmt.Errorf("sandbox: pid %d is not in the instance's cgroup", pid)
	}
	var pipes runPipes
	if withInit {
		// The init holds the pipes; take the runtime's ends back. An init that
		// has just exited (a zombie) has none left: its end is reported without them.
		if pipes, err = adoptInitFiles(fd); err != nil && procState(pid) != 'Z' {
			p.cfg.Logger.Warn("sandbox: re-adopted instance without its output pipes (its output is lost and it may block)", "instance", res.Name, "err", err)
		}
	}
	lp := &linuxProc{p: pid, fd: fd, st: startTime, child: child, status: pipes.status}
	if err := lp.register(); err != nil {
		unix.Close(fd)
		pipes.close()
		return nil, runPipes{}, err
	}
	return lp, runPipes{stdout: pipes.stdout, stderr: pipes.stderr}, nil
}

func (p *linuxPlatform) setLimits(res *resources, l Limits) error {
	if err := p.cg.cgroup(res.Name).apply(l, res.Cpuset); err != nil {
		return err
	}
	if p.xfs != nil {
		return p.xfs.setLimit(res.ProjID, l.DiskMB)
	}
	return nil
}

func (p *linuxPlatform) checkSetLimits(res *resources, l Limits) error {
	if p.ext4 != nil && l.DiskMB != res.DiskMB {
		return fieldErr("disk_mb", ErrUnenforceable, "disk_mb of an existing instance cannot change with per-instance ext4 images; recreate it")
	}
	return nil
}

func (p *linuxPlatform) usage(res *resources) usage {
	var u usage
	u.cpuNs, u.memB, u.pids = p.cg.cgroup(res.Name).usage()
	if p.xfs != nil {
		u.diskB = p.xfs.usage(res.ProjID)
	} else if res.Image != "" {
		u.diskB = fsUsed(res.DataDir)
	} else if res.DataDir != "" {
		u.diskB = duBytes(res.DataDir)
	}
	return u
}

func (p *linuxPlatform) cpuNs(res *resources) uint64    { return p.cg.cgroup(res.Name).cpuNs() }
func (p *linuxPlatform) oomKills(res *resources) uint64 { return p.cg.cgroup(res.Name).oomKills() }
func (p *linuxPlatform) signalAll(res *resources, sig syscall.Signal) {
	p.cg.cgroup(res.Name).signalAll(sig)
}
func (p *linuxPlatform) killAll(res *resources) { p.cg.cgroup(res.Name).kill() }
func (p *linuxPlatform) freeze(res *resources, on bool) error {
	return p.cg.cgroup(res.Name).freeze(on)
}

func (p *linuxPlatform) destroy(res *resources, keepData bool) error {
	cg := p.cg.cgroup(res.Name)
	cg.kill()
	err := cg.destroy()
	if res.IP != "" {
		err = errors.Join(err, p.net.remove(res))
	}
	if res.Image != "" {
		unmountData(res.DataDir)
		if !keepData {
			os.Remove(res.Image)
		}
		os.Remove(res.DataDir)
		return err
	}
	if !keepData && res.DataDir != "" {
		if rmErr := os.RemoveAll(res.DataDir); rmErr != nil && err == nil {
			err = fmt.Errorf("sandbox: remove data: %w", rmErr)
		}
		if p.xfs != nil && res.ProjID != 0 {
			p.xfs.setLimit(res.ProjID, 0)
		}
	}
	return err
}

func (p *linuxPlatform) copyTree(src, dst string) error {
	// cp preserves owners, modes, timestamps, xattrs (overlay opaque markers) and
	// whiteouts (character devices), and reflinks on XFS.
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-a", "--reflink=auto", src+"/.", dst+"/").CombinedOutput()
	if err != nil {
		return fmt.Errorf("sandbox: copy %s: %v: %s", src, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (p *linuxPlatform) close() {
	p.initBin.close()
	p.net.close()
}

func (p *linuxPlatform) teardown() error {
	err := p.net.teardown()
	if p.xfs != nil {
		err = errors.Join(err, p.xfs.unmount())
		os.Remove(p.xfs.img)
	}
	p.cg.removeParent()
	return err
}

// launchInit starts the instance through the re-executed Go init (Init): the fallback
// where the raw launcher is not available.
func launchInit(ic *initConfig, cg *cgroup, cgroupFD int, stdio []*os.File) (pid, pidfd int, err error) {
	hostNS := ic.NetNS
	if hostNS >= 0 {
		ic.NetNS = goInitNetFD // where the init finds it
	}
	cfgJSON, err := json.Marshal(ic)
	if err != nil {
		return 0, 0, err
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return 0, 0, err
	}
	defer cfgW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return 0, 0, err
	}
	defer errR.Close()
	pidfd = -1
	sys := &syscall.SysProcAttr{
		Setsid:     true,
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		PidFD:      &pidfd,
	}
	if ic.Loopback {
		sys.Cloneflags |= syscall.CLONE_NEWNET
	}
	if cgroupFD >= 0 {
		sys.UseCgroupFD, sys.CgroupFD = true, cgroupFD
	}
	attr := &syscall.ProcAttr{
		Dir: "/",
		// The init stays resident as PID 1 (pid1_go_linux.go): one P, a small heap.
		Env:   []string{"GOGC=25", "GOMAXPROCS=1"},
		Files: initFDs(stdio, cfgR, errW, hostNS),
		Sys:   sys,
	}
	pid, err = syscall.ForkExec("/proc/self/exe", []string{initArg0}, attr)
	cfgR.Close()
	errW.Close()
	if err != nil {
		return 0, 0, fmt.Errorf("start init: %w", err)
	}
	abort := func(err error) (int, int, error) {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		return 0, 0, err
	}
	if cgroupFD < 0 {
		if err := cg.addProc(pid); err != nil {
			return abort(err)
		}
	}
	if _, err := cfgW.Write(cfgJSON); err != nil {
		return abort(fmt.Errorf("send init config: %w", err))
	}
	cfgW.Close()
	if msg, _ := io.ReadAll(errR); len(msg) > 0 {
		return abort(fmt.Errorf("init: %s", msg))
	}
	return pid, pidfd, nil
}

// linuxProc is a process watched through its pidfd with the Go netpoller (no thread
// blocks per instance).
type linuxProc struct {
	p     int
	fd    int // pidfd, owned by f once registered
	st    uint64
	child bool // our child: waitable for the exit status
	f     *os.File
	// status is the init's status pipe (nil for a program started without an init):
	// the program's own exit status, also when the process is not our child.
	status *os.File

	mu     sync.Mutex // guards closed
	closed bool
}

func (lp *linuxProc) register() error {
	if err := unix.SetNonblock(lp.fd, true); err != nil {
		return err
	}
	lp.f = os.NewFile(uintptr(lp.fd), "pidfd")
	return nil
}

func (lp *linuxProc) pid() int          { return lp.p }
func (lp *linuxProc) startTime() uint64 { return lp.st }

func (lp *linuxProc) wait() (exitStatus, error) {
	rc, err := lp.f.SyscallConn()
	if err != nil {
		return exitStatus{}, errProcClosed
	}
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, 0)
		return n > 0
	})
	if err != nil {
		return exitStatus{}, errProcClosed
	}
	st := lp.reap()
	if lp.status != nil {
		return programStatus(lp.status, st), nil
	}
	return st, nil
}

// reap collects the (init) process's own status.
func (lp *linuxProc) reap() exitStatus {
	if !lp.child {
		return exitStatus{known: false}
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(lp.p, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return exitStatus{known: false}
		}
		break
	}
	return waitExit(ws)
}

func waitExit(ws unix.WaitStatus) exitStatus {
	if ws.Signaled() {
		return exitStatus{known: true, signaled: true, code: int(ws.Signal())}
	}
	return exitStatus{known: true, code: ws.ExitStatus()}
}

func (lp *linuxProc) signal(sig syscall.Signal) error {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.closed {
		return errProcClosed
	}
	rc, err := lp.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) })
	return serr
}

func (lp *linuxProc) close() {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if !lp.closed {
		lp.closed = true
		lp.f.Close()
		if lp.status != nil {
			lp.status.Close()
		}
	}
}

// procStatField returns field n (1-based, as in proc(5)) of /proc/PID/stat as a number, 0 if
// the process is gone. Fields are counted after the command name, which may hold spaces.
func procStatField(pid, n int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < n-2 {
		return 0
	}
	v, _ := strconv.ParseUint(f[n-3], 10, 64)
	return v
}

// procStartTime is field 22 of /proc/PID/stat (clock ticks since boot), 0 if gone.
func procStartTime(pid int) uint64 { return procStatField(pid, 22) }

// procPPID is field 4 of /proc/PID/stat, 0 if gone.
func procPPID(pid int) int { return int(procStatField(pid, 4)) }

func totalMemMB() int64 {
	return int64(statKeyColon("/proc/meminfo", "MemTotal") >> 10)
}

func pidMax() int64 {
	n, err := readInt("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0
	}
	return n
}

// statKeyColon reads "Key:   value kB" files.
func statKeyColon(path, key string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && k == key {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// getProject reads a directory's XFS project ID.
func getProject(dir string) (uint32, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var a fsxattr
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlNum(false, 31), uintptr(unsafe.Pointer(&a))); e != 0 {
		return 0, e
	}
	return a.Projid, nil
}

// setProjectTree marks an existing tree (kept data) with a project.
func setProjectTree(dir string, id uint32) error {
	return filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || !fi.IsDir() {
			return nil
		}
		return setProject(path, id)
	})
}

// hasInit: every run starts under an instance init (native or Go).
func (p *linuxPlatform) hasInit() bool { return true }
