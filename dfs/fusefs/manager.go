package fusefs

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// Manager errors (the API answers 400, 404, 409).
var (
	ErrBadMount = errors.New("fusefs: bad mount")
	ErrNoMount  = errors.New("fusefs: no such mount")
	ErrBusy     = errors.New("fusefs: mount in use")
)

func init() {
	httpapi.Classify(http.StatusBadRequest, "bad_mount", ErrBadMount)
	httpapi.Classify(http.StatusNotFound, "not_found", ErrNoMount)
	httpapi.Classify(http.StatusConflict, "conflict", ErrBusy)
}

// OwnerAPI owns the mounts made through POST /v1/fs/mounts.
const OwnerAPI = "api"

// recordsFile, in the data dir, lists the mounts a node hosts, so the next start after a
// crash detaches them (they answer ENOTCONN once their server died).
const recordsFile = "fs-mounts.json"

// maxRecordsBytes bounds the records file.
const maxRecordsBytes = 1 << 20

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// DataDir holds the records file, the write buffers (fs-buffers/) and the mount
	// points of instances' mounts (fs-mounts/). Required.
	DataDir string
	// Timeout is every mount's cache time (Options.Timeout).
	Timeout time.Duration
	Log     *slog.Logger
}

// Manager hosts a node's mounts: those users ask for (fs mount) and those instances get
// (create --mount-fs), records them in the data dir and cleans what a crash left.
type Manager struct {
	be  Backend
	cfg ManagerConfig
	log *slog.Logger

	mu     sync.Mutex
	mounts map[string]*managed // by mount point
	closed bool
}

type managed struct {
	m       *Mount
	info    api.FSMount
	created time.Time     // monotonic: ReleaseInstance's order
	gone    chan struct{} // closed once the mount is taken out of the manager
	held    bool          // a hold request attached (guarded by Manager.mu)
}

// holdGrace is how long a mount asked for with Hold waits for its hold request before the
// node takes it for an orphan (its client died between the two calls) and unmounts it.
var holdGrace = 5 * time.Second // a var: tests shorten it

// NewManager detaches the mounts listed by a previous run's records (a crashed node's
// stale mounts) and returns an empty manager.
func NewManager(be Backend, cfg ManagerConfig) (*Manager, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("fusefs: manager needs a data dir")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	g := &Manager{be: be, cfg: cfg, log: cfg.Log, mounts: map[string]*managed{}}
	g.cleanStale()
	if err := os.MkdirAll(g.bufDir(), 0o700); err != nil {
		return nil, fmt.Errorf("fusefs: %w", err)
	}
	return g, nil
}

func (g *Manager) bufDir() string      { return filepath.Join(g.cfg.DataDir, "fs-buffers") }
func (g *Manager) instDir() string     { return filepath.Join(g.cfg.DataDir, "fs-mounts") }
func (g *Manager) recordsPath() string { return filepath.Join(g.cfg.DataDir, recordsFile) }

// cleanStale detaches every mount the records list and every leftover instance mount
// point, then empties the records.
func (g *Manager) cleanStale() {
	b, err := os.ReadFile(g.recordsPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		g.log.Warn("fusefs: reading the mount records", "err", err)
	}
	recs, err := decodeRecords(b)
	if err != nil {
		g.log.Warn("fusefs: ignoring the mount records", "file", g.recordsPath(), "err", err)
	}
	for _, r := range recs {
		stale := Stale(r.Dir)
		if err := Unmount(r.Dir); err != nil {
			g.log.Warn("fusefs: detaching a mount left by the last run", "dir", r.Dir, "err", err)
			continue
		}
		g.log.Info("fusefs: detached a mount left by the last run", "dir", r.Dir, "prefix", r.Prefix, "stale", stale)
	}
	if es, err := os.ReadDir(g.instDir()); err == nil {
		for _, e := range es {
			d := filepath.Join(g.instDir(), e.Name())
			Unmount(d)
			os.Remove(d)
		}
	}
	os.RemoveAll(g.bufDir())
	os.Remove(g.recordsPath())
}

// decodeRecords reads the records file (bounded; an empty input is no records).
func decodeRecords(b []byte) ([]api.FSMount, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) > maxRecordsBytes {
		return nil, fmt.Errorf("%d bytes, more than %d", len(b), maxRecordsBytes)
	}
	var recs []api.FSMount
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, err
	}
	out := recs[:0]
	for _, r := range recs {
		if filepath.IsAbs(r.Dir) && filepath.Clean(r.Dir) == r.Dir && r.Dir != "/" {
			out = append(out, r)
		}
	}
	return out, nil
}

// saveLocked writes the records (g.mu held).
func (g *Manager) saveLocked() {
	recs := g.listLocked()
	b, _ := json.Marshal(recs)
	tmp := g.recordsPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		err = os.Rename(tmp, g.recordsPath())
		if err != nil {
			g.log.Warn("fusefs: saving the mount records", "err", err)
		}
	}
}

func (g *Manager) listLocked() []api.FSMount {
	out := make([]api.FSMount, 0, len(g.mounts))
	for _, x := range g.mounts {
		out = append(out, x.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dir < out[j].Dir })
	return out
}

// List lists the mounts.
func (g *Manager) List() []api.FSMount {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.listLocked()
}

// forbiddenMountDirs are host directories no mount may cover or lie under.
var forbiddenMountDirs = []string{"/proc", "/sys", "/dev", "/run/secrets"}

// checkMountDir validates a mount point asked through the API: absolute and clean, an
// existing empty directory, not / and not in the kernel's or the node's own trees.
func (g *Manager) checkMountDir(dir string) error {
	switch {
	case dir == "":
		return fmt.Errorf("%w: no directory; give an empty directory such as /mnt/cluster", ErrBadMount)
	case !filepath.IsAbs(dir):
		return fmt.Errorf("%w: %q is not absolute; give an absolute path such as /mnt/cluster", ErrBadMount, dir)
	case filepath.Clean(dir) != dir:
		return fmt.Errorf("%w: %q is not clean (write it as %s)", ErrBadMount, dir, filepath.Clean(dir))
	case dir == "/":
		return fmt.Errorf("%w: cannot mount over /; give an empty directory such as /mnt/cluster", ErrBadMount)
	}
	for _, f := range append(forbiddenMountDirs, g.cfg.DataDir) {
		if dir == f || strings.HasPrefix(dir, f+"/") {
			return fmt.Errorf("%w: %s is under %s, where no mount may go", ErrBadMount, dir, f)
		}
	}
	es, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%w: %s: %v (create an empty directory first)", ErrBadMount, dir, err)
	}
	if len(es) > 0 {
		return fmt.Errorf("%w: %s is not empty (%d entries); mount on an empty directory", ErrBadMount, dir, len(es))
	}
	return nil
}

// Mount mounts a DFS prefix at a directory of the host (fs mount).
func (g *Manager) Mount(q api.FSMountRequest) (api.FSMount, error) {
	if q.Prefix == "" {
		q.Prefix = "/"
	}
	prefix, err := dfs.CleanPrefix(q.Prefix)
	if err != nil {
		return api.FSMount{}, err
	}
	g.mu.Lock()
	_, taken := g.mounts[q.Dir]
	g.mu.Unlock()
	if taken {
		return api.FSMount{}, fmt.Errorf("%w: %s is already a mount of this node (fs mounts)", ErrBusy, q.Dir)
	}
	if err := g.checkMountDir(q.Dir); err != nil {
		return api.FSMount{}, err
	}
	grace := holdGrace // read here, on the caller's goroutine (tests change it)
	info, err := g.mount(q.Dir, prefix, q.ReadOnly, OwnerAPI, 0, 0)
	if err == nil && q.Hold {
		g.mu.Lock()
		x := g.mounts[q.Dir]
		g.mu.Unlock()
		if x != nil {
			// Ends with the mount (gone) or the grace; the manager's Close closes gone.
			go func() {
				t := time.NewTimer(grace)
				defer t.Stop()
				select {
				case <-x.gone:
					return
				case <-t.C:
				}
				g.mu.Lock()
				orphan := g.mounts[q.Dir] == x && !x.held
				g.mu.Unlock()
				if orphan {
					if err := g.Unmount(q.Dir); err == nil {
						g.log.Info("fusefs: unmounted a mount whose holder never came", "dir", q.Dir)
					}
				}
			}()
		}
	}
	return info, err
}

func (g *Manager) mount(dir, prefix string, ro bool, owner string, uid, gid int) (api.FSMount, error) {
	m, err := New(dir, g.be, Options{Prefix: prefix, ReadOnly: ro, TempDir: g.bufDir(), Timeout: g.cfg.Timeout,
		Log: g.log, UID: uint32(uid), GID: uint32(gid)})
	if err != nil {
		return api.FSMount{}, err
	}
	info := api.FSMount{Dir: dir, Prefix: prefix, ReadOnly: ro, Owner: owner, Since: time.Now().UTC()}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		m.Close()
		return api.FSMount{}, fmt.Errorf("%w: the node is stopping", dfs.ErrClosed)
	}
	g.mounts[dir] = &managed{m: m, info: info, created: time.Now(), gone: make(chan struct{})}
	g.saveLocked()
	return info, nil
}

// Unmount unmounts an API mount (instances' mounts go with their instance).
func (g *Manager) Unmount(dir string) error {
	g.mu.Lock()
	x, ok := g.mounts[dir]
	if ok && x.info.Owner != OwnerAPI {
		g.mu.Unlock()
		return fmt.Errorf("%w: %s belongs to %s; it goes when the instance stops", ErrBusy, dir, x.info.Owner)
	}
	delete(g.mounts, dir)
	g.saveLocked()
	g.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s (fs mounts lists them)", ErrNoMount, dir)
	}
	close(x.gone)
	return x.m.Close()
}

// InstanceMount mounts a DFS prefix for an instance at a new directory under the data
// dir, its files owned by uid and gid (the host ids the instance's program runs as), and
// returns it; the sandbox binds it into the instance. ReleaseInstance unmounts it.
func (g *Manager) InstanceMount(instance, prefix string, ro bool, uid, gid int) (string, error) {
	p, err := dfs.CleanPrefix(prefix)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(g.instDir(), 0o700); err != nil {
		return "", err
	}
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r == '.' {
			return '_'
		}
		return r
	}, instance)
	dir, err := os.MkdirTemp(g.instDir(), safe+"-")
	if err != nil {
		return "", err
	}
	if _, err := g.mount(dir, p, ro, "instance "+instance, uid, gid); err != nil {
		os.Remove(dir)
		return "", err
	}
	return dir, nil
}

// ReleaseInstance unmounts the mounts of an instance made before the given time (zero:
// all): an exit seen late must not take the views of the start that followed it.
func (g *Manager) ReleaseInstance(instance string, before time.Time) {
	owner := "instance " + instance
	g.mu.Lock()
	var drop []*managed
	for d, x := range g.mounts {
		if x.info.Owner == owner && (before.IsZero() || x.created.Before(before)) {
			drop = append(drop, x)
			delete(g.mounts, d)
			close(x.gone)
		}
	}
	if len(drop) > 0 {
		g.saveLocked()
	}
	g.mu.Unlock()
	for _, x := range drop {
		if err := x.m.Close(); err != nil {
			g.log.Warn("fusefs: unmounting an instance's mount", "instance", instance, "err", err)
		}
		os.Remove(x.info.Dir)
	}
}

// Close unmounts everything (node stop), all mounts at once: one still held (an
// instance's view) costs its grace once, not once per mount.
func (g *Manager) Close() error {
	g.mu.Lock()
	g.closed = true
	all := g.mounts
	g.mounts = map[string]*managed{}
	g.saveLocked()
	g.mu.Unlock()
	for _, x := range all {
		close(x.gone)
	}
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs []error
	)
	for _, x := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := x.m.Close(); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
			if strings.HasPrefix(x.info.Dir, g.instDir()+"/") {
				os.Remove(x.info.Dir)
			}
		}()
	}
	wg.Wait()
	os.Remove(g.recordsPath())
	return errors.Join(errs...)
}

// gone is closed once the API mount at dir is unmounted (nil: there is none).
func (g *Manager) goneCh(dir string) (<-chan struct{}, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	x, ok := g.mounts[dir]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %s (fs mounts lists them)", ErrNoMount, dir)
	case x.info.Owner != OwnerAPI:
		return nil, fmt.Errorf("%w: %s belongs to %s", ErrBusy, dir, x.info.Owner)
	}
	return x.gone, nil
}

// handleHold ties an API mount to the request: when the client goes away (fs mount
// interrupted, or killed), the mount is unmounted. An SSE stream of keepalives; it ends
// with an "unmounted" event when the mount goes another way (fs umount, node stop).
func (g *Manager) handleHold(w http.ResponseWriter, r *http.Request) {
	dir := r.URL.Query().Get("dir")
	gone, err := g.goneCh(dir)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	g.mu.Lock()
	if x := g.mounts[dir]; x != nil {
		x.held = true
	}
	g.mu.Unlock()
	sse, err := httpapi.StartSSE(w, "holding "+dir)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-gone:
			_ = sse.Send(1, "unmounted", []byte(`{"dir":`+strconv.Quote(dir)+`}`))
			return
		case <-keep.C:
			if sse.Comment("keepalive") == nil {
				continue
			}
		case <-r.Context().Done():
		}
		if err := g.Unmount(dir); err != nil && !errors.Is(err, ErrNoMount) {
			g.log.Warn("fusefs: unmounting a mount whose holder went away", "dir", dir, "err", err)
		} else if err == nil {
			g.log.Info("fusefs: unmounted a mount whose holder went away", "dir", dir)
		}
		return
	}
}

// Router is where Register adds the routes (*httpapi.Server).
type Router interface {
	Handle(pattern string, h http.HandlerFunc)
}

// Register adds POST, GET and DELETE /v1/fs/mounts and GET /v1/fs/mounts/hold.
func (g *Manager) Register(r Router) {
	r.Handle("GET /v1/fs/mounts/hold", g.handleHold)
	r.Handle("POST /v1/fs/mounts", func(w http.ResponseWriter, r *http.Request) {
		var q api.FSMountRequest
		if !httpapi.Decode(w, r, &q) {
			return
		}
		m, err := g.Mount(q)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusCreated, m)
	})
	r.Handle("GET /v1/fs/mounts", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, g.List())
	})
	r.Handle("DELETE /v1/fs/mounts", func(w http.ResponseWriter, r *http.Request) {
		if err := g.Unmount(r.URL.Query().Get("dir")); err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, api.FSCount{Count: 1})
	})
}
