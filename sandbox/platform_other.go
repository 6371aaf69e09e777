//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// Init is a no-op outside Linux (instances are plain child processes).
func Init() {}

// otherPlatform runs instances as plain child processes: no namespaces, no cgroups, no
// disk quota. Every non-zero limit is rejected with ErrUnenforceable (rlimit-based
// memory limits are not implemented yet), the working directory is the instance's data
// directory, and the code directory is exposed as CONSTELLATION_CODE. A new runtime
// cannot re-adopt processes: they are reported exited with reason unknown.
type otherPlatform struct {
	cfg  *Config
	data string
}

func newPlatform(cfg *Config) (platform, error) {
	p := &otherPlatform{cfg: cfg, data: filepath.Join(cfg.StateDir, "data")}
	for _, sub := range []string{"instances", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(p.data, sub), 0o711); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *otherPlatform) host() Host       { return Host{CPUs: runtime.NumCPU()} }
func (p *otherPlatform) diskMode() string { return DiskQuotaNone }

func (p *otherPlatform) checkLimits(l Limits) error {
	for _, f := range []struct {
		set  bool
		name string
	}{{l.CPUPercent > 0, "cpu_percent"}, {l.CPUCores > 0, "cpu_cores"}, {l.RAMMB > 0, "ram_mb"}, {l.DiskMB > 0, "disk_mb"}, {l.PIDs > 0, "pids"}} {
		if f.set {
			return fieldErr(f.name, ErrUnenforceable, "not enforceable on %s", runtime.GOOS)
		}
	}
	return nil
}

// checkSpec: without user namespaces and seccomp, only specs that ask for neither run.
func (p *otherPlatform) checkSpec(spec *Spec) error {
	if !spec.HostRoot {
		return fieldErr("host_root", ErrUnenforceable, "no user namespaces on %s: instances run as the supervisor's own user; set host_root (the node must allow it)", runtime.GOOS)
	}
	if spec.Seccomp != SeccompUnconfined {
		return fieldErr("seccomp", ErrUnenforceable, "no seccomp on %s: set seccomp to %q", runtime.GOOS, SeccompUnconfined)
	}
	if effectiveNetwork(spec) != NetworkHost {
		return fieldErr("network", ErrUnenforceable, "no network namespaces on %s: set network to %q", runtime.GOOS, NetworkHost)
	}
	return nil
}

func (p *otherPlatform) bridgeSubnet() (netip.Prefix, bool) { return netip.Prefix{}, false }
func (p *otherPlatform) adoptNet(*resources, *Spec)         {}
func (p *otherPlatform) syncNet() error                     { return nil }

func (p *otherPlatform) create(res *resources, spec *Spec) error {
	res.DataDir = filepath.Join(p.data, "instances", res.Name)
	if err := os.MkdirAll(res.upper(), 0o755); err != nil {
		return err
	}
	return os.MkdirAll(res.work(), 0o755)
}

func (p *otherPlatform) start(res *resources, spec *Spec, stdout *os.File) (process, runPipes, error) {
	path, argv, err := resolveExec(spec, p.cfg.SystemDirs)
	if err != nil {
		return nil, runPipes{}, err
	}
	// Inside-instance paths under /app map to the code directory on the host.
	if rel, ok := cutApp(path); ok {
		path = filepath.Join(spec.Code, rel)
		argv[0] = path
	}
	for i, a := range argv {
		if rel, ok := cutApp(a); ok && spec.Code != "" {
			argv[i] = filepath.Join(spec.Code, rel)
		}
	}
	env, err := startEnv(spec, p.cfg)
	if err != nil {
		return nil, runPipes{}, err
	}
	if files, err := startFiles(spec, p.cfg); err != nil {
		return nil, runPipes{}, err
	} else if len(files) > 0 {
		return nil, runPipes{}, fmt.Errorf("instance %s: secrets as files (/run/secrets) need the Linux sandbox", spec.Name)
	}
	if binds, err := startMounts(spec, p.cfg, 0, 0); err != nil {
		return nil, runPipes{}, err
	} else if len(binds) > 0 {
		return nil, runPipes{}, fmt.Errorf("instance %s: mounts (--mount-fs) need the Linux sandbox", spec.Name)
	}
	env = append(env, "CONSTELLATION_CODE="+spec.Code)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, runPipes{}, err
	}
	defer devnull.Close()
	var pipes runPipes
	files := []*os.File{devnull, stdout, nil}
	for i, dst := range []**os.File{&pipes.stdout, &pipes.stderr} {
		if files[1+i] != nil {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			pipes.close()
			return nil, runPipes{}, err
		}
		defer w.Close()
		files[1+i], *dst = w, r
	}
	proc, err := os.StartProcess(path, argv, &os.ProcAttr{Dir: res.upper(), Env: env, Files: files})
	if err != nil {
		pipes.close()
		return nil, runPipes{}, fmt.Errorf("sandbox: start: %w", err)
	}
	return &otherProc{p: proc, done: make(chan struct{})}, pipes, nil
}

func cutApp(p string) (string, bool) {
	if len(p) > len(appDir)+1 && p[:len(appDir)+1] == appDir+"/" {
		return p[len(appDir)+1:], true
	}
	return "", false
}

func (p *otherPlatform) adopt(res *resources, pid int, startTime uint64, withInit bool) (process, runPipes, error) {
	return nil, runPipes{}, fmt.Errorf("sandbox: re-adoption: %w", ErrUnsupported)
}
func (p *otherPlatform) hasInit() bool                                 { return false }
func (p *otherPlatform) setLimits(res *resources, l Limits) error      { return p.checkLimits(l) }
func (p *otherPlatform) checkSetLimits(res *resources, l Limits) error { return nil }
func (p *otherPlatform) usage(res *resources) usage {
	return usage{diskB: dirBytes(res.DataDir)}
}
func (p *otherPlatform) cpuNs(res *resources) uint64                  { return 0 }
func (p *otherPlatform) oomKills(res *resources) uint64               { return 0 }
func (p *otherPlatform) signalAll(res *resources, sig syscall.Signal) {}
func (p *otherPlatform) killAll(res *resources)                       {}
func (p *otherPlatform) freeze(res *resources, on bool) error {
	if on {
		return fmt.Errorf("sandbox: freeze: %w", ErrUnsupported)
	}
	return nil
}
func (p *otherPlatform) destroy(res *resources, keepData bool) error {
	if keepData || res.DataDir == "" {
		return nil
	}
	return os.RemoveAll(res.DataDir)
}
func (p *otherPlatform) copyTree(src, dst string) error { return copyTreeGo(src, dst) }
func (p *otherPlatform) close()                         {}
func (p *otherPlatform) teardown() error                { return nil }

type otherProc struct {
	p    *os.Process
	done chan struct{}
}

func (o *otherProc) pid() int          { return o.p.Pid }
func (o *otherProc) startTime() uint64 { return uint64(time.Now().Unix()) }
func (o *otherProc) wait() (exitStatus, error) {
	type res struct {
		st  *os.ProcessState
		err error
	}
	ch := make(chan res, 1)
	go func() { st, err := o.p.Wait(); ch <- res{st, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			return exitStatus{}, nil
		}
		return exitStatus{known: true, code: r.st.ExitCode()}, nil
	case <-o.done:
		return exitStatus{}, errProcClosed
	}
}
func (o *otherProc) signal(sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return o.p.Kill()
	}
	return o.p.Signal(sig)
}
func (o *otherProc) close() {
	select {
	case <-o.done:
	default:
		close(o.done)
	}
}

// Bench needs Linux namespaces and cgroups.
func Bench(ctx context.Context, bc BenchConfig) (BenchResult, error) {
	return BenchResult{}, fmt.Errorf("sandbox: bench: %w", ErrUnsupported)
}
