package membership

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rads-lang/constellation/internal/events"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/p2p"
)

// fakeHost is a Host with settable admissions and sync count.
type fakeHost struct {
	id       peer.ID
	mu       sync.Mutex
	admitted map[peer.ID]bool
	syncs    uint64
}

func (h *fakeHost) ID() peer.ID                                               { return h.id }
func (h *fakeHost) Addrs() []ma.Multiaddr                                     { return nil }
func (h *fakeHost) Connect(context.Context, peer.AddrInfo) error              { return nil }
func (h *fakeHost) AddAddrs(peer.ID, []ma.Multiaddr)                          {}
func (h *fakeHost) SendPacket(context.Context, peer.ID, string, []byte) error { return nil }
func (h *fakeHost) HandlePackets(string, func(peer.ID, []byte))               {}
func (h *fakeHost) Admitted() []peer.ID {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []peer.ID
	for p := range h.admitted {
		out = append(out, p)
	}
	return out
}
func (h *fakeHost) IsAdmitted(p peer.ID) bool { h.mu.Lock(); defer h.mu.Unlock(); return h.admitted[p] }
func (h *fakeHost) Stats() p2p.Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return p2p.Stats{Syncs: h.syncs}
}

type nopPub struct{}

func (nopPub) Publish([]byte) {}

// TestSettled: a node that restarts with records of other members is not settled until it
// has exchanged state with a member and every member is admitted (or a detection window
// passed); a lone node is settled at once; MaxWait ends any wait.
func TestSettled(t *testing.T) {
	st, err := state.Open(state.Options{Path: filepath.Join(t.TempDir(), "state.db"), Cluster: "c"})
	if err != nil {
		t.Fatal(err)
	}
	self, a, b := peer.ID("self"), peer.ID("aaaa"), peer.ID("bbbb")
	if _, err := st.Load([]byte(self), nopPub{}); err != nil {
		t.Fatal(err)
	}
	st.Start()
	defer st.Close(true)
	h := &fakeHost{id: self, admitted: map[peer.ID]bool{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(Config{Name: "self", DataDir: t.TempDir(), Settling: Settling{Window: time.Hour, MaxWait: 2 * time.Hour}}, h, st, events.New(), log)
	defer s.Close()

	if !s.Settled() {
		t.Fatal("a node with no other member is not settled")
	}
	// Records of two other members (as a restart finds them in its state file).
	for _, p := range []peer.ID{a, b} {
		rec := EncodeRecord(Record{Name: string(p), PeerID: p.String()})
		if err := st.Update(func(tx *state.Tx) error { return tx.Put(Coll, p.String(), rec) }); err != nil {
			t.Fatal(err)
		}
	}
	if s.Settled() {
		t.Fatal("settled before any state exchange")
	}
	h.mu.Lock()
	h.syncs, h.admitted[a] = 1, true
	h.mu.Unlock()
	if s.Settled() {
		t.Fatal("settled while member b is neither admitted nor past the detection window")
	}
	h.mu.Lock()
	h.admitted[b] = true
	h.mu.Unlock()
	if !s.Settled() {
		t.Fatal("not settled after a state exchange with every member admitted")
	}
	// A member that left does not hold the view back; MaxWait ends any wait.
	s2 := New(Config{Name: "self", DataDir: t.TempDir(), Settling: Settling{Window: time.Hour, MaxWait: time.Nanosecond}}, &fakeHost{id: self, admitted: map[peer.ID]bool{}}, st, events.New(), log)
	defer s2.Close()
	if !s2.Settled() {
		t.Fatal("not settled after MaxWait")
	}
}
