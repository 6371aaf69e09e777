package p2p

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/internal/testutil"
)

func TestJoinTwoHosts(t *testing.T) {
	for _, withID := range []bool{true, false} {
		t.Run(fmt.Sprintf("withID=%v", withID), func(t *testing.T) {
			ra, rb := newMapReplica(), newMapReplica()
			ra.Set("a", "1")
			rb.Set("b", "2")
			a := startHost(t, fastConfig(t), ra)
			cfg := fastConfig(t)
			cfg.Join = []JoinAddr{joinOf(t, a, withID)}
			b := startHost(t, cfg, rb)
			testutil.WaitFor(t, 10*time.Second, "mutual admission", func() (bool, string) { return admittedAll([]*Host{a, b}) })
			// Bootstrap sync after admission converges both states.
			testutil.WaitFor(t, 10*time.Second, "bootstrap sync", func() (bool, string) {
				_, okA := ra.Get("b")
				_, okB := rb.Get("a")
				return okA && okB, ""
			})
		})
	}
}

func TestSeveralHostsJoinAndGossip(t *testing.T) {
	const n = 5
	var hs []*Host
	var rs []*mapReplica
	for i := 0; i < n; i++ {
		cfg := fastConfig(t)
		cfg.AntiEntropyInterval = time.Hour // gossip only
		if i > 0 {
			cfg.Join = []JoinAddr{joinOf(t, hs[0], i%2 == 0)}
		}
		r := newMapReplica()
		hs = append(hs, startHost(t, cfg, r))
		rs = append(rs, r)
	}
	// Everyone joined host 0 only; the DHT finds the rest.
	testutil.WaitFor(t, 30*time.Second, "full mesh admission", func() (bool, string) { return admittedAll(hs) })
	// Publishing reaches the topic peers a host knows: wait until each knows all the others
	// (identify and the gossipsub handshake follow admission).
	for _, h := range hs {
		waitTopicPeers(t, h, n-1)
	}
	for i, h := range hs {
		h.Publish(rs[i].Set(fmt.Sprintf("k%d", i), "v"))
	}
	testutil.WaitFor(t, 10*time.Second, "gossip convergence", func() (bool, string) {
		for i, r := range rs {
			if r.Len() != n {
				return false, fmt.Sprintf("replica %d holds %d keys, want %d", i, r.Len(), n)
			}
		}
		return true, ""
	})
}

func TestAntiEntropyConverges(t *testing.T) {
	// No Publish at all: only anti-entropy moves state.
	const n = 4
	var hs []*Host
	var rs []*mapReplica
	for i := 0; i < n; i++ {
		cfg := fastConfig(t)
		cfg.AntiEntropyInterval = 100 * time.Millisecond
		if i > 0 {
			cfg.Join = []JoinAddr{joinOf(t, hs[i-1], true)}
		}
		r := newMapReplica()
		hs = append(hs, startHost(t, cfg, r))
		rs = append(rs, r)
	}
	testutil.WaitFor(t, 30*time.Second, "admission", func() (bool, string) { return admittedAll(hs) })
	for i, r := range rs {
		for k := 0; k < 20; k++ {
			r.Set(fmt.Sprintf("h%d-k%d", i, k), "v")
		}
	}
	testutil.WaitFor(t, 20*time.Second, "anti-entropy convergence", func() (bool, string) {
		for i, r := range rs {
			if r.Len() != n*20 {
				return false, fmt.Sprintf("replica %d holds %d keys, want %d", i, r.Len(), n*20)
			}
		}
		return true, ""
	})
	var syncs uint64
	for _, h := range hs {
		syncs += h.Stats().Syncs
	}
	if syncs == 0 {
		t.Error("converged without any anti-entropy exchange")
	}
}

func TestGossipBatching(t *testing.T) {
	ra, rb := newMapReplica(), newMapReplica()
	cfgA := fastConfig(t)
	cfgA.GossipBatch = 100 * time.Millisecond
	cfgA.AntiEntropyInterval = time.Hour
	a := startHost(t, cfgA, ra)
	cfgB := fastConfig(t)
	cfgB.AntiEntropyInterval = time.Hour
	cfgB.Join = []JoinAddr{joinOf(t, a, true)}
	b := startHost(t, cfgB, rb)
	testutil.WaitFor(t, 10*time.Second, "admission", func() (bool, string) { return admittedAll([]*Host{a, b}) })
	waitTopicPeers(t, a, 1)
	// The bootstrap exchange that follows admission must be over, or it could carry the
	// deltas below before the gossip batch does (and the batch would count 0 messages).
	testutil.WaitFor(t, 10*time.Second, "bootstrap exchange", func() (bool, string) {
		return a.Stats().Syncs > 0 && b.Stats().Syncs > 0, fmt.Sprintf("syncs %d/%d", a.Stats().Syncs, b.Stats().Syncs)
	})
	before := a.Stats().GossipSent
	const n = 50
	for i := 0; i < n; i++ {
		a.Publish(ra.Set(fmt.Sprintf("k%d", i), "v"))
	}
	testutil.WaitFor(t, 10*time.Second, "all deltas at B, by gossip", func() (bool, string) {
		return rb.Len() == n && a.Stats().GossipSent > before, fmt.Sprintf("%d deltas, %d messages", rb.Len(), a.Stats().GossipSent-before)
	})
	sent := a.Stats().GossipSent - before
	if sent < 1 || sent > 3 {
		t.Errorf("%d deltas published within one batch window went out as %d gossip messages; want 1..3", n, sent)
	}
	if got := b.Stats().GossipReceived; got > 3 {
		t.Errorf("B received %d gossip messages; want <= 3", got)
	}
}

func TestLargeDeltaIsPulled(t *testing.T) {
	ra, rb := newMapReplica(), newMapReplica()
	cfgA := fastConfig(t)
	cfgA.MaxGossipBytes = 2048
	cfgA.AntiEntropyInterval = time.Hour
	a := startHost(t, cfgA, ra)
	cfgB := fastConfig(t)
	cfgB.MaxGossipBytes = 2048
	cfgB.AntiEntropyInterval = time.Hour
	cfgB.Join = []JoinAddr{joinOf(t, a, true)}
	b := startHost(t, cfgB, rb)
	testutil.WaitFor(t, 10*time.Second, "admission", func() (bool, string) { return admittedAll([]*Host{a, b}) })
	waitTopicPeers(t, a, 1)
	syncsBefore := b.Stats().Syncs + a.Stats().Syncs
	big := strings.Repeat("x", 10_000)
	a.Publish(ra.Set("big", big))
	a.Publish(ra.Set("small", "s"))
	testutil.WaitFor(t, 10*time.Second, "big value at B", func() (bool, string) {
		v, _ := rb.Get("big")
		return v == big, ""
	})
	if _, ok := rb.Get("small"); !ok {
		// small travels by gossip or with the pull; either way it must arrive.
		testutil.WaitFor(t, 5*time.Second, "small value at B", func() (bool, string) { _, ok := rb.Get("small"); return ok, "" })
	}
	if got := b.Stats().Syncs + a.Stats().Syncs; got <= syncsBefore {
		t.Errorf("big delta arrived without an anti-entropy exchange (syncs %d -> %d)", syncsBefore, got)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	const n = 4
	var hs []*Host
	var rs []*mapReplica
	for i := 0; i < n; i++ {
		cfg := fastConfig(t)
		cfg.AntiEntropyInterval = 200 * time.Millisecond
		for j := 0; j < i; j++ {
			cfg.Join = append(cfg.Join, joinOf(t, hs[j], true))
		}
		r := newMapReplica()
		hs = append(hs, startHost(t, cfg, r))
		rs = append(rs, r)
	}
	testutil.WaitFor(t, 30*time.Second, "admission", func() (bool, string) { return admittedAll(hs) })
	side := map[peer.ID]int{}
	for i, h := range hs {
		side[h.ID()] = i % 2
	}
	// Partition {0,2} | {1,3}: gate and drop cross connections.
	for i, h := range hs {
		mine := i % 2
		h.SetPartition(func(p peer.ID) bool { return side[p] != mine })
	}
	for i, h := range hs {
		for j, o := range hs {
			if i%2 != j%2 {
				h.h.Network().ClosePeer(o.ID())
			}
		}
	}
	published := time.Now()
	for i, h := range hs {
		h.Publish(rs[i].Set(fmt.Sprintf("during-%d", i), "v"))
	}
	// Same-side writes arrive (gossip and anti-entropy within a side still work). A sleep
	// before a negative check cannot flake: after at least a second (five anti-entropy
	// rounds) no write crossed the partition.
	testutil.WaitFor(t, 10*time.Second, "same-side writes during the partition", func() (bool, string) {
		for i, r := range rs {
			for j := range hs {
				if _, ok := r.Get(fmt.Sprintf("during-%d", j)); i%2 == j%2 && !ok {
					return false, fmt.Sprintf("host %d misses the write of same-side host %d", i, j)
				}
			}
		}
		return true, ""
	})
	time.Sleep(time.Second - time.Since(published))
	for i, r := range rs {
		for j := range hs {
			if _, ok := r.Get(fmt.Sprintf("during-%d", j)); i%2 != j%2 && ok {
				t.Errorf("host %d got write of other-side host %d across the partition", i, j)
			}
		}
	}
	for _, h := range hs {
		h.SetPartition(nil)
	}
	testutil.WaitFor(t, 30*time.Second, "heal: readmission", func() (bool, string) { return admittedAll(hs) })
	testutil.WaitFor(t, 30*time.Second, "heal: convergence", func() (bool, string) {
		for i, r := range rs {
			if r.Len() != n {
				return false, fmt.Sprintf("replica %d holds %d keys, want %d", i, r.Len(), n)
			}
		}
		return true, ""
	})
}

func TestSendDedupeAndRetry(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]Message{} // receiver name -> messages
	onMsg := func(name string) func(Message) {
		return func(m Message) {
			mu.Lock()
			got[name] = append(got[name], m)
			mu.Unlock()
		}
	}
	var hs []*Host
	for i := 0; i < 3; i++ {
		cfg := fastConfig(t)
		cfg.OnMessage = onMsg(fmt.Sprint(i))
		if i > 0 {
			cfg.Join = []JoinAddr{joinOf(t, hs[0], true)}
		}
		hs = append(hs, startHost(t, cfg, nil))
	}
	testutil.WaitFor(t, 30*time.Second, "admission", func() (bool, string) { return admittedAll(hs) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Lost acks: the sender retries, the receiver delivers once.
	hs[1].testDropAcks.Store(2)
	id, err := hs[0].Send(ctx, hs[1].ID(), "greet", []byte(`{"x":1}`))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if left := hs[1].testDropAcks.Load(); left > 0 {
		t.Errorf("only %d of 2 acks dropped: no retry happened", 2-left)
	}
	mu.Lock()
	if n := len(got["1"]); n != 1 || got["1"][0].ID != id || got["1"][0].Type != "greet" || got["1"][0].From != hs[0].ID() || string(got["1"][0].Data) != `{"x":1}` {
		t.Errorf("receiver got %+v; want exactly one greet %s from %s", got["1"], id, hs[0].ID())
	}
	mu.Unlock()

	bid, err := hs[2].Broadcast(ctx, "hello", []byte("all"))
	if err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	mu.Lock()
	for _, name := range []string{"0", "1"} {
		var n int
		for _, m := range got[name] {
			if m.ID == bid {
				n++
			}
		}
		if n != 1 {
			t.Errorf("host %s got broadcast %s %d times; want 1", name, bid, n)
		}
	}
	if len(got["2"]) != 0 {
		t.Errorf("broadcaster received its own broadcast: %+v", got["2"])
	}
	mu.Unlock()

	// An unreachable target: Send keeps retrying until ctx ends, then fails.
	other, err := throwawayID()
	if err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if _, err := hs[0].Send(short, other, "x", nil); err == nil {
		t.Error("Send to an unknown peer succeeded")
	}
}

func TestPackets(t *testing.T) {
	a := startHost(t, fastConfig(t), nil)
	cfg := fastConfig(t)
	cfg.Join = []JoinAddr{joinOf(t, a, true)}
	b := startHost(t, cfg, nil)
	testutil.WaitFor(t, 10*time.Second, "admission", func() (bool, string) { return admittedAll([]*Host{a, b}) })
	var mu sync.Mutex
	var seq []string
	b.HandlePackets("ping", func(from peer.ID, p []byte) {
		if from != a.ID() {
			t.Errorf("packet from %s; want %s", from, a.ID())
		}
		mu.Lock()
		seq = append(seq, string(p))
		mu.Unlock()
	})
	ctx := context.Background()
	const n = 100
	for i := 0; i < n; i++ {
		if err := a.SendPacket(ctx, b.ID(), "ping", []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("SendPacket %d: %v", i, err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "all packets", func() (bool, string) { mu.Lock(); defer mu.Unlock(); return len(seq) == n, "" })
	for i, s := range seq {
		if s != fmt.Sprint(i) {
			t.Fatalf("packet %d = %q; want in-order delivery", i, s)
		}
	}
	if err := a.SendPacket(ctx, b.ID(), "ping", make([]byte, a.cfg.MaxPacketBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized packet: err = %v; want ErrTooLarge", err)
	}
	// The cached stream survives a reconnect: drop the connection and send again.
	a.h.Network().ClosePeer(b.ID())
	testutil.WaitFor(t, 10*time.Second, "reconnect", func() (bool, string) {
		return a.SendPacket(ctx, b.ID(), "ping", []byte("again")) == nil, ""
	})
}

func TestCloseIsIdempotent(t *testing.T) {
	h := startHost(t, fastConfig(t), newMapReplica())
	h.Publish([]byte("x"))
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := h.Start(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v; want ErrClosed", err)
	}
	h.Publish([]byte("y")) // must not panic or block
}

// waitTopicPeers waits until h's gossip topic has at least n peers.
func waitTopicPeers(t *testing.T, h *Host, n int) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "gossip topic peers", func() (bool, string) { return len(h.topic.ListPeers()) >= n, "" })
}

func TestPeerEvents(t *testing.T) {
	var mu sync.Mutex
	var events []string
	cfg := fastConfig(t)
	cfg.OnPeerAdmitted = func(p peer.ID) { mu.Lock(); events = append(events, "up "+p.String()); mu.Unlock() }
	cfg.OnPeerGone = func(p peer.ID) { mu.Lock(); events = append(events, "gone "+p.String()); mu.Unlock() }
	a := startHost(t, cfg, nil)
	cfgB := fastConfig(t)
	cfgB.Join = []JoinAddr{joinOf(t, a, true)}
	b := startHost(t, cfgB, nil)
	testutil.WaitFor(t, 10*time.Second, "admission", func() (bool, string) { return admittedAll([]*Host{a, b}) })
	id := b.ID().String()
	b.Close()
	testutil.WaitFor(t, 10*time.Second, "gone event", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 2, ""
	})
	mu.Lock()
	defer mu.Unlock()
	if events[0] != "up "+id || events[1] != "gone "+id {
		t.Errorf("events = %q; want up then gone for %s", events, id)
	}
	if len(a.Admitted()) != 0 {
		t.Errorf("admitted after peer closed: %v", a.Admitted())
	}
}

// TestRestartedPeerReplacesStaleConnection: a peer that comes back with the same
// identity while our old connection to it lingers (a crash leaves it open until the
// idle timeout) must get our packets on its new connection.
func TestRestartedPeerReplacesStaleConnection(t *testing.T) {
	a := startHost(t, fastConfig(t), nil)
	idFile := filepath.Join(t.TempDir(), "id.key")
	cfgB := fastConfig(t)
	cfgB.IdentityFile = idFile
	cfgB.Join = []JoinAddr{joinOf(t, a, true)}
	var oldGot, newGot atomic.Int32
	b := startHost(t, cfgB, nil)
	b.HandlePackets("p", func(peer.ID, []byte) { oldGot.Add(1) })
	testutil.WaitFor(t, 10*time.Second, "admission", func() (bool, string) { return admittedAll([]*Host{a, b}) })
	ctx := context.Background()
	if err := a.SendPacket(ctx, b.ID(), "p", []byte("x")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "packet at old", func() (bool, string) { return oldGot.Load() == 1, "" })

	// "Restart": the old process stays up (standing in for a dead connection that has
	// not timed out), a new process with the same identity joins A.
	cfgB2 := fastConfig(t)
	cfgB2.IdentityFile = idFile
	cfgB2.Join = []JoinAddr{joinOf(t, a, true)}
	b2 := startHost(t, cfgB2, nil)
	b2.HandlePackets("p", func(peer.ID, []byte) { newGot.Add(1) })
	if b2.ID() != b.ID() {
		t.Fatal("same identity file gave a different ID")
	}
	testutil.WaitFor(t, 10*time.Second, "new process admitted", func() (bool, string) { return b2.IsAdmitted(a.ID()), "" })
	testutil.WaitFor(t, 10*time.Second, "packets reach the new process", func() (bool, string) {
		a.SendPacket(ctx, b.ID(), "p", []byte("y"))
		return newGot.Load() > 0, ""
	})
}
