package share

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs"
)

// FS is what a share needs of the DFS (*dfs.Service).
type FS interface {
	Put(ctx context.Context, path string, r io.Reader, o dfs.PutOptions) (api.FSEntry, error)
	PutConflictCopy(ctx context.Context, name string, r io.Reader, o dfs.PutOptions) (api.FSEntry, error)
	Open(ctx context.Context, name string, version uint64) (io.ReadSeekCloser, api.FSEntry, error)
	List(prefix string, recursive bool) ([]api.FSEntry, error)
	Remove(name string, recursive bool) (int, error)
	Watch(pathOrPrefix string) (events <-chan api.FSEvent, lagged func() bool, cancel func(), err error)
}

// maxNotes bounds the errors and skipped paths a share reports.
const maxNotes = 10

// runner syncs one share: one goroutine that runs reconciliation rounds when local or DFS
// events settle (realtime) and every interval.
type runner struct {
	spec    Spec
	dir     string // where the state is persisted
	fs      FS
	self    string
	maxSize int64
	wait    time.Duration // debounce
	now     func() time.Time
	ready   func(ctx context.Context)
	// stepTimeout bounds one transfer (plus a second per MiB): a DFS write waiting for a
	// holder that died fails and is retried, instead of holding the share.
	stepTimeout time.Duration
	log         *slog.Logger
	met         *metrics

	st    State     // runner goroutine only
	cache hashCache // runner goroutine only

	mu     sync.Mutex // guards status
	status api.FSShare

	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *runner) snapshot() api.FSShare {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.LastErrors = append([]string(nil), s.LastErrors...)
	s.Skipped = append([]string(nil), s.Skipped...)
	return s
}

func (r *runner) setStatus(fn func(s *api.FSShare)) {
	r.mu.Lock()
	fn(&r.status)
	r.mu.Unlock()
}

// Kick asks for a round now.
func (r *runner) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// stop ends the runner and waits for it.
func (r *runner) stop() {
	r.cancel()
	<-r.done
}

// run is the runner's goroutine.
func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	var (
		localEv  chan fsnotify.Event
		localErr chan error
		remoteEv <-chan api.FSEvent
		unwatch  = func() {}
		w        *fsnotify.Watcher
	)
	if r.spec.Sync == Realtime {
		var err error
		w, err = fsnotify.NewWatcher()
		if err != nil {
			r.log.Warn("share: no file watcher; scanning every interval only", "share", r.spec.ID, "err", err)
		} else {
			defer w.Close()
			localEv, localErr = w.Events, w.Errors
			r.watchTree(w, r.spec.LocalDir)
		}
		remoteEv, unwatch = r.watchRemote()
		defer func() { unwatch() }()
	}
	tick := time.NewTicker(r.spec.Interval)
	defer tick.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	var pending time.Time // first event not yet handled by a round
	// schedule a round after quiet: local events wait the debounce (an editor's burst,
	// a file still being written), DFS events a tenth of it (each is a complete write)
	schedule := func(quiet time.Duration) {
		now := r.now()
		if pending.IsZero() {
			pending = now
		}
		d := quiet
		if left := 5*r.wait - now.Sub(pending); left < d { // a stream of events still syncs
			d = max(left, 0)
		}
		debounce.Reset(d)
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := time.Second
	round := func() {
		debounce.Stop()
		p := pending
		pending = time.Time{}
		if r.round(ctx, p) {
			backoff = time.Second
			retry.Stop()
			return
		}
		retry.Reset(backoff) // errors: try again soon, backing off up to the interval
		backoff = min(2*backoff, r.spec.Interval)
	}
	if r.ready != nil {
		r.ready(ctx)
	}
	if ctx.Err() != nil {
		return
	}
	round() // start-up reconciliation
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-localEv:
			if !ok {
				localEv = nil
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() && !IgnoredName(filepath.Base(ev.Name)) {
					r.watchTree(w, ev.Name) // a new subdirectory (and whatever it already holds)
				}
			}
			if !IgnoredName(filepath.Base(ev.Name)) {
				schedule(r.wait)
			}
		case err, ok := <-localErr:
			if !ok {
				localErr = nil
				continue
			}
			r.log.Warn("share: file watcher", "share", r.spec.ID, "err", err)
			schedule(r.wait) // an overflow loses events: a round finds the changes
		case _, ok := <-remoteEv:
			if !ok { // lagged, or the DFS is closing: watch again and reconcile in full
				unwatch()
				remoteEv, unwatch = nil, func() {}
				if ctx.Err() != nil {
					return
				}
				remoteEv, unwatch = r.watchRemote()
			}
			schedule(r.wait / 10)
		case <-debounce.C:
			round()
		case <-tick.C:
			round()
		case <-retry.C:
			round()
		case <-r.kick:
			round()
		}
	}
}

// watchTree adds watches for dir and every directory under it.
func (r *runner) watchTree(w *fsnotify.Watcher, dir string) {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if p != dir && IgnoredName(d.Name()) {
			return filepath.SkipDir
		}
		if err := w.Add(p); err != nil {
			r.log.Warn("share: cannot watch a directory; its changes are found by the periodic scan", "share", r.spec.ID, "dir", p, "err", err)
		}
		return nil
	})
}

func (r *runner) watchRemote() (<-chan api.FSEvent, func()) {
	ch, _, cancel, err := r.fs.Watch(r.spec.Path)
	if err != nil {
		r.log.Warn("share: cannot watch the DFS tree; scanning every interval only", "share", r.spec.ID, "err", err)
		return nil, func() {}
	}
	return ch, cancel
}

// full is the DFS path of a relative path.
func (r *runner) full(rel string) string { return r.spec.Path + "/" + rel }

// local is the local path of a relative path.
func (r *runner) local(rel string) string {
	return filepath.Join(r.spec.LocalDir, filepath.FromSlash(rel))
}

// round runs one reconciliation: scan both sides, plan, apply, persist. It reports
// whether every step succeeded.
func (r *runner) round(ctx context.Context, pending time.Time) bool {
	start := r.now()
	r.setStatus(func(s *api.FSShare) {
		if s.Status != "error" {
			s.Status = "syncing"
		}
	})
	var errs, notes []string
	fail := func(format string, args ...any) {
		r.met.errors.Inc()
		errs = append(errs, fmt.Sprintf(format, args...))
	}
	in, skipped, err := r.inputs(ctx, start)
	if err != nil {
		fail("%v", err)
		r.finish(errs, nil, 0)
		return false
	}
	for rel, why := range skipped {
		notes = append(notes, rel+": "+why)
	}
	plan := Plan(in)
	floor := r.st.Round
	if !pending.IsZero() && pending.After(floor) {
		floor = pending
	}
	var lags []time.Duration
	applied := 0
	conflictSeen := map[string]bool{}
	for _, a := range plan {
		if ctx.Err() != nil {
			saveState(r.dir, r.spec.ID, r.st) // closing: keep what the steps done recorded
			return false
		}
		if a.Op == Report {
			notes = append(notes, a.Path+": "+a.Reason)
			continue
		}
		if a.Class == BothChanged && (a.Op == Upload || a.Op == Download || a.Op == KeepLocal || a.Op == KeepRemote) && !conflictSeen[a.Path] {
			conflictSeen[a.Path] = true
			if in.Local[a.Path].Hash != "" && in.Remote[a.Path].CID != "" {
				r.met.conflicts.WithLabelValues(r.spec.Conflict).Inc()
				r.setStatus(func(s *api.FSShare) { s.Conflicts++ })
				r.log.Info("share: conflict", "share", r.spec.ID, "path", a.Path, "outcome", a.Reason)
			}
		}
		if err := r.applyBounded(ctx, a, in); err != nil {
			fail("%s %s: %v", a.Op, a.Path, err)
			continue
		}
		if a.Op == Adopt || a.Op == Forget {
			continue
		}
		r.met.applied.WithLabelValues(string(a.Op)).Inc()
		applied++
		base := a.Changed
		if base.IsZero() || base.Before(floor) {
			base = floor
		}
		if !base.IsZero() {
			lag := max(r.now().Sub(base), 0)
			lags = append(lags, lag)
			dir := "down"
			if a.Op == Upload || a.Op == DeleteRemote {
				dir = "up"
			}
			r.met.lag.WithLabelValues(dir).Observe(lag.Seconds())
		}
	}
	if len(errs) == 0 {
		r.st.Round = start
	}
	r.pruneHashes()
	if err := saveState(r.dir, r.spec.ID, r.st); err != nil {
		fail("saving the share's state: %v", err)
	}
	r.finish(errs, notes, applied, lags...)
	return len(errs) == 0
}

// pruneHashes keeps the content hashes of the CIDs the base still names (the state does
// not grow with every version ever moved).
func (r *runner) pruneHashes() {
	keep := make(map[string]bool, len(r.st.Base))
	for _, b := range r.st.Base {
		keep[b.CID] = true
	}
	for c := range r.st.Hashes {
		if !keep[c] {
			delete(r.st.Hashes, c)
		}
	}
}

// applyBounded is apply under the step timeout (scaled by the file's size).
func (r *runner) applyBounded(ctx context.Context, a Action, in Input) error {
	size := max(in.Local[a.Path].Size, in.Remote[a.Path].Size)
	ctx, cancel := context.WithTimeout(ctx, r.stepTimeout+time.Duration(size>>20)*time.Second)
	defer cancel()
	return r.apply(ctx, a, in)
}

// finish records a round's outcome in the status.
func (r *runner) finish(errs, notes []string, applied int, lags ...time.Duration) {
	r.met.rounds.Inc()
	sort.Strings(notes)
	if len(errs) > 0 {
		r.log.Warn("share: round had errors (retried next round)", "share", r.spec.ID, "errors", len(errs), "first", errs[0])
	}
	files := len(r.st.Base)
	end := r.now()
	r.setStatus(func(s *api.FSShare) {
		s.Rounds++
		s.Applied += uint64(applied)
		s.Files = files
		s.Errors = len(errs)
		s.LastErrors = head(errs)
		s.Skipped = head(notes)
		s.Status = "ok"
		if len(errs) > 0 {
			s.Status = "error"
		} else {
			s.LastSync = end
		}
		if len(lags) > 0 {
			s.LagMS = float64(lags[len(lags)-1]) / float64(time.Millisecond)
			r.met.lastLag.WithLabelValues(r.spec.ID).Set(lags[len(lags)-1].Seconds())
		}
	})
}

func head(xs []string) []string {
	if len(xs) > maxNotes {
		xs = xs[:maxNotes]
	}
	return append([]string(nil), xs...)
}

// inputs scans both sides. Paths changed on both sides that hold files of unknown
// content in the DFS are read once so that equal bytes are adopted, not a conflict.
func (r *runner) inputs(ctx context.Context, now time.Time) (Input, map[string]string, error) {
	if fi, err := os.Stat(r.spec.LocalDir); err != nil || !fi.IsDir() {
		return Input{}, nil, fmt.Errorf("local directory %s is gone or not a directory; recreate it or unshare", r.spec.LocalDir)
	}
	if _, err := os.Lstat(filepath.Join(r.spec.LocalDir, MarkerName)); err != nil {
		return Input{}, nil, fmt.Errorf("%s has no %s marker (is its disk mounted? was it recreated?): not syncing, so that nothing is deleted; "+
			"restore it with `touch %s` if the directory is right", r.spec.LocalDir, MarkerName, filepath.Join(r.spec.LocalDir, MarkerName))
	}
	local, skip, err := scanLocal(r.spec.LocalDir, r.spec.Path, r.maxSize, r.cache, now)
	if err != nil {
		return Input{}, nil, fmt.Errorf("scanning %s: %v", r.spec.LocalDir, err)
	}
	es, err := r.fs.List(r.spec.Path, true)
	if err != nil {
		return Input{}, nil, fmt.Errorf("listing %s: %v", r.spec.Path, err)
	}
	remote := map[string]Remote{}
	for _, e := range es {
		if !strings.HasPrefix(e.Path, r.spec.Path+"/") || strings.HasSuffix(e.Path, "/") {
			continue
		}
		rel := strings.TrimPrefix(e.Path, r.spec.Path+"/")
		if ignoredRel(rel) {
			continue
		}
		if e.Size > r.maxSize {
			skip[rel] = fmt.Sprintf("%d bytes in the DFS, more than the share's file size limit of %d", e.Size, r.maxSize)
			continue
		}
		remote[rel] = Remote{CID: e.CID, Size: e.Size, MTime: e.MTime, Writer: e.Writer, Mode: e.Mode, Hash: r.st.Hashes[e.CID]}
	}
	skipSet := map[string]bool{}
	for p := range skip {
		skipSet[p] = true
	}
	for p, l := range local {
		rm, ok := remote[p]
		b, hasB := r.st.Base[p]
		if !ok || rm.Hash != "" || rm.Size != l.Size || (hasB && (b.Hash == l.Hash || b.CID == rm.CID)) {
			continue
		}
		if h, err := r.hashRemote(ctx, r.full(p)); err == nil && h.cid == rm.CID {
			r.st.Hashes[h.cid] = h.hash
			rm.Hash = h.hash
			remote[p] = rm
		}
	}
	return Input{Local: local, Remote: remote, Base: r.st.Base, Skip: skipSet, Policy: r.spec.Conflict,
		Writable: r.spec.Writable, Self: r.self}, skip, nil
}

type cidHash struct{ cid, hash string }

func (r *runner) hashRemote(ctx context.Context, name string) (cidHash, error) {
	f, e, err := r.fs.Open(ctx, name, 0)
	if err != nil {
		return cidHash{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, r.maxSize+1)); err != nil {
		return cidHash{}, err
	}
	return cidHash{e.CID, hex.EncodeToString(h.Sum(nil))}, nil
}

// apply runs one step and updates the base.
func (r *runner) apply(ctx context.Context, a Action, in Input) error {
	switch a.Op {
	case Upload:
		return r.upload(ctx, a.Path, a.Path)
	case Download:
		if !r.localUnchanged(a.Path, in) {
			return fmt.Errorf("changed locally while syncing; retried next round")
		}
		return r.download(ctx, a.Path, a.Path)
	case DeleteRemote:
		if _, err := r.fs.Remove(r.full(a.Path), false); err != nil && !errors.Is(err, dfs.ErrNotFound) {
			return err
		}
		delete(r.st.Base, a.Path)
	case DeleteLocal:
		if !r.localUnchanged(a.Path, in) {
			return fmt.Errorf("changed locally while syncing; retried next round")
		}
		if err := os.Remove(r.local(a.Path)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		r.pruneDirs(a.Path)
		delete(r.st.Base, a.Path)
	case Adopt:
		l, rm := in.Local[a.Path], in.Remote[a.Path]
		r.st.Base[a.Path] = Synced{Hash: l.Hash, CID: rm.CID, Size: l.Size, MTime: l.MTime.UnixNano()}
	case Forget:
		delete(r.st.Base, a.Path)
	case KeepLocal:
		if err := copyFile(r.local(a.Path), r.local(a.Copy)); err != nil {
			return err
		}
		if r.spec.Writable {
			return r.upload(ctx, a.Copy, a.Copy)
		}
	case KeepRemote:
		if err := r.download(ctx, a.Path, a.Copy); err != nil {
			return err
		}
		return r.upload(ctx, a.Copy, a.Copy)
	}
	return nil
}

// localUnchanged reports whether the local file is still what the scan saw.
func (r *runner) localUnchanged(rel string, in Input) bool {
	l, had := in.Local[rel]
	fi, err := os.Lstat(r.local(rel))
	if errors.Is(err, os.ErrNotExist) {
		return !had
	}
	return err == nil && had && fi.Size() == l.Size && fi.ModTime().Equal(l.MTime)
}

// upload puts local file rel to the DFS name of as (a conflict name goes through
// PutConflictCopy) and records it as synced.
func (r *runner) upload(ctx context.Context, rel, as string) error {
	p := r.local(rel)
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file any more")
	}
	h := sha256.New()
	body := io.TeeReader(&capReader{r: f, left: r.maxSize}, h)
	o := dfs.PutOptions{Mode: uint32(fi.Mode().Perm())}
	var e api.FSEntry
	if _, ok := conflictBaseOf(as); ok {
		e, err = r.fs.PutConflictCopy(ctx, r.full(as), body, o)
	} else {
		e, err = r.fs.Put(ctx, r.full(as), body, o)
	}
	if err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	r.st.Base[as] = Synced{Hash: sum, CID: e.CID, Size: e.Size, MTime: fi.ModTime().UnixNano()}
	r.st.Hashes[e.CID] = sum
	r.met.bytes.WithLabelValues("up").Add(float64(e.Size))
	return nil
}

// download writes the DFS file of rel to the local file as, atomically (a temp file in
// the same directory, fsync, rename), and records it as synced.
func (r *runner) download(ctx context.Context, rel, as string) error {
	src, e, err := r.fs.Open(ctx, r.full(rel), 0)
	if err != nil {
		return err
	}
	defer src.Close()
	dst := r.local(as)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), tempPrefix+"*.tmp")
	if err != nil {
		return err
	}
	h := sha256.New()
	n, werr := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(src, r.maxSize+1))
	if werr == nil && n > r.maxSize {
		werr = fmt.Errorf("larger than the share's file size limit of %d", r.maxSize)
	}
	mode := os.FileMode(e.Mode & 0o777)
	if mode == 0 {
		mode = 0o644
	}
	if werr == nil {
		werr = tmp.Chmod(mode)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), dst)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return werr
	}
	fi, err := os.Lstat(dst)
	if err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	r.st.Base[as] = Synced{Hash: sum, CID: e.CID, Size: n, MTime: fi.ModTime().UnixNano()}
	r.st.Hashes[e.CID] = sum
	r.cache[as] = cachedHash{size: n, mtime: fi.ModTime().UnixNano(), hash: sum}
	r.met.bytes.WithLabelValues("down").Add(float64(n))
	return nil
}

// pruneDirs removes the directories a local delete left empty, up to the share's root.
func (r *runner) pruneDirs(rel string) {
	for d := filepath.Dir(r.local(rel)); d != r.spec.LocalDir && within(d, r.spec.LocalDir); d = filepath.Dir(d) {
		if os.Remove(d) != nil { // not empty (or gone): stop
			return
		}
	}
}

// copyFile copies src to dst atomically, keeping the mode and the modification time.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), tempPrefix+"*.tmp")
	if err != nil {
		return err
	}
	_, werr := io.Copy(tmp, in)
	if werr == nil {
		werr = tmp.Chmod(fi.Mode().Perm())
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chtimes(tmp.Name(), fi.ModTime(), fi.ModTime())
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), dst)
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

// capReader fails a read past its limit (a file that grew over the share's size limit
// while it was being uploaded is not stored cut short).
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, fmt.Errorf("grew past the share's file size limit while being uploaded")
	}
	return n, err
}
