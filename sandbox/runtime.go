package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"
)

// platform is the OS-specific half of the runtime (Linux: namespaces and cgroups;
// elsewhere: plain processes).
type platform interface {
	host() Host
	diskMode() string
	// checkSpec returns a *FieldError for what the platform cannot enforce (user
	// namespace, seccomp).
	checkSpec(spec *Spec) error
	// checkLimits returns a *FieldError wrapping ErrUnenforceable for a limit the host
	// cannot enforce.
	checkLimits(l Limits) error
	// create allocates the instance's cgroup and data layer. On error nothing is left.
	create(res *resources, spec *Spec) error
	// start launches the program (under the instance init where the platform has one);
	// the process is running when start returns. stdout, when not nil, replaces the
	// stdout pipe (Bench). The returned pipes carry the program's output.
	start(res *resources, spec *Spec, stdout *os.File) (process, runPipes, error)
	// adopt attaches to a running process started by an earlier runtime; withInit: it
	// is an instance init holding the pipes, which adopt takes back.
	adopt(res *resources, pid int, startTime uint64, withInit bool) (process, runPipes, error)
	setLimits(res *resources, l Limits) error
	// checkSetLimits rejects changes the platform cannot apply to an existing instance.
	checkSetLimits(res *resources, l Limits) error
	usage(res *resources) usage
	cpuNs(res *resources) uint64 // cheap: CPU time only
	oomKills(res *resources) uint64
	signalAll(res *resources, sig syscall.Signal)
	killAll(res *resources)
	freeze(res *resources, on bool) error
	// destroy removes the cgroup and, unless keepData, the data layer.
	destroy(res *resources, keepData bool) error
	// copyTree copies a data layer (preserving owners, modes, xattrs).
	copyTree(src, dst string) error
	// hasInit: runs start under an instance init holding their pipes.
	hasInit() bool
	// bridgeSubnet is the subnet bridge-mode instances get addresses from (false: no
	// bridge networking on this platform).
	bridgeSubnet() (netip.Prefix, bool)
	// adoptNet records the network of an instance of an earlier runtime; syncNet then
	// sets up the bridge (when an instance uses it) and rebuilds the rules.
	adoptNet(res *resources, spec *Spec)
	syncNet() error
	// close releases what the runtime holds without touching running instances;
	// teardown also unmounts the data filesystem and removes cgroup parents.
	close()
	teardown() error
}

// process is one running program.
type process interface {
	pid() int
	startTime() uint64
	// wait blocks until the process exits or close is called (errProcClosed).
	wait() (exitStatus, error)
	signal(sig syscall.Signal) error
	close()
}

type exitStatus struct {
	known    bool // false for re-adopted processes (not our child) without a status report
	signaled bool
	code     int   // exit code or signal number
	execErr  error // the init could not exec the program
}

var errProcClosed = errors.New("sandbox: process handle closed")

type usage struct {
	cpuNs  uint64
	memB   int64
	pids   int64
	diskB  int64
	limits Limits
}

// resources are the host resources of one instance (persisted).
type resources struct {
	Name    string `json:"name"`
	Dir     string `json:"dir"`      // instance state dir
	DataDir string `json:"data_dir"` // holds upper/ and work/
	ProjID  uint32 `json:"proj_id,omitempty"`
	Image   string `json:"image,omitempty"`   // per-instance ext4 image (DiskQuotaExt4)
	DiskMB  int64  `json:"disk_mb,omitempty"` // size of Image
	Cpuset  string `json:"cpuset,omitempty"`
	// HostUID is the host uid and gid that uid/gid 0 of the instance's user namespace
	// maps to (a range of 65536); 0 for a host_root instance (no user namespace).
	HostUID int `json:"host_uid,omitempty"`
	// UpperIno is the inode of the data layer's root when its owners were last checked
	// (a restored or kept layer is a new directory and is checked again at start).
	UpperIno uint64 `json:"upper_ino,omitempty"`
	// IP is eth0's address of a bridge-mode instance (from Config.BridgeSubnet); its
	// network namespace is bound at Dir/netns.
	IP string `json:"ip,omitempty"`
}

func (r *resources) upper() string { return filepath.Join(r.DataDir, "upper") }
func (r *resources) work() string  { return filepath.Join(r.DataDir, "work") }

// persisted is an instance's state.json.
type persisted struct {
	Spec      Spec      `json:"spec"`
	State     State     `json:"state"`
	PID       int       `json:"pid,omitempty"`
	StartTime uint64    `json:"start_time,omitempty"` // /proc/PID/stat starttime
	StartedAt time.Time `json:"started_at,omitzero"`
	LastExit  *Exit     `json:"last_exit,omitempty"`
	Restarts  int       `json:"restarts"`
	Attempts  int       `json:"attempts"` // consecutive restarts (backoff)
	OOMBase   uint64    `json:"oom_base"`
	Res       resources `json:"resources"`
	// Init: the run was started under the instance init, which holds the status and
	// output pipes (re-adoption takes them back). False for runs of older runtimes,
	// where the program is PID 1 and writes its log files itself.
	Init bool `json:"init,omitempty"`
}

// instance is the runtime's record of one instance.
type instance struct {
	name string

	mu sync.Mutex // guards the fields below
	st persisted
	// proc is the running process (nil when not running).
	proc process
	// runDone is closed when the current run has been handled.
	runDone chan struct{}
	// changed is closed and replaced on every state change (Wait).
	changed  chan struct{}
	timer    *time.Timer // pending restart
	stopping bool        // Stop/Destroy asked the current run to end
	// diskExceeded: the poll fallback killed the run for exceeding disk_mb.
	diskExceeded bool
	gone         bool      // destroyed
	cpuAt        time.Time // last Stats sample
	cpuNs        uint64
	// logs are the current run's log pumps; limiter rate-limits the instance's output
	// (all runs).
	logs    *runLogs
	limiter *rateLimiter
}

// Runtime runs and supervises the instances of one state directory. Methods are safe
// for concurrent use.
type Runtime struct {
	cfg  Config
	plat platform
	log  *slog.Logger

	mu        sync.Mutex // guards the fields below
	instances map[string]*instance
	closed    bool
	nextProj  uint32

	events *eventQueue
	wg     sync.WaitGroup // supervise goroutines and housekeeping
	stop   chan struct{}  // closed by Close
	once   sync.Once
}

// New opens the state directory, detects cgroups and the disk quota mode, and re-adopts
// instances that are still running.
func New(cfg Config) (*Runtime, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "instances"), 0o711); err != nil {
		return nil, fmt.Errorf("sandbox: state dir: %w", err)
	}
	plat, err := newPlatform(&cfg)
	if err != nil {
		return nil, err
	}
	r := &Runtime{
		cfg:       cfg,
		plat:      plat,
		log:       cfg.Logger,
		instances: map[string]*instance{},
		stop:      make(chan struct{}),
		nextProj:  1000,
	}
	r.events = newEventQueue(cfg.OnEvent)
	if err := r.load(); err != nil {
		r.events.close()
		plat.close()
		return nil, err
	}
	r.migrateSnapshots()
	r.wg.Add(1)
	go r.housekeep()
	return r, nil
}

// DiskQuotaMode reports how disk_mb is enforced (DiskQuotaXFS, DiskQuotaPoll or
// DiskQuotaNone).
func (r *Runtime) DiskQuotaMode() string { return r.plat.diskMode() }

// Host reports the machine limits specs are validated against.
func (r *Runtime) Host() Host { return r.plat.host() }

// load reads every instance's state and re-adopts running ones.
func (r *Runtime) load() error {
	dir := filepath.Join(r.cfg.StateDir, "instances")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "state.json"))
		if err != nil {
			continue // half-created or foreign: ignored
		}
		var st persisted
		if err := json.Unmarshal(b, &st); err != nil || st.Spec.Name != e.Name() {
			r.log.Warn("sandbox: unreadable instance state", "instance", e.Name(), "err", err)
			continue
		}
		if st.Res.ProjID >= r.nextProj {
			r.nextProj = st.Res.ProjID + 1
		}
		in := &instance{name: st.Spec.Name, st: st, changed: make(chan struct{})}
		r.instances[in.name] = in
		if st.Res.IP != "" {
			r.plat.adoptNet(&in.st.Res, &in.st.Spec)
		}
		in.mu.Lock()
		switch st.State {
		case StateRunning:
			p, pipes, err := r.plat.adopt(&in.st.Res, st.PID, st.StartTime, st.Init)
			if err == nil {
				in.proc = p
				in.logs = r.startLogsLocked(in, pipes)
				in.runDone = make(chan struct{})
				in.cpuAt, in.cpuNs = r.cfg.Now(), r.plat.cpuNs(&in.st.Res)
				r.persistLocked(in)
				r.emitLocked(in, Event{Type: EventAdopted, PID: p.pid()})
				r.wg.Add(1)
				go r.supervise(in, p, in.logs, in.runDone)
				break
			}
			// It ended while nobody watched.
			r.log.Info("sandbox: instance ended while unsupervised", "instance", in.name, "err", err)
			r.handleExitLocked(in, exitStatus{}, false)
		case StateRestarting:
			r.scheduleRestartLocked(in, 0)
		}
		in.mu.Unlock()
	}
	if err := r.plat.syncNet(); err != nil {
		r.log.Error("sandbox: bridge network of re-adopted instances", "err", err)
	}
	return nil
}

// Create validates spec, allocates the instance's cgroup and data layer and records it
// (state created). It does not start it. Data kept by an earlier Destroy(keepData) of
// the same name is reused.
func (r *Runtime) Create(spec Spec) (Info, error) {
	if spec.Network == "" {
		spec.Network = r.cfg.DefaultNetwork
	}
	if spec.Network == NetworkIsolated {
		spec.Network = NetworkNone
	}
	if err := spec.Validate(r.plat.host()); err != nil {
		return Info{}, err
	}
	if err := r.plat.checkLimits(spec.Limits); err != nil {
		return Info{}, err
	}
	if err := r.checkPaths(&spec); err != nil {
		return Info{}, err
	}
	if spec.HostRoot && !r.cfg.AllowHostRoot {
		return Info{}, fieldErr("host_root", ErrNotPermitted, "an instance without a user namespace runs as the host's root: this node needs --allow-host-root (sandbox Config.AllowHostRoot)")
	}
	if err := r.plat.checkSpec(&spec); err != nil {
		return Info{}, err
	}
	var profile []byte
	if spec.Seccomp != "" && spec.Seccomp != SeccompDefault && spec.Seccomp != SeccompUnconfined {
		b, err := loadSeccompProfile(spec.Seccomp, runtime.GOARCH)
		if err != nil {
			return Info{}, err
		}
		profile = b
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Info{}, ErrClosed
	}
	if _, dup := r.instances[spec.Name]; dup {
		r.mu.Unlock()
		return Info{}, fieldErr("name", ErrExists, "instance %q already exists", spec.Name)
	}
	in := &instance{name: spec.Name, changed: make(chan struct{})}
	in.st = persisted{Spec: spec, State: StateCreated}
	in.st.Res = resources{Name: spec.Name, Dir: filepath.Join(r.cfg.StateDir, "instances", spec.Name), ProjID: r.nextProj}
	if !spec.HostRoot {
		u, err := r.allocUIDLocked()
		if err != nil {
			r.mu.Unlock()
			return Info{}, err
		}
		in.st.Res.HostUID = u
	}
	if spec.Network == NetworkBridge {
		ip, err := r.allocIPLocked(&spec)
		if err != nil {
			r.mu.Unlock()
			return Info{}, err
		}
		in.st.Res.IP = ip
	}
	r.nextProj++
	if spec.CPUCores > 0 {
		in.st.Res.Cpuset = r.pickCoresLocked(spec.CPUCores, "")
	}
	r.instances[spec.Name] = in // reserve the name
	r.mu.Unlock()

	fail := func(err error) (Info, error) {
		r.mu.Lock()
		delete(r.instances, spec.Name)
		r.mu.Unlock()
		return Info{}, err
	}
	if err := os.Mkdir(in.st.Res.Dir, 0o711); err != nil {
		return fail(fmt.Errorf("sandbox: instance dir: %w", err))
	}
	if err := os.Mkdir(filepath.Join(in.st.Res.Dir, "root"), 0o700); err != nil {
		os.RemoveAll(in.st.Res.Dir)
		return fail(fmt.Errorf("sandbox: instance dir: %w", err))
	}
	if err := os.Mkdir(in.st.Res.runDir(), 0o755); err != nil {
		os.RemoveAll(in.st.Res.Dir)
		return fail(fmt.Errorf("sandbox: instance run dir: %w", err))
	}
	if profile != nil {
		if err := os.WriteFile(filepath.Join(in.st.Res.Dir, seccompFile), profile, 0o600); err != nil {
			os.RemoveAll(in.st.Res.Dir)
			return fail(fmt.Errorf("sandbox: seccomp profile: %w", err))
		}
	}
	if err := r.plat.create(&in.st.Res, &in.st.Spec); err != nil {
		os.RemoveAll(in.st.Res.Dir)
		return fail(err)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := r.persistLocked(in); err != nil {
		r.plat.destroy(&in.st.Res, false)
		os.RemoveAll(in.st.Res.Dir)
		return fail(err)
	}
	r.emitLocked(in, Event{Type: EventCreated})
	return in.infoLocked(), nil
}

// allocIPLocked checks spec's published host ports against the other instances and
// picks the lowest free bridge address (r.mu held).
func (r *Runtime) allocIPLocked(spec *Spec) (string, error) {
	subnet, ok := r.plat.bridgeSubnet()
	if !ok {
		return "", fieldErr("network", ErrUnenforceable, "no bridge networking on %s: use network %q", runtime.GOOS, NetworkHost)
	}
	used := map[netip.Addr]bool{}
	holder := map[string]string{}
	for _, in := range r.instances {
		if a, err := netip.ParseAddr(in.st.Res.IP); err == nil {
			used[a] = true
		}
		for _, p := range in.st.Spec.Publish {
			holder[p.hostKey()] = in.name
		}
	}
	for _, p := range spec.Publish {
		if h, ok := holder[p.hostKey()]; ok {
			return "", fieldErr("publish", ErrExists, "host port %s is already published by instance %q", p.hostKey(), h)
		}
	}
	a, ok := allocAddr(subnet, used)
	if !ok {
		return "", fieldErr("network", ErrUnenforceable, "every address of the bridge subnet %s is in use", subnet)
	}
	return a.String(), nil
}

// checkPaths verifies the code directory and the executable on the host.
func (r *Runtime) checkPaths(spec *Spec) error {
	if spec.Code != "" {
		code, err := filepath.EvalSymlinks(spec.Code)
		if err != nil {
			return fieldErr("code", ErrInvalidSpec, "%v", err)
		}
		ok := false
		for _, root := range r.cfg.CodeRoots {
			rr, err := filepath.EvalSymlinks(root)
			if err != nil {
				continue
			}
			if rel, err := filepath.Rel(rr, code); err == nil && localPath(rel) || rel == "." {
				ok = true
				break
			}
		}
		if !ok {
			return fieldErr("code", ErrPathNotAllowed, "%s is not under an allowed code root", spec.Code)
		}
		if fi, err := os.Stat(code); err != nil || !fi.IsDir() {
			return fieldErr("code", ErrInvalidSpec, "not a directory")
		}
		if err := checkMountOption(code); err != nil {
			return fieldErr("code", ErrInvalidSpec, "%v", err)
		}
		spec.Code = code
	}
	_, _, err := resolveExec(spec, r.cfg.SystemDirs)
	return err
}

// pickCoresLocked chooses n cores used by the fewest pinned instances (skipping self).
func (r *Runtime) pickCoresLocked(n int, self string) string {
	cpus := r.plat.host().CPUs
	use := make([]int, cpus)
	for name, in := range r.instances {
		if name == self {
			continue
		}
		for _, c := range parseCPUList(in.st.Res.Cpuset) {
			if c < cpus {
				use[c]++
			}
		}
	}
	idx := make([]int, cpus)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return use[idx[a]] < use[idx[b]] })
	chosen := slices.Clone(idx[:n])
	slices.Sort(chosen)
	return formatCPUList(chosen)
}

func (r *Runtime) get(name string) (*instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	in, ok := r.instances[name]
	if !ok {
		return nil, fmt.Errorf("sandbox: instance %q: %w", name, ErrNotFound)
	}
	return in, nil
}

// Start starts a created or exited instance. It returns once the program is exec'd.
func (r *Runtime) Start(name string) (Info, error) {
	return r.start(name, nil)
}

// start is Start with an optional stdout replacing the log file (Bench).
func (r *Runtime) start(name string, stdout *os.File) (Info, error) {
	in, err := r.get(name)
	if err != nil {
		return Info{}, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gone {
		return Info{}, fmt.Errorf("sandbox: instance %q: %w", name, ErrNotFound)
	}
	if in.st.State == StateRunning {
		return Info{}, fmt.Errorf("sandbox: instance %q: %w", name, ErrRunning)
	}
	if in.timer != nil {
		in.timer.Stop()
		in.timer = nil
	}
	in.st.Attempts = 0
	if err := r.startLocked(in, stdout); err != nil {
		return Info{}, err
	}
	return in.infoLocked(), nil
}

// startLocked launches one run; stdout replaces the stdout pipe when not nil.
func (r *Runtime) startLocked(in *instance, stdout *os.File) error {
	in.st.OOMBase = r.plat.oomKills(&in.st.Res)
	p, pipes, err := r.plat.start(&in.st.Res, &in.st.Spec, stdout)
	if err != nil {
		return err
	}
	in.proc = p
	in.st.Init = r.plat.hasInit()
	in.logs = r.startLogsLocked(in, pipes)
	in.stopping = false
	in.runDone = make(chan struct{})
	in.st.State = StateRunning
	in.st.PID = p.pid()
	in.st.StartTime = p.startTime()
	in.st.StartedAt = r.cfg.Now()
	// CPU counters are cumulative over the cgroup's life: the first interval starts here.
	in.cpuAt, in.cpuNs = in.st.StartedAt, r.plat.cpuNs(&in.st.Res)
	if err := r.persistLocked(in); err != nil {
		r.log.Warn("sandbox: persist", "instance", in.name, "err", err)
	}
	r.emitLocked(in, Event{Type: EventStarted, PID: p.pid()})
	r.wg.Add(1)
	go r.supervise(in, p, in.logs, in.runDone)
	return nil
}

// logDrain bounds how long the end of a run waits for its output to be written (the
// pipes reach end of file once every process of the instance is gone).
const logDrain = 5 * time.Second

// supervise waits for one run to end and applies the restart policy.
func (r *Runtime) supervise(in *instance, p process, logs *runLogs, done chan struct{}) {
	defer r.wg.Done()
	st, err := p.wait()
	if err != nil {
		return // runtime closing: the instance keeps running for the next runtime
	}
	// Everything the run wrote is in the log files before anyone sees it ended.
	logs.wait(logDrain)
	in.mu.Lock()
	defer in.mu.Unlock()
	p.close()
	if in.proc != p {
		return
	}
	r.handleExitLocked(in, st, true)
	close(done)
}

// handleExitLocked records the end of a run and restarts per policy.
func (r *Runtime) handleExitLocked(in *instance, st exitStatus, observed bool) {
	ex := Exit{At: r.cfg.Now(), Stopped: in.stopping, Code: st.code}
	switch {
	case st.execErr != nil:
		ex.Reason, ex.Code, ex.Error = ReasonStartFailed, -1, fmt.Sprintf("the init could not exec the program: %v", st.execErr)
	case !st.known:
		ex.Reason, ex.Code = ReasonUnknown, -1
	case st.signaled:
		ex.Reason = ReasonSignaled
	default:
		ex.Reason = ReasonExited
	}
	if r.plat.oomKills(&in.st.Res) > in.st.OOMBase && (ex.Reason != ReasonExited || ex.Code != 0) {
		ex.Reason = ReasonOOMKilled
	}
	if in.st.Res.DataDir != "" && ex.Reason != ReasonOOMKilled && in.diskExceeded {
		ex.Reason = ReasonDiskExceeded
	}
	in.diskExceeded = false
	in.proc = nil
	in.logs = nil
	in.st.PID, in.st.StartTime = 0, 0
	in.st.LastExit = &ex
	ran := ex.At.Sub(in.st.StartedAt)
	r.emitLocked(in, Event{Type: EventExited, Exit: &ex})
	pol := in.st.Spec.Restart.withDefaults()
	if ran >= time.Duration(pol.StableS)*time.Second {
		in.st.Attempts = 0
	}
	if !in.gone && pol.shouldRestart(ex, in.st.Attempts) {
		r.scheduleRestartLocked(in, pol.backoff(in.st.Attempts, r.cfg.Rand()))
	} else {
		in.st.State = StateExited
		in.notifyLocked()
	}
	r.persistLocked(in)
}

func (r *Runtime) scheduleRestartLocked(in *instance, delay time.Duration) {
	in.st.State = StateRestarting
	in.st.Attempts++
	in.notifyLocked()
	r.emitLocked(in, Event{Type: EventRestarting, Delay: delay})
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.timer != t || in.gone || in.st.State != StateRestarting || r.isClosed() {
			return
		}
		in.timer = nil
		in.st.Restarts++
		if err := r.startLocked(in, nil); err != nil {
			r.log.Warn("sandbox: restart failed", "instance", in.name, "err", err)
			ex := Exit{Reason: ReasonStartFailed, Code: -1, At: r.cfg.Now(), Error: err.Error()}
			in.st.LastExit = &ex
			r.emitLocked(in, Event{Type: EventExited, Exit: &ex})
			pol := in.st.Spec.Restart.withDefaults()
			if pol.shouldRestart(ex, in.st.Attempts) {
				r.scheduleRestartLocked(in, pol.backoff(in.st.Attempts, r.cfg.Rand()))
			} else {
				in.st.State = StateExited
				in.notifyLocked()
			}
			r.persistLocked(in)
		}
	})
	in.timer = t
}

func (r *Runtime) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Stop ends the instance: SIGTERM to the program's process group (the instance init
// forwards it), then after grace SIGKILL to the whole cgroup. A grace of 0 kills at
// once. A pending restart is cancelled. Stopping a stopped instance is a no-op.
func (r *Runtime) Stop(ctx context.Context, name string, grace time.Duration) error {
	return r.StopSignal(ctx, name, syscall.SIGTERM, grace)
}

// StopSignal is Stop with another first signal than SIGTERM (e.g. SIGINT or SIGQUIT for
// programs that shut down on those).
func (r *Runtime) StopSignal(ctx context.Context, name string, sig syscall.Signal, grace time.Duration) error {
	if sig <= 0 || sig > 64 {
		return fmt.Errorf("sandbox: stop signal %d: want 1-64 (e.g. 15 for SIGTERM): %w", sig, ErrInvalidSpec)
	}
	in, err := r.get(name)
	if err != nil {
		return err
	}
	return r.stopInstance(ctx, in, sig, grace)
}

// Signal sends sig to the instance's program and its process group (through the
// instance init). It is not a stop: a restart policy applies when the program exits.
func (r *Runtime) Signal(name string, sig syscall.Signal) error {
	if sig <= 0 || sig > 64 {
		return fmt.Errorf("sandbox: signal %d: want 1-64: %w", sig, ErrInvalidSpec)
	}
	in, err := r.get(name)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.proc == nil {
		return fmt.Errorf("sandbox: signal %q: %w", name, ErrNotRunning)
	}
	r.signalLocked(in, sig)
	return nil
}

// signalLocked signals a running instance: its init, which forwards to the program's
// process group; without an init (runs of older runtimes), every process.
func (r *Runtime) signalLocked(in *instance, sig syscall.Signal) {
	in.proc.signal(sig)
	if !in.st.Init {
		r.plat.signalAll(&in.st.Res, sig)
	}
}

func (r *Runtime) stopInstance(ctx context.Context, in *instance, sig syscall.Signal, grace time.Duration) error {
	in.mu.Lock()
	if in.timer != nil {
		in.timer.Stop()
		in.timer = nil
	}
	if in.st.State == StateRestarting {
		in.st.State = StateExited
		in.notifyLocked()
		r.persistLocked(in)
	}
	p, done := in.proc, in.runDone
	if p == nil {
		in.mu.Unlock()
		return nil
	}
	in.stopping = true
	if grace > 0 {
		r.signalLocked(in, sig)
	}
	in.mu.Unlock()
	if grace > 0 {
		t := time.NewTimer(grace)
		select {
		case <-done:
			t.Stop()
			return nil
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	in.mu.Lock()
	if in.proc == p {
		p.signal(syscall.SIGKILL)
		r.plat.killAll(&in.st.Res)
	}
	in.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sandbox: stop %q: %w", in.name, ctx.Err())
	case <-r.stop:
		return ErrClosed
	}
}

// Restart stops the instance (grace as in Stop) and starts it again with its current
// spec and limits.
func (r *Runtime) Restart(ctx context.Context, name string, grace time.Duration) (Info, error) {
	in, err := r.get(name)
	if err != nil {
		return Info{}, err
	}
	if err := r.stopInstance(ctx, in, syscall.SIGTERM, grace); err != nil {
		return Info{}, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gone {
		return Info{}, fmt.Errorf("sandbox: instance %q: %w", name, ErrNotFound)
	}
	if in.st.State == StateRunning { // someone else started it meanwhile
		return in.infoLocked(), nil
	}
	in.st.Restarts++
	in.st.Attempts = 0
	if err := r.startLocked(in, nil); err != nil {
		return Info{}, err
	}
	return in.infoLocked(), nil
}

// Destroy kills the instance and removes its cgroup, state and logs, and its data
// unless keepData (kept data is reused by a later Create of the same name).
func (r *Runtime) Destroy(ctx context.Context, name string, keepData bool) error {
	in, err := r.get(name)
	if err != nil {
		return err
	}
	if err := r.stopInstance(ctx, in, syscall.SIGKILL, 0); err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gone {
		return fmt.Errorf("sandbox: instance %q: %w", name, ErrNotFound)
	}
	in.gone = true
	err = r.plat.destroy(&in.st.Res, keepData)
	if rmErr := os.RemoveAll(in.st.Res.Dir); err == nil && rmErr != nil {
		err = fmt.Errorf("sandbox: remove state: %w", rmErr)
	}
	r.mu.Lock()
	delete(r.instances, name)
	r.mu.Unlock()
	r.emitLocked(in, Event{Type: EventDestroyed})
	in.notifyLocked()
	return err
}

// Wait blocks until the instance has exited and will not be restarted, and returns the
// last exit. An instance that never ran returns ErrNotRunning.
func (r *Runtime) Wait(ctx context.Context, name string) (Exit, error) {
	in, err := r.get(name)
	if err != nil {
		return Exit{}, err
	}
	for {
		in.mu.Lock()
		state, last, ch, gone := in.st.State, in.st.LastExit, in.changed, in.gone
		in.mu.Unlock()
		if (state == StateExited || gone) && last != nil {
			return *last, nil
		}
		if state == StateCreated || gone {
			return Exit{}, fmt.Errorf("sandbox: instance %q: %w", name, ErrNotRunning)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Exit{}, ctx.Err()
		case <-r.stop:
			return Exit{}, ErrClosed
		}
	}
}

// SetLimits changes the limits; a running instance gets them immediately (no restart).
// cpu_cores re-pins to the least used cores when the count changes.
func (r *Runtime) SetLimits(name string, l Limits) (Info, error) {
	in, err := r.get(name)
	if err != nil {
		return Info{}, err
	}
	if err := l.Validate(r.plat.host()); err != nil {
		return Info{}, err
	}
	if err := r.plat.checkLimits(l); err != nil {
		return Info{}, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := r.plat.checkSetLimits(&in.st.Res, l); err != nil {
		return Info{}, err
	}
	res := in.st.Res
	if l.CPUCores != in.st.Spec.CPUCores {
		res.Cpuset = ""
		if l.CPUCores > 0 {
			r.mu.Lock()
			res.Cpuset = r.pickCoresLocked(l.CPUCores, in.name)
			r.mu.Unlock()
		}
	}
	if err := r.plat.setLimits(&res, l); err != nil {
		return Info{}, err
	}
	in.st.Res = res
	in.st.Spec.Limits = l
	r.persistLocked(in)
	return in.infoLocked(), nil
}

// Get returns one instance's status.
func (r *Runtime) Get(name string) (Info, error) {
	in, err := r.get(name)
	if err != nil {
		return Info{}, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.infoLocked(), nil
}

// List returns every instance, sorted by name.
func (r *Runtime) List() []Info {
	r.mu.Lock()
	ins := make([]*instance, 0, len(r.instances))
	for _, in := range r.instances {
		ins = append(ins, in)
	}
	r.mu.Unlock()
	out := make([]Info, 0, len(ins))
	for _, in := range ins {
		in.mu.Lock()
		if !in.gone {
			out = append(out, in.infoLocked())
		}
		in.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stats reads the instance's resource usage from its cgroup and data layer.
func (r *Runtime) Stats(name string) (Stats, error) {
	in, err := r.get(name)
	if err != nil {
		return Stats{}, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	u := r.plat.usage(&in.st.Res)
	now := r.cfg.Now()
	s := Stats{
		RAMMB:      float64(u.memB) / (1 << 20),
		CPUSeconds: float64(u.cpuNs) / 1e9,
		DiskMB:     float64(u.diskB) / (1 << 20),
		PIDs:       u.pids,
		Restarts:   in.st.Restarts,
		Limits:     in.st.Spec.Limits,
	}
	if in.limiter != nil {
		s.LogDroppedBytes = in.limiter.dropped.Load()
	}
	if in.st.State == StateRunning {
		s.Uptime = now.Sub(in.st.StartedAt)
		from, base := in.cpuAt, in.cpuNs
		if dt := now.Sub(from); dt > 0 && u.cpuNs >= base {
			s.CPUPercent = float64(u.cpuNs-base) / float64(dt.Nanoseconds()) * 100
		}
		in.cpuAt, in.cpuNs = now, u.cpuNs
	}
	return s, nil
}

// Close stops supervising: goroutines end, running instances keep running and a new
// Runtime over the same StateDir re-adopts them. Safe to call twice.
func (r *Runtime) Close() error {
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		ins := make([]*instance, 0, len(r.instances))
		for _, in := range r.instances {
			ins = append(ins, in)
		}
		r.mu.Unlock()
		close(r.stop)
		for _, in := range ins {
			in.mu.Lock()
			if in.timer != nil {
				in.timer.Stop()
				in.timer = nil
			}
			if in.proc != nil {
				in.proc.close()
			}
			in.logs.close()
			in.mu.Unlock()
		}
		r.wg.Wait()
		r.events.close()
		r.plat.close()
	})
	return nil
}

// Teardown destroys every instance (data included), releases the data filesystem and
// cgroup parents, and closes the runtime. For tests and decommissioning.
func (r *Runtime) Teardown(ctx context.Context) error {
	var errs []error
	r.Close()
	r.mu.Lock()
	ins := r.instances
	r.instances = map[string]*instance{}
	r.mu.Unlock()
	for _, in := range ins {
		in.mu.Lock()
		in.gone = true
		r.plat.killAll(&in.st.Res)
		if err := r.plat.destroy(&in.st.Res, false); err != nil {
			errs = append(errs, err)
		}
		if err := os.RemoveAll(in.st.Res.Dir); err != nil {
			errs = append(errs, err)
		}
		in.mu.Unlock()
	}
	if err := r.plat.teardown(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// persistLocked writes state.json atomically.
func (r *Runtime) persistLocked(in *instance) error {
	if in.gone {
		return nil
	}
	b, err := json.Marshal(&in.st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(in.st.Res.Dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("sandbox: persist: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(in.st.Res.Dir, "state.json")); err != nil {
		return fmt.Errorf("sandbox: persist: %w", err)
	}
	return nil
}

func (in *instance) infoLocked() Info {
	return Info{
		Name:      in.name,
		Spec:      in.st.Spec,
		State:     in.st.State,
		PID:       in.st.PID,
		StartedAt: in.st.StartedAt,
		LastExit:  in.st.LastExit,
		Restarts:  in.st.Restarts,
		Cpuset:    in.st.Res.Cpuset,
		HostUID:   in.st.Res.HostUID,
		IP:        in.st.Res.IP,
	}
}

// notifyLocked wakes Wait callers.
func (in *instance) notifyLocked() {
	close(in.changed)
	in.changed = make(chan struct{})
}

func (r *Runtime) emitLocked(in *instance, ev Event) {
	ev.Instance = in.name
	ev.State = in.st.State
	if ev.Type == EventDestroyed {
		ev.State = StateExited
	}
	ev.Restarts = in.st.Restarts
	ev.At = r.cfg.Now()
	r.events.push(ev)
}

// housekeep rotates the logs of legacy runs and, in poll mode, enforces disk limits.
func (r *Runtime) housekeep() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.HousekeepInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		ins := make([]*instance, 0, len(r.instances))
		for _, in := range r.instances {
			ins = append(ins, in)
		}
		r.mu.Unlock()
		for _, in := range ins {
			in.mu.Lock()
			running, dir, limits, res, legacy := in.proc != nil, in.st.Res.Dir, in.st.Spec.Limits, in.st.Res, !in.st.Init
			in.mu.Unlock()
			if !running {
				continue
			}
			for _, s := range []Stream{Stdout, Stderr} {
				if !legacy {
					break // the log pumps rotate as they write
				}
				if err := rotateLegacyLog(dir, s, r.cfg.LogMaxBytes, r.cfg.LogFiles); err != nil && !errors.Is(err, fs.ErrNotExist) {
					r.log.Warn("sandbox: rotate log", "instance", in.name, "err", err)
				}
			}
			if r.plat.diskMode() == DiskQuotaPoll && limits.DiskMB > 0 {
				if u := r.plat.usage(&res); u.diskB > limits.DiskMB<<20 {
					in.mu.Lock()
					if in.proc != nil {
						r.log.Warn("sandbox: disk limit exceeded, killing", "instance", in.name, "disk_mb", u.diskB>>20)
						in.diskExceeded = true
						in.proc.signal(syscall.SIGKILL)
						r.plat.killAll(&in.st.Res)
					}
					in.mu.Unlock()
				}
			}
		}
	}
}

// eventQueue delivers events in order from one goroutine.
type eventQueue struct {
	fn   func(Event)
	mu   sync.Mutex // guards q and done
	q    []Event
	done bool
	wake chan struct{}
	exit chan struct{}
}

func newEventQueue(fn func(Event)) *eventQueue {
	e := &eventQueue{fn: fn, wake: make(chan struct{}, 1), exit: make(chan struct{})}
	if fn == nil {
		close(e.exit)
		return e
	}
	go e.run()
	return e
}

func (e *eventQueue) push(ev Event) {
	if e.fn == nil {
		return
	}
	e.mu.Lock()
	if !e.done {
		e.q = append(e.q, ev)
	}
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *eventQueue) run() {
	defer close(e.exit)
	for {
		e.mu.Lock()
		q, done := e.q, e.done
		e.q = nil
		e.mu.Unlock()
		for _, ev := range q {
			e.fn(ev)
		}
		if done && len(q) == 0 {
			return
		}
		if len(q) == 0 {
			<-e.wake
		}
	}
}

// close delivers what is queued, then stops the goroutine.
func (e *eventQueue) close() {
	e.mu.Lock()
	e.done = true
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	<-e.exit
}
