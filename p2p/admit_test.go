package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rads-lang/constellation/internal/testutil"
)

func TestAdmissionExcludesNonMembers(t *testing.T) {
	cases := []struct {
		name           string
		clusterA, keyA string
		clusterB, keyB string
		reason         string // substring expected in both log lines
	}{
		{"wrong key", "c1", "secret-1", "c1", "secret-2", "wrong cluster key"},
		{"other cluster name", "c1", "k", "c2", "k", "wrong cluster name"},
		{"keyless joins keyed", "c1", "secret", "c1", "", "wrong cluster key"},
		{"keyed joins keyless", "c1", "", "c1", "secret", "wrong cluster key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logA, logB logBuf
			var rejectedA, rejectedB atomic.Int32
			ra, rb := newMapReplica(), newMapReplica()
			ra.Set("secret-state", "a")
			rb.Set("other-state", "b")

			cfgA := fastConfig(t)
			cfgA.Cluster, cfgA.ClusterKey = tc.clusterA, tc.keyA
			cfgA.Logger = testLogger(t, &logA)
			cfgA.OnAdmissionRejected = func(peer.ID, string) { rejectedA.Add(1) }
			a := startHost(t, cfgA, ra)

			cfgB := fastConfig(t)
			cfgB.Cluster, cfgB.ClusterKey = tc.clusterB, tc.keyB
			cfgB.Logger = testLogger(t, &logB)
			cfgB.OnAdmissionRejected = func(peer.ID, string) { rejectedB.Add(1) }
			cfgB.Join = []JoinAddr{joinOf(t, a, false)}
			b := startHost(t, cfgB, rb)

			want := "failed cluster admission: " + tc.reason
			testutil.WaitFor(t, 10*time.Second, "rejection logged on both sides", func() (bool, string) {
				return strings.Contains(logA.String(), want) && strings.Contains(logB.String(), want), ""
			})
			// Give retries, gossip and anti-entropy time to (wrongly) happen.
			time.Sleep(1500 * time.Millisecond)
			if got := a.Admitted(); len(got) != 0 {
				t.Errorf("A admitted %v; want nobody", got)
			}
			if got := b.Admitted(); len(got) != 0 {
				t.Errorf("B admitted %v; want nobody", got)
			}
			for name, r := range map[string]*mapReplica{"A": ra, "B": rb} {
				applied, missing := r.stats()
				if len(applied) != 0 || missing != 0 {
					t.Errorf("replica %s: Apply calls %v, MissingFor calls %d; want none", name, applied, missing)
				}
			}
			if _, ok := rb.Get("secret-state"); ok {
				t.Error("B received A's state")
			}
			// Explicit attempts fail too, and cluster protocols refuse the peer.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := b.SyncWith(ctx, a.ID()); err == nil {
				t.Error("SyncWith a non-member succeeded")
			}
			if err := b.SendPacket(ctx, a.ID(), "x", []byte("hi")); err == nil {
				t.Error("SendPacket to a non-member succeeded")
			}
			if rejectedA.Load() == 0 || rejectedB.Load() == 0 {
				t.Errorf("OnAdmissionRejected calls A=%d B=%d; want both > 0", rejectedA.Load(), rejectedB.Load())
			}
			// No hot loop: the join loop is held off by the blocklist window (2s doubling).
			if n := strings.Count(logB.String(), want); n > 3 {
				t.Errorf("B logged %d rejections in ~2s; want a backoff", n)
			}
		})
	}
}

func TestAdmissionBindsPeerIDs(t *testing.T) {
	key := admitKey("k", "c")
	var nI, nR [32]byte
	nI[0], nR[0] = 1, 2
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	base := admitMAC(key, 'I', "c", a, b, nI[:], nR[:])
	variants := map[string][]byte{
		"role":      admitMAC(key, 'R', "c", a, b, nI[:], nR[:]),
		"initiator": admitMAC(key, 'I', "c", c, b, nI[:], nR[:]),
		"responder": admitMAC(key, 'I', "c", a, c, nI[:], nR[:]),
		"swapped":   admitMAC(key, 'I', "c", b, a, nI[:], nR[:]),
		"nonce":     admitMAC(key, 'I', "c", a, b, nR[:], nI[:]),
		"cluster":   admitMAC(key, 'I', "d", a, b, nI[:], nR[:]),
		"key":       admitMAC(admitKey("k2", "c"), 'I', "c", a, b, nI[:], nR[:]),
		"keyless":   admitMAC(admitKey("", "c"), 'I', "c", a, b, nI[:], nR[:]),
	}
	for name, m := range variants {
		if slices.Equal(m, base) {
			t.Errorf("MAC unchanged when %s changes", name)
		}
	}
	if !slices.Equal(base, admitMAC(key, 'I', "c", a, b, nI[:], nR[:])) {
		t.Error("MAC not deterministic")
	}
}

func TestGuardResetsNonMembers(t *testing.T) {
	// A wrong-key peer that is connected (before admission fails) must get no packet
	// and no message delivered.
	var got sync.Map
	cfgA := fastConfig(t)
	cfgA.ClusterKey = "right"
	cfgA.OnMessage = func(m Message) { got.Store(m.ID, m) }
	a := startHost(t, cfgA, nil)
	a.HandlePackets("p", func(from peer.ID, b []byte) { got.Store("pkt", b) })

	cfgB := fastConfig(t)
	cfgB.ClusterKey = "wrong"
	b := startHost(t, cfgB, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := b.Join(ctx, joinOf(t, a, true))
	if !errors.Is(err, ErrAdmission) && !errors.Is(err, ErrNotAdmitted) {
		t.Fatalf("Join with wrong key: err = %v; want ErrAdmission", err)
	}
	// Open raw streams on the underlying host, bypassing our own checks.
	for _, proto := range []string{string(a.protoMsg), string(a.packetProto("p")), string(a.protoSync)} {
		if err := b.h.Connect(ctx, peerInfo(a)); err != nil {
			// Gated by A's blocklist: also fine, nothing can be delivered.
			continue
		}
		s, err := b.h.NewStream(ctx, a.ID(), protocolID(proto))
		if err != nil {
			continue
		}
		writeFrame(s, encodeMessage(wireMessage{ID: "x", Type: "t", At: 1}))
		s.CloseWrite()
		buf := make([]byte, 1)
		if n, _ := s.Read(buf); n > 0 {
			t.Errorf("protocol %s answered a non-member", proto)
		}
		s.Reset()
	}
	time.Sleep(200 * time.Millisecond)
	got.Range(func(k, v any) bool {
		t.Errorf("delivered to non-member: %v", k)
		return true
	})
}

// TestRawNonMemberGetsNothing connects a plain libp2p host (it never runs admission)
// that speaks gossipsub on the cluster topic and opens streams on every cluster
// protocol: it must receive no state and none of its input may reach the replica.
func TestRawNonMemberGetsNothing(t *testing.T) {
	ra := newMapReplica()
	ra.Set("secret", "s")
	cfg := fastConfig(t)
	cfg.AdmitTimeout = 20 * time.Second // keep the unadmitted connection open for the test
	var msgs atomic.Int32
	cfg.OnMessage = func(Message) { msgs.Add(1) }
	a := startHost(t, cfg, ra)
	var pkts atomic.Int32
	a.HandlePackets("p", func(peer.ID, []byte) { pkts.Add(1) })

	raw, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ps, err := pubsub.NewGossipSub(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(a.topicName)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Connect(ctx, peerInfo(a)); err != nil {
		t.Fatal(err)
	}
	var got atomic.Int32
	go func() {
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if m.GetFrom() != raw.ID() { // not its own publication
				got.Add(1)
			}
		}
	}()
	delta := newMapReplica().Set("evil", "x")
	for i := 0; i < 5; i++ {
		topic.Publish(ctx, encodeGossip(gossipMsg{Kind: gossipDeltas, Deltas: [][]byte{delta}}))
		a.Publish(ra.Set(fmt.Sprintf("k%d", i), "v"))
		time.Sleep(100 * time.Millisecond)
	}
	protos := []protocol.ID{a.protoSync, a.protoMsg, a.packetProto("p"), protocol.ID("/constellation/" + a.hash + "/kad/1.0.0"), "/meshsub/1.1.0"}
	for _, proto := range protos {
		s, err := raw.NewStream(ctx, a.ID(), proto)
		if err != nil {
			continue // not even negotiated: fine
		}
		var hdr [64]byte
		writeFrame(s, make([]byte, 32))
		writeFrame(s, encodeMessage(wireMessage{ID: "x", Type: "t", At: 1}))
		s.CloseWrite()
		s.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, _ := s.Read(hdr[:]); n > 0 {
			t.Errorf("protocol %s answered a non-member with %d bytes", proto, n)
		}
		s.Reset()
	}
	time.Sleep(time.Second)
	applied, missing := ra.stats()
	if len(applied) != 0 || missing != 0 {
		t.Errorf("replica touched by a non-member: Apply %v MissingFor %d", applied, missing)
	}
	if _, ok := ra.Get("evil"); ok {
		t.Error("non-member's gossip was applied")
	}
	if n := got.Load(); n != 0 {
		t.Errorf("non-member received %d gossip messages", n)
	}
	if msgs.Load() != 0 || pkts.Load() != 0 {
		t.Errorf("non-member delivered %d messages, %d packets", msgs.Load(), pkts.Load())
	}
	if len(a.Admitted()) != 0 {
		t.Errorf("A admitted %v", a.Admitted())
	}
}
