package dfs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"

	"github.com/rads-lang/constellation/internal/httpapi"
)

// fakeConsensus is an in-process linearizable implementation of Consensus with the lock
// service's semantics (revisions, fencing tokens, its error values): one mutex over a map.
// A node can be cut off (its calls answer 503 unavailable with a reason, as on the minority
// side of a partition), and failures can be injected at random: a call refused before it
// happens, or a compare-and-set applied whose answer is lost (an ambiguous timeout).
type fakeConsensus struct {
	mu      sync.Mutex
	rev     uint64
	kv      map[string]fakeKV
	tokens  map[string]uint64
	down    map[string]string // node -> reason
	rng     *rand.Rand
	refuse  float64 // probability that a call is refused before it happens
	lose    float64 // probability that an applied CAS answers an error
	applied int
}

type fakeKV struct {
	val []byte
	rev uint64
}

func newFakeConsensus() *fakeConsensus {
	return &fakeConsensus{kv: map[string]fakeKV{}, tokens: map[string]uint64{}, down: map[string]string{}, rng: rand.New(rand.NewPCG(1, 2))}
}

func (f *fakeConsensus) view(node string) Consensus { return fakeView{f, node} }

func (f *fakeConsensus) setDown(node, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if reason == "" {
		delete(f.down, node)
	} else {
		f.down[node] = reason
	}
}

func (f *fakeConsensus) inject(refuse, lose float64) {
	f.mu.Lock()
	f.refuse, f.lose = refuse, lose
	f.mu.Unlock()
}

// fence makes the lock service see token for key (as a write of another holder would).
func (f *fakeConsensus) fence(key string, token uint64) {
	f.mu.Lock()
	f.tokens[key] = max(f.tokens[key], token)
	f.mu.Unlock()
}

func (f *fakeConsensus) record(key string) ([]byte, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kv := f.kv[key]
	return kv.val, kv.rev
}

type fakeView struct {
	f    *fakeConsensus
	node string
}

func (v fakeView) gate() error {
	if r, ok := v.f.down[v.node]; ok {
		return &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Msg: "locks: no quorum: " + r}
	}
	if v.f.refuse > 0 && v.f.rng.Float64() < v.f.refuse {
		return &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Msg: "locks: no leader (injected)"}
	}
	return nil
}

func (v fakeView) CAS(ctx context.Context, key string, expectRev uint64, value []byte, token uint64) (uint64, error) {
	f := v.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := v.gate(); err != nil {
		return 0, err
	}
	if cur := f.kv[key].rev; cur != expectRev {
		return 0, &httpapi.Error{Status: http.StatusConflict, Code: "conflict", Msg: fmt.Sprintf("locks: %s is at revision %d, not %d", key, cur, expectRev)}
	}
	if token > 0 {
		if seen := f.tokens[key]; token < seen {
			return 0, &httpapi.Error{Status: http.StatusConflict, Code: "stale_token", Msg: fmt.Sprintf("locks: stale token %d for %s: token %d already seen", token, key, seen)}
		}
		f.tokens[key] = token
	}
	f.rev++
	f.kv[key] = fakeKV{append([]byte(nil), value...), f.rev}
	f.applied++
	if f.lose > 0 && f.rng.Float64() < f.lose {
		return 0, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Msg: "locks: leader lost before answering (injected)"}
	}
	return f.rev, nil
}

func (v fakeView) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	f := v.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := v.gate(); err != nil {
		return nil, 0, err
	}
	kv := f.kv[key]
	return append([]byte(nil), kv.val...), kv.rev, nil
}
