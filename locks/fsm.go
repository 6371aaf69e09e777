package locks

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/hashicorp/raft"
)

// Operations of a log entry.
const (
	opAcquire uint8 = iota + 1
	opRenew
	opRelease
	opExpire
	opLeader // a new leader took over at Now: every lease lasts at least its TTL from Now
	opCAS
)

// command is one Raft log entry. Now is the leader's clock when it proposed the entry
// (Unix ns): the FSM never reads a clock, so every replica computes the same state.
type command struct {
	Op     uint8  `cbor:"1,keyasint"`
	Now    int64  `cbor:"2,keyasint"`
	Path   string `cbor:"3,keyasint,omitempty"`
	Holder string `cbor:"4,keyasint,omitempty"`
	TTL    int64  `cbor:"5,keyasint,omitempty"`
	Token  uint64 `cbor:"6,keyasint,omitempty"`
	// Delay is the lock-delay an expiry starts (the leader's configuration, in ns).
	Delay     int64  `cbor:"7,keyasint,omitempty"`
	ExpectRev uint64 `cbor:"8,keyasint,omitempty"`
	Value     []byte `cbor:"9,keyasint,omitempty"`
}

// lockRec is one held lock.
type lockRec struct {
	Holder  string `cbor:"1,keyasint"`
	Token   uint64 `cbor:"2,keyasint"`
	TTL     int64  `cbor:"3,keyasint"`
	Granted int64  `cbor:"4,keyasint"`
	Expires int64  `cbor:"5,keyasint"`
}

// kvRec is one CAS key.
type kvRec struct {
	Value    []byte `cbor:"1,keyasint"`
	Rev      uint64 `cbor:"2,keyasint"`
	MaxToken uint64 `cbor:"3,keyasint"`
}

// fsmState is everything the FSM holds (also its snapshot).
type fsmState struct {
	Locks map[string]*lockRec `cbor:"1,keyasint"`
	// Delay holds, per path, the end of the lock-delay that followed an expiry (Unix ns).
	Delay map[string]int64 `cbor:"2,keyasint"`
	// LastToken is the last fencing token granted (cluster-wide, strictly increasing).
	LastToken uint64            `cbor:"3,keyasint"`
	KV        map[string]*kvRec `cbor:"4,keyasint"`
	// Rev is the last CAS revision (cluster-wide, strictly increasing).
	Rev uint64 `cbor:"5,keyasint"`
}

func newState() *fsmState {
	return &fsmState{Locks: map[string]*lockRec{}, Delay: map[string]int64{}, KV: map[string]*kvRec{}}
}

// result is what applying one entry answers. Err is nil on success; its fields are
// deterministic so every replica would answer the same.
type result struct {
	Lease Lease
	Rev   uint64
	Err   *opError
}

// opError is a refusal by the FSM, turned into an *httpapi.Error by the service.
type opError struct {
	Code    string // "held", "not_held", "delay", "conflict", "stale_token", "bad_request"
	Holder  string
	Token   uint64
	Until   int64 // held/delay: when the path may be free (Unix ns)
	Want    uint64
	Current uint64
}

var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	m, err := cbor.CanonicalEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}

func mustDecMode() cbor.DecMode {
	m, err := cbor.DecOptions{
		MaxNestedLevels: 8, MaxArrayElements: 1 << 20, MaxMapPairs: 1 << 20,
		DupMapKey: cbor.DupMapKeyEnforcedAPF, ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		IndefLength: cbor.IndefLengthForbidden, TagsMd: cbor.TagsForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

// apply computes the effect of c on s (pure: no clock, no randomness).
func (s *fsmState) apply(c *command) result {
	switch c.Op {
	case opAcquire:
		if l, ok := s.Locks[c.Path]; ok {
			if l.Holder == c.Holder && c.Holder != "" {
				// Re-acquire by the same holder: the lease goes on (idempotent retry).
				l.Expires = max(l.Expires, c.Now+l.TTL)
				return result{Lease: l.lease(c.Path)}
			}
			return result{Err: &opError{Code: "held", Holder: l.Holder, Token: l.Token, Until: l.Expires}}
		}
		if until, ok := s.Delay[c.Path]; ok {
			if c.Now < until {
				return result{Err: &opError{Code: "delay", Until: until}}
			}
			delete(s.Delay, c.Path)
		}
		if c.TTL <= 0 {
			return result{Err: &opError{Code: "bad_request"}}
		}
		s.LastToken++
		l := &lockRec{Holder: c.Holder, Token: s.LastToken, TTL: c.TTL, Granted: c.Now, Expires: c.Now + c.TTL}
		s.Locks[c.Path] = l
		return result{Lease: l.lease(c.Path)}
	case opRenew:
		l, ok := s.Locks[c.Path]
		if !ok || l.Token != c.Token {
			return result{Err: s.notHeld(c.Path)}
		}
		l.Expires = max(l.Expires, c.Now+l.TTL)
		return result{Lease: l.lease(c.Path)}
	case opRelease:
		l, ok := s.Locks[c.Path]
		if !ok || l.Token != c.Token {
			return result{Err: s.notHeld(c.Path)}
		}
		delete(s.Locks, c.Path)
		return result{}
	case opExpire:
		l, ok := s.Locks[c.Path]
		if !ok || l.Token != c.Token || c.Now < l.Expires {
			return result{Err: s.notHeld(c.Path)} // renewed, released or already expired
		}
		delete(s.Locks, c.Path)
		if c.Delay > 0 {
			s.Delay[c.Path] = c.Now + c.Delay
		}
		return result{}
	case opLeader:
		// Chubby: a new leader does not know how long the old one's leases had left, so
		// every lease lasts at least its full TTL from the takeover. Delays likewise.
		for _, l := range s.Locks {
			l.Expires = max(l.Expires, c.Now+l.TTL)
		}
		for p, until := range s.Delay {
			if until <= c.Now {
				delete(s.Delay, p)
			}
		}
		return result{}
	case opCAS:
		var cur uint64
		kv := s.KV[c.Path]
		if kv != nil {
			cur = kv.Rev
		}
		if cur != c.ExpectRev {
			return result{Err: &opError{Code: "conflict", Want: c.ExpectRev, Current: cur}}
		}
		if kv != nil && c.Token != 0 && c.Token < kv.MaxToken {
			return result{Err: &opError{Code: "stale_token", Want: c.Token, Current: kv.MaxToken}}
		}
		s.Rev++
		nkv := &kvRec{Value: append([]byte(nil), c.Value...), Rev: s.Rev}
		if kv != nil {
			nkv.MaxToken = kv.MaxToken
		}
		nkv.MaxToken = max(nkv.MaxToken, c.Token)
		s.KV[c.Path] = nkv
		return result{Rev: s.Rev}
	}
	return result{Err: &opError{Code: "bad_request"}}
}

func (s *fsmState) notHeld(path string) *opError {
	if l, ok := s.Locks[path]; ok {
		return &opError{Code: "not_held", Holder: l.Holder, Token: l.Token}
	}
	return &opError{Code: "not_held"}
}

func (l *lockRec) lease(path string) Lease {
	return Lease{Path: path, Holder: l.Holder, Token: l.Token, TTL: time.Duration(l.TTL),
		Granted: time.Unix(0, l.Granted).UTC(), Expires: time.Unix(0, l.Expires).UTC()}
}

// fsm is the raft.FSM over fsmState. Reads take mu too.
type fsm struct {
	mu sync.RWMutex
	s  *fsmState
}

func newFSM() *fsm { return &fsm{s: newState()} }

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	var c command
	if err := decMode.Unmarshal(l.Data, &c); err != nil {
		return result{Err: &opError{Code: "bad_request"}}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s.apply(&c)
}

// Snapshot implements raft.FSM: the state is encoded at once (it is small), so Persist
// runs without the lock.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	b, err := encMode.Marshal(f.s)
	f.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	return snapshot(b), nil
}

// maxSnapshot bounds a snapshot read at restore.
const maxSnapshot = 256 << 20

// Restore implements raft.FSM.
func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxSnapshot+1))
	if err != nil {
		return err
	}
	s, err := decodeState(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.s = s
	f.mu.Unlock()
	return nil
}

// decodeState decodes a snapshot.
func decodeState(b []byte) (*fsmState, error) {
	if len(b) > maxSnapshot {
		return nil, fmt.Errorf("locks: snapshot over %d bytes", maxSnapshot)
	}
	s := newState()
	if err := decMode.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("locks: snapshot: %w", err)
	}
	if s.Locks == nil {
		s.Locks = map[string]*lockRec{}
	}
	if s.Delay == nil {
		s.Delay = map[string]int64{}
	}
	if s.KV == nil {
		s.KV = map[string]*kvRec{}
	}
	for p, l := range s.Locks {
		if l == nil {
			return nil, fmt.Errorf("locks: snapshot: lock %q is null", p)
		}
	}
	for k, v := range s.KV {
		if v == nil {
			return nil, fmt.Errorf("locks: snapshot: key %q is null", k)
		}
	}
	return s, nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}

// leases lists the held locks, by path.
func (f *fsm) leases() []Lease {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Lease, 0, len(f.s.Locks))
	for p, l := range f.s.Locks {
		out = append(out, l.lease(p))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// expired lists the locks whose lease ended at now (Unix ns).
func (f *fsm) expired(now int64) []command {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []command
	for p, l := range f.s.Locks {
		if l.Expires <= now {
			out = append(out, command{Op: opExpire, Path: p, Token: l.Token})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// nextExpiry is the earliest lease end (Unix ns), 0 when no lock is held.
func (f *fsm) nextExpiry() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var next int64
	for _, l := range f.s.Locks {
		if next == 0 || l.Expires < next {
			next = l.Expires
		}
	}
	return next
}

// refuseAcquire is the refusal the FSM would answer to an acquire of path by holder at
// now (Unix ns) in its current state, nil when it might grant it.
func (f *fsm) refuseAcquire(path, holder string, now int64) *opError {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if l, ok := f.s.Locks[path]; ok && l.Holder != holder {
		return &opError{Code: "held", Holder: l.Holder, Token: l.Token, Until: l.Expires}
	}
	if until, ok := f.s.Delay[path]; ok && now < until {
		if _, held := f.s.Locks[path]; !held {
			return &opError{Code: "delay", Until: until}
		}
	}
	return nil
}

// get reads a key.
func (f *fsm) get(key string) ([]byte, uint64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	kv, ok := f.s.KV[key]
	if !ok {
		return nil, 0, false
	}
	return append([]byte(nil), kv.Value...), kv.Rev, true
}
