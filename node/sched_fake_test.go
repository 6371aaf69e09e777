package node

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/testutil"
	"github.com/rads-lang/constellation/sandbox"
)

// fakeRuntime is an in-memory instances.Runtime: instances "run" as soon as they start, use
// no process, and exit when the test says so (Exit). Events reach OnEvent synchronously,
// in order, as the real runtime delivers them (never with the fake's lock held).
type fakeRuntime struct {
	cfg sandbox.Config

	mu        sync.Mutex // guards the following fields
	insts     map[string]*sandbox.Info
	waiters   map[string][]chan sandbox.Exit
	failStart map[string]bool // names whose Start fails
	creates   int
	closed    bool
}

func newFakeRuntime(cfg sandbox.Config) *fakeRuntime {
	return &fakeRuntime{cfg: cfg, insts: map[string]*sandbox.Info{}, waiters: map[string][]chan sandbox.Exit{}, failStart: map[string]bool{}}
}

// fakeOpener returns an openRuntime function and a pointer that receives the fake it opens.
func fakeOpener() (func(sandbox.Config) (instances.Runtime, error), func() *fakeRuntime) {
	var mu sync.Mutex
	var fr *fakeRuntime
	return func(c sandbox.Config) (instances.Runtime, error) {
			mu.Lock()
			defer mu.Unlock()
			fr = newFakeRuntime(c)
			return fr, nil
		}, func() *fakeRuntime {
			mu.Lock()
			defer mu.Unlock()
			return fr
		}
}

func (f *fakeRuntime) emit(typ sandbox.EventType, name string) {
	if f.cfg.OnEvent != nil {
		f.cfg.OnEvent(sandbox.Event{Type: typ, Instance: name, At: time.Now()})
	}
}

func (f *fakeRuntime) get(name string) (*sandbox.Info, error) {
	in, ok := f.insts[name]
	if !ok {
		return nil, fmt.Errorf("%w: instance %q", sandbox.ErrNotFound, name)
	}
	return in, nil
}

func (f *fakeRuntime) Create(spec sandbox.Spec) (sandbox.Info, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return sandbox.Info{}, sandbox.ErrClosed
	}
	if _, ok := f.insts[spec.Name]; ok {
		f.mu.Unlock()
		return sandbox.Info{}, fmt.Errorf("%w: %q", sandbox.ErrExists, spec.Name)
	}
	if err := os.MkdirAll(filepath.Join(f.cfg.StateDir, "run", spec.Name), 0o755); err != nil {
		f.mu.Unlock()
		return sandbox.Info{}, err
	}
	in := &sandbox.Info{Name: spec.Name, Spec: spec, State: sandbox.StateCreated}
	f.insts[spec.Name] = in
	f.creates++
	out := *in
	f.mu.Unlock()
	f.emit(sandbox.EventCreated, spec.Name)
	return out, nil
}

func (f *fakeRuntime) Start(name string) (sandbox.Info, error) {
	f.mu.Lock()
	in, err := f.get(name)
	if err != nil {
		f.mu.Unlock()
		return sandbox.Info{}, err
	}
	if in.State == sandbox.StateRunning {
		f.mu.Unlock()
		return *in, sandbox.ErrRunning
	}
	if f.failStart[name] {
		f.mu.Unlock()
		return sandbox.Info{}, fmt.Errorf("fake: start of %s fails", name)
	}
	if in.LastExit != nil {
		in.Restarts++
	}
	in.State, in.StartedAt, in.PID = sandbox.StateRunning, time.Now(), 1000+f.creates
	out := *in
	f.mu.Unlock()
	f.emit(sandbox.EventStarted, name)
	return out, nil
}

// Exit ends a running instance as the program would (code 0: exited, else failed).
func (f *fakeRuntime) Exit(name string, code int) error {
	return f.exit(name, sandbox.Exit{Reason: sandbox.ReasonExited, Code: code, At: time.Now()})
}

func (f *fakeRuntime) exit(name string, ex sandbox.Exit) error {
	f.mu.Lock()
	in, err := f.get(name)
	if err != nil || in.State != sandbox.StateRunning {
		f.mu.Unlock()
		if err == nil {
			err = sandbox.ErrNotRunning
		}
		return err
	}
	in.State, in.LastExit, in.PID = sandbox.StateExited, &ex, 0
	ws := f.waiters[name]
	delete(f.waiters, name)
	f.mu.Unlock()
	for _, w := range ws {
		w <- ex
	}
	f.emit(sandbox.EventExited, name)
	return nil
}

func (f *fakeRuntime) Stop(ctx context.Context, name string, grace time.Duration) error {
	err := f.exit(name, sandbox.Exit{Reason: sandbox.ReasonSignaled, Code: 15, Stopped: true, At: time.Now()})
	if err == sandbox.ErrNotRunning {
		return nil
	}
	return err
}

func (f *fakeRuntime) Restart(ctx context.Context, name string, grace time.Duration) (sandbox.Info, error) {
	if err := f.Stop(ctx, name, grace); err != nil {
		return sandbox.Info{}, err
	}
	return f.Start(name)
}

func (f *fakeRuntime) Destroy(ctx context.Context, name string, keepData bool) error {
	f.mu.Lock()
	in, err := f.get(name)
	if err == nil && in.State == sandbox.StateRunning {
		err = sandbox.ErrRunning
	}
	if err == nil {
		delete(f.insts, name)
		os.RemoveAll(filepath.Join(f.cfg.StateDir, "run", name))
	}
	f.mu.Unlock()
	if err == nil {
		f.emit(sandbox.EventDestroyed, name)
	}
	return err
}

func (f *fakeRuntime) Get(name string) (sandbox.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(name)
	if err != nil {
		return sandbox.Info{}, err
	}
	return *in, nil
}

func (f *fakeRuntime) List() []sandbox.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]sandbox.Info, 0, len(f.insts))
	for _, in := range f.insts {
		out = append(out, *in)
	}
	return out
}

// running lists the names of running instances, sorted.
func (f *fakeRuntime) running() []string {
	var out []string
	for _, in := range f.List() {
		if in.State == sandbox.StateRunning {
			out = append(out, in.Name)
		}
	}
	return out
}

func (f *fakeRuntime) SetLimits(name string, l sandbox.Limits) (sandbox.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(name)
	if err != nil {
		return sandbox.Info{}, err
	}
	in.Spec.Limits = l
	return *in, nil
}

func (f *fakeRuntime) Stats(name string) (sandbox.Stats, error) {
	in, err := f.Get(name)
	if err != nil {
		return sandbox.Stats{}, err
	}
	return sandbox.Stats{Uptime: time.Since(in.StartedAt), Restarts: in.Restarts, Limits: in.Spec.Limits}, nil
}

func (f *fakeRuntime) Wait(ctx context.Context, name string) (sandbox.Exit, error) {
	f.mu.Lock()
	in, err := f.get(name)
	if err != nil {
		f.mu.Unlock()
		return sandbox.Exit{}, err
	}
	if in.State != sandbox.StateRunning && in.LastExit != nil {
		ex := *in.LastExit
		f.mu.Unlock()
		return ex, nil
	}
	ch := make(chan sandbox.Exit, 1)
	f.waiters[name] = append(f.waiters[name], ch)
	f.mu.Unlock()
	select {
	case ex := <-ch:
		return ex, nil
	case <-ctx.Done():
		return sandbox.Exit{}, ctx.Err()
	}
}

func (f *fakeRuntime) Logs(ctx context.Context, name string, opt sandbox.LogOptions) (io.ReadCloser, error) {
	if _, err := f.Get(name); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader("")), nil
}

func (f *fakeRuntime) SaveSnapshot(ctx context.Context, instance, name string) (sandbox.Snapshot, error) {
	return sandbox.Snapshot{}, sandbox.ErrUnsupported
}

func (f *fakeRuntime) RestoreSnapshot(ctx context.Context, instance, tag string) error {
	return sandbox.ErrUnsupported
}

func (f *fakeRuntime) GetSnapshot(instance, tag string) (sandbox.Snapshot, error) {
	return sandbox.Snapshot{}, sandbox.ErrUnsupported
}

func (f *fakeRuntime) ListSnapshots(instance string) ([]sandbox.Snapshot, error) {
	return nil, sandbox.ErrUnsupported
}

func (f *fakeRuntime) DeleteSnapshot(instance, tag string) error { return sandbox.ErrUnsupported }

func (f *fakeRuntime) StopSignal(ctx context.Context, name string, sig syscall.Signal, grace time.Duration) error {
	err := f.exit(name, sandbox.Exit{Reason: sandbox.ReasonSignaled, Code: int(sig), Stopped: true, At: time.Now()})
	if err == sandbox.ErrNotRunning {
		return nil
	}
	return err
}

// RunDir is a directory per instance under the state directory, made at Create.
func (f *fakeRuntime) RunDir(name string) (string, error) {
	if _, err := f.Get(name); err != nil {
		return "", err
	}
	return filepath.Join(f.cfg.StateDir, "run", name), nil
}

func (f *fakeRuntime) WriteRunFile(name, file string, data []byte, perm os.FileMode) error {
	dir, err := f.RunDir(name)
	if err != nil {
		return err
	}
	p := filepath.Join(dir, file)
	os.Remove(p)
	return os.WriteFile(p, data, perm)
}

func (f *fakeRuntime) DiskQuotaMode() string { return "none" }

func (f *fakeRuntime) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

// schedNode is a started test node with a fake runtime.
type schedNode struct {
	*testNode
	fake func() *fakeRuntime
}

// rt returns the node's fake runtime (opened on first use).
func (sn *schedNode) rt(t testing.TB) *fakeRuntime {
	t.Helper()
	if _, err := sn.instances.Runtime(); err != nil {
		t.Fatalf("%s: runtime: %v", sn.cfg.Node, err)
	}
	return sn.fake()
}

// startSchedCluster starts count nodes with fake runtimes and labels from labels(i)
// (nil: none); every node joins the first. It waits until every node sees every node
// alive with a resource record.
func startSchedCluster(t testing.TB, count int, labels func(i int) map[string]string) []*schedNode {
	t.Helper()
	return startSchedClusterCfg(t, count, func(i int, c *Config) {
		if labels != nil {
			c.Labels = labels(i)
		}
	})
}

// startSchedClusterCfg is startSchedCluster with each node's config modified by mod.
func startSchedClusterCfg(t testing.TB, count int, mod func(i int, c *Config)) []*schedNode {
	t.Helper()
	return startSchedClusterWait(t, count, mod, false)
}

// startSchedClusterWait is startSchedClusterCfg; with allowSuspect the start waits until no
// node sees another as dead or missing (a suspect counts): with many nodes in one process on
// two shared cores, some pair is nearly always being probed late, so "all alive at the same
// instant" is a test of the machine's load, not of the cluster.
func startSchedClusterWait(t testing.TB, count int, mod func(i int, c *Config), allowSuspect bool) []*schedNode {
	t.Helper()
	var ns []*schedNode
	for i := 0; i < count; i++ {
		cfg := nodeConfig(t, fmt.Sprintf("n%d", i))
		cfg.GossipBatch = 5 * time.Millisecond
		if mod != nil {
			mod(i, &cfg)
		}
		if i > 0 {
			cfg.Join = []string{joinAddr(t, ns[0].Node)}
		}
		tn, err := newTestNode(t, cfg)
		if err != nil {
			t.Fatalf("New(%s): %v", cfg.Node, err)
		}
		open, get := fakeOpener()
		tn.instances.OpenRuntime = open
		if err := tn.Start(context.Background()); err != nil {
			t.Fatalf("Start(%s): %v", cfg.Node, err)
		}
		ns = append(ns, &schedNode{testNode: tn, fake: get})
	}
	testutil.WaitFor(t, 30*time.Second, "every node sees every node alive with resources", func() (bool, string) {
		for _, o := range ns {
			for _, x := range ns {
				if st := memberStatus(o.Node, x.ID().String()); st != api.StatusAlive && !(allowSuspect && st == api.StatusSuspect) {
					return false, fmt.Sprintf("%s sees %s as %q", o.cfg.Node, x.cfg.Node, st)
				}
				if _, ok := o.GetState(instances.CollResources, x.ID().String()); !ok {
					return false, fmt.Sprintf("%s has no resource record of %s", o.cfg.Node, x.cfg.Node)
				}
			}
		}
		return true, ""
	})
	return ns
}
