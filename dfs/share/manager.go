package share

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/api"
)

// DefaultMaxFileBytes is the largest file a share syncs (larger ones are reported).
const DefaultMaxFileBytes = 256 << 20

// Config configures the share service of a node. Zero values take the defaults.
type Config struct {
	// Dir holds the shares and their state (<data-dir>/dfs-shares).
	Dir string
	// DataDir is the node's data dir: it cannot be shared, nor any directory around it.
	DataDir string
	// Node is this node's name (conflict copies of local versions carry it).
	Node string
	// MaxFileBytes bounds the files synced (default DefaultMaxFileBytes).
	MaxFileBytes int64
	// Debounce is how long local and DFS events must settle before a round (default
	// 200 ms; a steady stream still syncs every 5 debounces).
	Debounce time.Duration
	// Ready, when set, is waited for before a share's first round: the node has caught up
	// with the cluster's namespace, so that a restart's reconciliation compares against
	// the DFS as it is now (not the view the node had when it stopped) and a change made
	// elsewhere meanwhile is seen as such (a conflict, not overwritten).
	Ready func(ctx context.Context)
	// StepTimeout bounds one upload or download, plus a second per MiB (default 2 min).
	StepTimeout time.Duration
	// Now is the wall clock (default time.Now).
	Now func() time.Time
	// Metrics registers the constellation_dfs_share_* collectors (nil: a private registry).
	Metrics prometheus.Registerer
	Log     *slog.Logger
}

// Manager runs the shares of a node: it persists them, resumes them at start and runs
// one runner per share until Close.
type Manager struct {
	cfg Config
	fs  FS
	ctx context.Context
	met *metrics

	mu      sync.Mutex // guards specs and runners; serialises Create and Remove
	specs   []Spec
	runners map[string]*runner
	closed  bool
}

// New builds the manager (Start resumes the persisted shares).
func New(ctx context.Context, cfg Config, fs FS) (*Manager, error) {
	if fs == nil || cfg.Dir == "" {
		return nil, fmt.Errorf("dfs share: New needs the DFS and a directory")
	}
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = DefaultMaxFileBytes
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 200 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = 2 * time.Minute
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	met, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, fs: fs, ctx: ctx, met: met, runners: map[string]*runner{}}, nil
}

// Start resumes the persisted shares: each reconciles what changed on both sides while
// the node was down, then keeps syncing. A share whose state cannot be read is reported
// (status error) and not run, never reset. A shares file that cannot be read is moved
// aside (shares.json.corrupt-<time>, kept for the operator) and the node runs no shares
// rather than not starting.
func (m *Manager) Start() error {
	specs, err := loadSpecs(m.cfg.Dir)
	if err != nil {
		file := filepath.Join(m.cfg.Dir, "shares.json")
		aside := file + ".corrupt-" + m.cfg.Now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(file, aside); rerr != nil {
			return fmt.Errorf("dfs share: %s: %w (and moving it aside failed: %v)", file, err, rerr)
		}
		m.cfg.Log.Error("share: the shares file cannot be read; moved aside, no share runs (share the directories again)",
			"file", aside, "err", err)
		specs = nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.specs = specs
	for _, s := range specs {
		m.startLocked(s)
	}
	return nil
}

func (m *Manager) startLocked(s Spec) {
	ctx, cancel := context.WithCancel(m.ctx)
	r := &runner{spec: s, dir: m.cfg.Dir, fs: m.fs, self: m.cfg.Node, maxSize: m.cfg.MaxFileBytes,
		wait: m.cfg.Debounce, now: m.cfg.Now, ready: m.cfg.Ready, stepTimeout: m.cfg.StepTimeout, log: m.cfg.Log, met: m.met, cache: hashCache{},
		kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	r.status = statusOf(s, "starting")
	m.runners[s.ID] = r
	m.met.shares.Set(float64(len(m.runners)))
	st, err := loadState(m.cfg.Dir, s.ID)
	if err != nil {
		r.status.Status = "error"
		r.status.Errors = 1
		r.status.LastErrors = []string{fmt.Sprintf("cannot read the share's state (%v); not syncing: unshare and share again to start over", err)}
		cancel()
		close(r.done)
		return
	}
	r.st = st
	go r.run(ctx)
}

func statusOf(s Spec, status string) api.FSShare {
	return api.FSShare{ID: s.ID, LocalDir: s.LocalDir, Path: s.Path, Sync: s.Sync, Interval: s.Interval.String(),
		Conflict: s.Conflict, Writable: s.Writable, Created: s.Created, Status: status}
}

// Create registers a share and starts it.
func (m *Manager) Create(req api.FSShareRequest) (api.FSShare, error) {
	s := Spec{LocalDir: req.LocalDir, Path: req.Path, Sync: req.Sync, Conflict: req.Conflict, Writable: req.Writable}
	if req.Interval != "" {
		d, err := time.ParseDuration(req.Interval)
		if err != nil {
			return api.FSShare{}, fmt.Errorf("%w: interval %q is not a duration such as 30s or 5m", ErrInvalid, req.Interval)
		}
		s.Interval = d
	}
	if err := s.Check(); err != nil {
		return api.FSShare{}, err
	}
	dir, err := ResolveDir(s.LocalDir)
	if err != nil {
		return api.FSShare{}, err
	}
	s.LocalDir, s.ID, s.Created = dir, IDOf(dir), m.cfg.Now().UTC()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return api.FSShare{}, fmt.Errorf("dfs share: the node is shutting down")
	}
	if err := Conflicts(s, m.specs, m.cfg.DataDir); err != nil {
		return api.FSShare{}, err
	}
	if err := os.WriteFile(filepath.Join(s.LocalDir, MarkerName), []byte("constellation shared directory "+s.ID+" <-> "+s.Path+"\n"), 0o644); err != nil {
		return api.FSShare{}, fmt.Errorf("%w: cannot write the share marker in %s: %v", ErrInvalid, s.LocalDir, err)
	}
	if err := os.Remove(statePath(m.cfg.Dir, s.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return api.FSShare{}, fmt.Errorf("dfs share: clearing an old state: %w", err)
	}
	specs := append(append([]Spec(nil), m.specs...), s)
	if err := saveSpecs(m.cfg.Dir, specs); err != nil {
		return api.FSShare{}, fmt.Errorf("dfs share: saving the shares: %w", err)
	}
	m.specs = specs
	m.startLocked(s)
	m.cfg.Log.Info("share: created", "share", s.ID, "dir", s.LocalDir, "path", s.Path, "sync", s.Sync, "conflict", s.Conflict, "writable", s.Writable)
	return m.runners[s.ID].snapshot(), nil
}

// List returns the shares with their status, sorted by local directory.
func (m *Manager) List() []api.FSShare {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []api.FSShare{}
	for _, s := range m.specs {
		if r := m.runners[s.ID]; r != nil {
			out = append(out, r.snapshot())
		} else {
			out = append(out, statusOf(s, "stopped")) // the node is shutting down
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LocalDir < out[j].LocalDir })
	return out
}

// find is the share named by its ID or its local directory.
func (m *Manager) findLocked(idOrDir string) (int, bool) {
	dir := idOrDir
	if real, err := filepath.EvalSymlinks(idOrDir); err == nil {
		dir = real
	}
	for i, s := range m.specs {
		if s.ID == idOrDir || s.LocalDir == filepath.Clean(dir) {
			return i, true
		}
	}
	return 0, false
}

// Remove stops a share and forgets it; the files stay on both sides.
func (m *Manager) Remove(idOrDir string) (api.FSShare, error) {
	if idOrDir == "" {
		return api.FSShare{}, fmt.Errorf("%w: name the share by its ID or local directory (see fs shares)", ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return api.FSShare{}, fmt.Errorf("dfs share: the node is shutting down")
	}
	i, ok := m.findLocked(idOrDir)
	if !ok {
		return api.FSShare{}, fmt.Errorf("%w: %s (see fs shares)", ErrNotFound, idOrDir)
	}
	s := m.specs[i]
	specs := append(append([]Spec(nil), m.specs[:i]...), m.specs[i+1:]...)
	if err := saveSpecs(m.cfg.Dir, specs); err != nil {
		return api.FSShare{}, fmt.Errorf("dfs share: saving the shares: %w", err)
	}
	m.specs = specs
	r := m.runners[s.ID]
	r.stop()
	delete(m.runners, s.ID)
	os.Remove(statePath(m.cfg.Dir, s.ID))
	m.met.shares.Set(float64(len(m.runners)))
	m.met.lastLag.DeleteLabelValues(s.ID)
	out := r.snapshot()
	out.Status = "stopped"
	m.cfg.Log.Info("share: removed", "share", s.ID, "dir", s.LocalDir)
	return out, nil
}

// Sync asks a share for a round now (tests and tools; rounds also run by themselves).
func (m *Manager) Sync(idOrDir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.findLocked(idOrDir)
	if !ok || m.closed {
		return fmt.Errorf("%w: %s", ErrNotFound, idOrDir)
	}
	m.runners[m.specs[i].ID].Kick()
	return nil
}

// Close stops every runner and waits for them. Safe twice.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	rs := m.runners
	m.runners = map[string]*runner{}
	m.mu.Unlock()
	for _, r := range rs {
		r.stop()
	}
}
