package p2p

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// mapReplica is a grow-only map (a state-based CRDT): Version is the sorted key list,
// MissingFor returns the entries whose keys the peer lacks, Apply merges entries.
type mapReplica struct {
	mu      sync.Mutex // guards the following fields
	m       map[string]string
	applied map[peer.ID]int // Apply calls per sender
	missing int             // MissingFor calls
	onApply func()          // called after each Apply (outside mu)
}

func newMapReplica() *mapReplica {
	return &mapReplica{m: map[string]string{}, applied: map[peer.ID]int{}}
}

func (r *mapReplica) Set(k, v string) []byte {
	r.mu.Lock()
	r.m[k] = v
	r.mu.Unlock()
	b, _ := cbor.Marshal(map[string]string{k: v})
	return b
}

func (r *mapReplica) Get(k string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[k]
	return v, ok
}

func (r *mapReplica) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

func (r *mapReplica) Version() []byte {
	r.mu.Lock()
	keys := make([]string, 0, len(r.m))
	for k := range r.m {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	sort.Strings(keys)
	b, _ := cbor.Marshal(keys)
	return b
}

func (r *mapReplica) MissingFor(v []byte) ([]byte, error) {
	var keys []string
	if err := cbor.Unmarshal(v, &keys); err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, k := range keys {
		have[k] = true
	}
	r.mu.Lock()
	r.missing++
	out := map[string]string{}
	for k, val := range r.m {
		if !have[k] {
			out[k] = val
		}
	}
	r.mu.Unlock()
	if len(out) == 0 {
		return nil, nil
	}
	return cbor.Marshal(out)
}

func (r *mapReplica) Apply(from peer.ID, data []byte) error {
	var in map[string]string
	if err := cbor.Unmarshal(data, &in); err != nil {
		return err
	}
	r.mu.Lock()
	r.applied[from]++
	for k, v := range in {
		r.m[k] = v
	}
	f := r.onApply
	r.mu.Unlock()
	if f != nil {
		f()
	}
	return nil
}

func (r *mapReplica) stats() (applied map[peer.ID]int, missing int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps(r.applied), r.missing
}

func maps(m map[peer.ID]int) map[peer.ID]int {
	out := map[peer.ID]int{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t testing.TB, extra io.Writer) *slog.Logger {
	var w io.Writer = io.Discard
	if os.Getenv("P2P_TEST_LOG") != "" {
		w = os.Stderr
	}
	if extra != nil {
		w = io.MultiWriter(w, extra)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func loopback(t testing.TB) []ma.Multiaddr {
	t.Helper()
	return []ma.Multiaddr{
		ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1"),
		ma.StringCast("/ip4/127.0.0.1/tcp/0"),
	}
}

// fastConfig is a config with test-friendly timings on loopback.
func fastConfig(t testing.TB) Config {
	return Config{
		Cluster:             "test",
		Listen:              loopback(t),
		IdentityFile:        filepath.Join(t.TempDir(), "id.key"),
		Logger:              testLogger(t, nil),
		AntiEntropyInterval: 300 * time.Millisecond,
		AdmitTimeout:        3 * time.Second,
		RejectBackoff:       2 * time.Second,
		JoinBackoffMin:      50 * time.Millisecond,
		JoinBackoffMax:      500 * time.Millisecond,
		DiscoveryInterval:   time.Second,
	}
}

// startHost creates and starts a host; it is closed at test cleanup.
func startHost(t testing.TB, cfg Config, r Replica) *Host {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	if r == nil {
		// A typed nil must not reach Start.
		if err := h.Start(context.Background(), nil); err != nil {
			t.Fatalf("Start: %v", err)
		}
		return h
	}
	if err := h.Start(context.Background(), r); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return h
}

// joinOf returns a JoinAddr for h's QUIC loopback address, with or without /p2p/.
func joinOf(t testing.TB, h *Host, withID bool) JoinAddr {
	t.Helper()
	for _, a := range h.Addrs() {
		s := a.String()
		if !strings.Contains(s, "/quic-v1") || !strings.HasPrefix(s, "/ip4/127.0.0.1/") {
			continue
		}
		if !withID {
			s = s[:strings.Index(s, "/p2p/")]
		}
		j, err := ParseJoin(s)
		if err != nil {
			t.Fatalf("ParseJoin(%q): %v", s, err)
		}
		return j
	}
	t.Fatalf("no loopback quic address in %v", h.Addrs())
	return JoinAddr{}
}

// admittedAll reports whether every host admitted every other one, and if not, who misses
// whom (a testutil.WaitFor condition).
func admittedAll(hs []*Host) (bool, string) {
	for i, h := range hs {
		got := h.Admitted()
		for j, o := range hs {
			if o != h && !slices.Contains(got, o.ID()) {
				return false, fmt.Sprintf("host%d has not admitted host%d (admitted %d peers)", i, j, len(got))
			}
		}
	}
	return true, ""
}

func describe(hs []*Host) string {
	var b strings.Builder
	for i, h := range hs {
		fmt.Fprintf(&b, "host%d %s admitted %v\n", i, h.ID(), h.Admitted())
	}
	return b.String()
}

func peerInfo(h *Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.h.Addrs()} }

func protocolID(s string) protocol.ID { return protocol.ID(s) }
