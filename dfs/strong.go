package dfs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
)

// Strong trees (fs init --consistency strong). Every version of a path of a strong tree is
// committed through the lock service (package locks, reached through Consensus): a
// compare-and-set of the key path+"#fs" (StrongKey), expecting the revision the writer read and
// carrying the writer's fencing token, whose value is the StrongRecord of the new version.
// Only after the compare-and-set succeeded is the namespace entry published (the CRDT, for
// listing, watch and versions); reads of the current version of a strong path go through
// the linearizable Get and fetch the blocks of the committed CID. Holders remember, per
// path, the highest fencing token of the pin requests they served and refuse older ones.

// Tree consistency modes (api.FSTree.Consistency).
const (
	Eventual = "eventual"
	Strong   = "strong"
)

// committedPolicy is the Resolve policy of strong trees: the entry of the latest committed
// revision wins, there are no conflict copies.
const committedPolicy = "committed"

// Limits of strong trees.
const (
	// StrongKeySuffix makes a path's key at the lock service: the lock service takes DFS
	// paths with a "#property" suffix as keys (locks.CheckKey).
	StrongKeySuffix = "#fs"
	// maxStrongValue bounds a committed record read from the lock service.
	maxStrongValue = 64 << 10
	// strongAttempts bounds the compare-and-set retries of one write when other writers
	// commit the same path in between.
	strongAttempts = 16
	// maxFencedPaths bounds the holder's memory of tokens (older entries are forgotten:
	// the lock service's compare-and-set still refuses their stale tokens).
	maxFencedPaths = 1 << 16
	// strongOpTimeout bounds a strong mutation started without a deadline (Remove, Move,
	// Revert, Restore from Go callers).
	strongOpTimeout = 30 * time.Second
)

// Errors of strong trees.
var (
	// ErrUnavailable: a strong tree cannot be written or read here now (no lock service,
	// no quorum); the message names the reason.
	ErrUnavailable = errors.New("dfs: unavailable")
	// ErrConflict: a request contradicts the stored state (a consistency change of a tree
	// with files; a path that kept changing during a write).
	ErrConflict = errors.New("dfs: conflict")
)

func init() {
	httpapi.Classify(http.StatusServiceUnavailable, "unavailable", ErrUnavailable)
	httpapi.Classify(http.StatusConflict, "conflict", ErrConflict)
	httpapi.ClassifyFunc(http.StatusConflict, "stale_token", func(err error) (string, bool) {
		var se *StaleTokenError
		if errors.As(err, &se) {
			return se.Error(), true
		}
		return "", false
	})
}

// Consensus is what strong trees need of the lock service (package locks): a linearizable
// compare-and-set and read of a key. Errors are *httpapi.Error values (503 unavailable,
// 409 conflict, 409 stale_token), passed through to the user.
type Consensus interface {
	// CAS sets key's value when its current revision is expectRev (0: must not exist) and
	// token (0: unfenced) is >= the highest fencing token already seen for key; it returns
	// the new revision.
	CAS(ctx context.Context, key string, expectRev uint64, value []byte, token uint64) (rev uint64, err error)
	// Get is a linearizable read: the value and revision (0: absent).
	Get(ctx context.Context, key string) (value []byte, rev uint64, err error)
}

// StrongRecord is the value of a strong path's key at the lock service: the committed
// version (deletions too) and the fencing token it was written with.
type StrongRecord struct {
	Path  string  `cbor:"1,keyasint"`
	Cur   Version `cbor:"2,keyasint"`
	Token uint64  `cbor:"3,keyasint,omitempty"`
}

// StrongKey is a path's key at the lock service.
func StrongKey(path string) string { return path + StrongKeySuffix }

// decodeStrong decodes the committed record of path (bounded; the record must name path).
func decodeStrong(path string, b []byte) (StrongRecord, error) {
	var r StrongRecord
	if len(b) > maxStrongValue {
		return r, fmt.Errorf("dfs: committed record of %s: %d bytes, more than %d", path, len(b), maxStrongValue)
	}
	if err := state.Decode(b, &r); err != nil {
		return r, fmt.Errorf("dfs: committed record of %s: %v", path, err)
	}
	if r.Path != path {
		return r, fmt.Errorf("dfs: committed record of %s names %q", path, r.Path)
	}
	if !r.Cur.Deleted && r.Cur.CID == "" {
		return r, fmt.Errorf("dfs: committed record of %s has no CID", path)
	}
	if r.Cur.Size < 0 || len(r.Cur.Holders) > MaxReplication {
		return r, fmt.Errorf("dfs: committed record of %s: size %d, %d holders", path, r.Cur.Size, len(r.Cur.Holders))
	}
	return r, nil
}

// StaleTokenError: a write carried a fencing token older than one already seen for the
// path (by a holder or by the lock service). The API answers 409 stale_token.
type StaleTokenError struct {
	Node  string // the holder that refused ("" : the lock service)
	Path  string
	Token uint64 // the write's token
	Seen  uint64 // the newest token seen for the path
}

func (e *StaleTokenError) Error() string {
	who := "the lock service"
	if e.Node != "" {
		who = "node " + e.Node
	}
	return fmt.Sprintf("dfs: stale lock token for %s: the write carries token %d but %s already saw token %d; acquire the lock again (fs lock) and write with its new token",
		e.Path, e.Token, who, e.Seen)
}

// fence records token as seen for path on this holder and refuses a token older than the
// newest one seen (0: an unfenced write, not checked).
func (s *Service) fence(path string, token uint64) error {
	if token == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if seen := s.tokens[path]; token < seen {
		return &StaleTokenError{Node: s.cfg.NodeName, Path: path, Token: token, Seen: seen}
	}
	if _, ok := s.tokens[path]; !ok && len(s.tokens) >= maxFencedPaths {
		for p := range s.tokens { // forget one (the lock service still fences it)
			delete(s.tokens, p)
			break
		}
	}
	s.tokens[path] = token
	return nil
}

// policyOf is the Resolve policy of a tree.
func policyOf(t TreeRecord) string {
	if t.Consistency == Strong {
		return committedPolicy
	}
	return t.Conflict
}

// isStrong reports whether path belongs to a strong tree.
func (s *Service) isStrong(path string) bool {
	strong := false
	s.st.View(func(v *state.View) { strong = s.treeOf(v, path).Consistency == Strong })
	return strong
}

// committed is what the lock service holds for a path.
type committed struct {
	rec StrongRecord
	rev uint64 // the revision to expect in the next compare-and-set (0: absent)
	ok  bool   // a record exists (a deletion too)
}

// live is the committed current version, if the path shows a file.
func (c committed) live() (Version, bool) {
	return c.rec.Cur, c.ok && !c.rec.Cur.Deleted
}

// strongGet reads a path's committed record (linearizable).
func (s *Service) strongGet(ctx context.Context, path string) (committed, error) {
	if s.cfg.Consensus == nil {
		return committed{}, noLockService(path)
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.StrongTimeout)
	defer cancel()
	b, rev, err := s.cfg.Consensus.Get(cctx, StrongKey(path))
	if err != nil {
		var he *httpapi.Error
		if errors.As(err, &he) && he.Status == http.StatusNotFound {
			return committed{}, nil
		}
		return committed{}, consensusErr(path, "read", err)
	}
	if rev == 0 || len(b) == 0 {
		return committed{rev: rev}, nil
	}
	rec, err := decodeStrong(path, b)
	if err != nil {
		return committed{}, err
	}
	return committed{rec: rec, rev: rev, ok: true}, nil
}

func noLockService(path string) error {
	return fmt.Errorf("%w: %s is in a strong tree and this node has no lock service (no Raft lock group configured); strong trees are written and read through it", ErrUnavailable, path)
}

// consensusErr passes a lock service error through with the path and operation named.
func consensusErr(path, op string, err error) error {
	var he *httpapi.Error
	if errors.As(err, &he) {
		return &httpapi.Error{Status: he.Status, Code: he.Code, Msg: fmt.Sprintf("dfs: strong %s of %s: %s", op, path, he.Msg)}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: strong %s of %s: the lock service did not answer: %v", ErrUnavailable, op, path, err)
	}
	return fmt.Errorf("%w: strong %s of %s: %v", ErrUnavailable, op, path, err)
}

func isCode(err error, code string) bool {
	var he *httpapi.Error
	return errors.As(err, &he) && he.Code == code
}

// setStrong commits path's next version through the lock service and then publishes it
// in the namespace. mk builds the new version from the committed current one (nil: none);
// it is called again when another writer committed in between (the compare-and-set
// failed with a revision conflict). pre, when set, is a record read just before.
func (s *Service) setStrong(ctx context.Context, path string, token uint64, pre *committed, mk func(prev *Version) (Version, error)) (EntryRecord, error) {
	if s.cfg.Consensus == nil {
		return EntryRecord{}, noLockService(path)
	}
	for range strongAttempts {
		c := pre
		pre = nil
		if c == nil {
			got, err := s.strongGet(ctx, path)
			if err != nil {
				return EntryRecord{}, err
			}
			c = &got
		}
		var prev *Version
		if c.ok {
			p := c.rec.Cur
			prev = &p
		}
		v, err := mk(prev)
		if err != nil {
			return EntryRecord{}, err
		}
		var es []EntryRecord
		s.st.View(func(vw *state.View) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if st := s.idx[path]; st != nil {
				es = readEntries(vw, path, st.writers)
			}
		})
		v.Writer, v.WriterID, v.HLC, v.Rev = s.cfg.NodeName, s.self, s.stamp(es), 0
		v.Number = nextNumber(es)
		if prev != nil {
			v.Number = max(v.Number, prev.Number+1)
		}
		b, err := state.Encode(StrongRecord{Path: path, Cur: v, Token: token})
		if err != nil {
			return EntryRecord{}, err
		}
		cctx, cancel := context.WithTimeout(ctx, s.cfg.StrongTimeout)
		rev, err := s.cfg.Consensus.CAS(cctx, StrongKey(path), c.rev, b, token)
		cancel()
		if isCode(err, "conflict") {
			s.met.strongRetries.Inc()
			continue // another writer committed first: build on its version
		}
		if err != nil {
			if isCode(err, "stale_token") {
				s.met.staleTokens.Inc()
			}
			return EntryRecord{}, consensusErr(path, "write", err)
		}
		v.Rev = rev
		s.met.strongCommits.Inc()
		return s.publish(path, v, prev)
	}
	return EntryRecord{}, fmt.Errorf("%w: %s was committed by other writers %d times while this write tried; write again (or hold its lock: fs lock)", ErrConflict, path, strongAttempts)
}

// publish writes this node's namespace entry of a committed version (its history keeps the
// committed previous version even when its entry has not arrived here yet).
func (s *Service) publish(path string, v Version, prev *Version) (EntryRecord, error) {
	rec, err := s.commit(path, func(es []EntryRecord, tree TreeRecord) (*EntryRecord, error) {
		r := s.newRecord(path, es, tree, v)
		r.Cur = v
		if prev != nil && !prev.Deleted && (len(r.History) == 0 || r.History[0].Number < prev.Number) && tree.Versions > 1 {
			r.History = append([]Version{*prev}, r.History...)
			if len(r.History) > tree.Versions-1 {
				r.History = r.History[:tree.Versions-1]
			}
		}
		return &r, nil
	})
	if err != nil {
		// committed but not published: reads (through the lock service) see it, listing
		// shows it after the path's next write
		s.log.Warn("strong write committed but its namespace entry failed", "path", path, "rev", v.Rev, "err", err)
		return EntryRecord{Path: path, Cur: v}, nil
	}
	return rec, nil
}

// setVersion writes v as path's next version: through the lock service in a strong tree,
// else as this node's namespace entry.
func (s *Service) setVersion(ctx context.Context, path string, v Version, token uint64) error {
	if s.isStrong(path) {
		_, err := s.setStrong(ctx, path, token, nil, func(prev *Version) (Version, error) {
			if v.Deleted && (prev == nil || prev.Deleted) {
				return Version{}, fmt.Errorf("%w: %s", ErrNotFound, path)
			}
			return v, nil
		})
		return err
	}
	_, err := s.commit(path, func(es []EntryRecord, tree TreeRecord) (*EntryRecord, error) {
		r := s.newRecord(path, es, tree, v)
		return &r, nil
	})
	return err
}

// strongCtx bounds a strong mutation started without a context.
func (s *Service) strongCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, strongOpTimeout)
}

// resolveCommitted is Resolve for strong trees: the live entry of the latest committed
// revision wins (entries written before the tree was strong have revision 0 and lose to
// any commit); no conflict copies.
func resolveCommitted(es []EntryRecord) (winner int, vis []Visible) {
	winner = -1
	for i, e := range es {
		if e.Withdrawn {
			continue
		}
		if winner < 0 || laterCommit(e.Cur, es[winner].Cur) {
			winner = i
		}
	}
	if winner >= 0 && !es[winner].Cur.Deleted {
		vis = []Visible{{Path: es[winner].Path, Base: es[winner].Path, Entry: es[winner]}}
	}
	return winner, vis
}

// laterCommit orders versions of a strong path: revision, then number, then HLC.
func laterCommit(a, b Version) bool {
	switch {
	case a.Rev != b.Rev:
		return a.Rev > b.Rev
	case a.Number != b.Number:
		return a.Number > b.Number
	}
	return a.HLC.Compare(b.HLC) > 0
}

// checkConsistencyChange refuses an fs init that would change the consistency of files
// already stored (a tree's mode changes only while no file is under it).
func (s *Service) checkConsistencyChange(v *state.View, prefix, mode string) error {
	var bad []string
	s.mu.Lock()
	for _, x := range s.filesLocked(prefix) {
		cur := s.treeOf(v, x.path)
		if len(cur.Prefix) > len(prefix) {
			continue // a deeper tree keeps governing this file
		}
		if cur.Consistency != mode {
			bad = append(bad, x.path)
		}
	}
	s.mu.Unlock()
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	from := Eventual
	if mode == Eventual {
		from = Strong
	}
	return fmt.Errorf("%w: %s holds %d file(s) stored with consistency %s (first: %s); a tree's consistency changes only while it is empty: move or remove them first (fs rm -r %s), or init another prefix",
		ErrConflict, prefix, len(bad), from, bad[0], prefix)
}
