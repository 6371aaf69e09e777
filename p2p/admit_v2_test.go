package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rads-lang/constellation/internal/testutil"
)

// rawHost is a plain libp2p host on loopback that never runs admission by itself.
func rawHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func randomPeerID(t testing.TB) peer.ID {
	t.Helper()
	_, pk, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// probeAdmission plays a non-member initiator against a: a correct hello for cluster,
// then a made-up proof. It returns every byte a sent back.
func probeAdmission(t *testing.T, raw host.Host, a *Host, cluster string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := raw.Connect(ctx, peerInfo(a)); err != nil {
		t.Fatalf("connect: %v", err)
	}
	s, err := raw.NewStream(ctx, a.ID(), protoAdmit)
	if err != nil {
		t.Fatalf("open admission: %v", err)
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	hl := hello{cluster: clusterHashFull(cluster)}
	rand.Read(hl.nonce[:])
	if _, err := s.Write(hl.encode()); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, challengeLen)
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatalf("read challenge: %v", err)
	}
	if got[0] == admitOK {
		var guess [32]byte
		rand.Read(guess[:])
		if _, err := s.Write(record{status: admitOK, body: guess}.encode()); err != nil {
			t.Fatal(err)
		}
	}
	rest, _ := io.ReadAll(s)
	return append(got, rest...)
}

// TestNonMemberGetsNoKeyDependentBytes captures everything a keyed node sends a peer that
// opens admission without knowing the key: a status and a random nonce, then a refusal
// with an all-zero body. Two nodes with different keys answer the same way, and the
// responder never initiates admission (which would send its proof) toward the peer.
func TestNonMemberGetsNoKeyDependentBytes(t *testing.T) {
	var transcripts [][]byte
	for _, key := range []string{"first-key-0123456789abcdef", "second-key-fedcba9876543210"} {
		cfg := fastConfig(t)
		cfg.ClusterKey = key
		a := startHost(t, cfg, nil)
		raw := rawHost(t)
		var opened atomic.Int32
		raw.SetStreamHandler(protoAdmit, func(s network.Stream) { opened.Add(1); s.Reset() })

		got := probeAdmission(t, raw, a, cfg.Cluster)
		if len(got) != challengeLen+finalLen {
			t.Fatalf("non-member received %d bytes (%x); want challenge+final = %d", len(got), got, challengeLen+finalLen)
		}
		if got[0] != admitOK {
			t.Fatalf("challenge status %d; want OK", got[0])
		}
		fin := got[challengeLen:]
		if fin[0] != admitBadProof || !bytes.Equal(fin[1:], make([]byte, 32)) {
			t.Fatalf("final = %x; want status %d and 32 zero bytes", fin, admitBadProof)
		}
		transcripts = append(transcripts, slices.Concat(got[:1], fin))
		if !a.blocked(raw.ID()) {
			t.Error("a peer with a wrong proof is not blocklisted")
		}
		// A wrong cluster name gets a bare refusal too (from a fresh identity).
		raw2 := rawHost(t)
		got = probeAdmission(t, raw2, a, "another-cluster")
		if !bytes.Equal(got, record{status: admitOtherCluster}.encode()) {
			t.Errorf("wrong cluster name: received %x; want only the refusal", got)
		}
		time.Sleep(cfg.AdmitTimeout / 2)
		if n := opened.Load(); n != 0 {
			t.Errorf("the node opened %d admission streams toward a peer that connected to it; want 0 (the initiator proves first)", n)
		}
	}
	if !bytes.Equal(transcripts[0], transcripts[1]) {
		t.Errorf("non-key bytes differ between keys: %x vs %x", transcripts[0], transcripts[1])
	}
}

// TestFakeResponderRefused: a fake node that members dial accepts any proof and answers a
// made-up MAC; the member must refuse and blocklist it.
func TestFakeResponderRefused(t *testing.T) {
	cfg := fastConfig(t)
	cfg.ClusterKey = "member-key-0123456789abcdef"
	var logs logBuf
	cfg.Logger = testLogger(t, &logs)
	a := startHost(t, cfg, nil)
	fake := rawHost(t)
	var proofs atomic.Int32
	fake.SetStreamHandler(protoAdmit, func(s network.Stream) {
		defer s.Close()
		b := make([]byte, helloLen)
		if _, err := io.ReadFull(s, b); err != nil {
			s.Reset()
			return
		}
		ch := record{status: admitOK}
		rand.Read(ch.body[:])
		s.Write(ch.encode())
		pr := make([]byte, proofLen)
		if _, err := io.ReadFull(s, pr); err != nil {
			s.Reset()
			return
		}
		proofs.Add(1)
		fin := record{status: admitOK}
		rand.Read(fin.body[:])
		s.Write(fin.encode())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.Connect(ctx, peer.AddrInfo{ID: fake.ID(), Addrs: fake.Addrs()})
	if !errors.Is(err, ErrAdmission) || !strings.Contains(err.Error(), "could not prove the cluster key") {
		t.Fatalf("Connect to a fake responder: err = %v; want ErrAdmission naming the missing proof", err)
	}
	if a.IsAdmitted(fake.ID()) {
		t.Fatal("fake responder admitted")
	}
	if !a.blocked(fake.ID()) {
		t.Error("fake responder not blocklisted")
	}
	if proofs.Load() != 1 {
		t.Errorf("fake responder received %d proofs; want exactly 1 (what doc.go says it learns)", proofs.Load())
	}
	testutil.WaitFor(t, 2*time.Second, "rejection logged", func() (bool, string) {
		return strings.Contains(logs.String(), "failed cluster admission: the peer accepted our proof"), ""
	})
}

// TestStalledAdmissionBlocklistedWithBackoff: a peer that opens admission and never
// finishes, and one that connects and never opens it, are blocklisted; the window doubles.
func TestStalledAdmissionBlocklistedWithBackoff(t *testing.T) {
	cfg := fastConfig(t)
	cfg.ClusterKey = "stall-key-0123456789abcdef"
	cfg.AdmitTimeout = 400 * time.Millisecond
	cfg.RejectBackoff = 500 * time.Millisecond
	var logs logBuf
	cfg.Logger = testLogger(t, &logs)
	a := startHost(t, cfg, nil)
	raw := rawHost(t)

	stall := func() time.Duration {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := raw.Connect(ctx, peerInfo(a)); err != nil {
			t.Fatalf("connect: %v", err)
		}
		s, err := raw.NewStream(ctx, a.ID(), protoAdmit)
		if err != nil {
			t.Fatalf("open admission: %v", err)
		}
		defer s.Reset()
		s.Write([]byte("CAD2")) // a partial hello, then nothing
		var until time.Time
		testutil.WaitFor(t, 3*time.Second, "stalled peer blocklisted", func() (bool, string) {
			until = a.blockedUntil(raw.ID())
			return !until.IsZero(), ""
		})
		return time.Until(until)
	}
	strikes := func() int {
		a.mu.Lock()
		defer a.mu.Unlock()
		if r := a.rejected[raw.ID()]; r != nil {
			return r.strikes
		}
		return 0
	}
	w1 := stall()
	if n := strikes(); n != 1 || w1 > cfg.RejectBackoff {
		t.Fatalf("first stall: %d strikes, window %v; want 1 strike, at most %v", n, w1, cfg.RejectBackoff)
	}
	// Inside the window the node refuses the peer's connections.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	raw.Network().ClosePeer(a.ID())
	if err := raw.Connect(ctx, peerInfo(a)); err == nil {
		// The gater may let the transport finish before closing; what matters is that
		// the connection does not stay.
		testutil.WaitFor(t, 2*time.Second, "blocked peer's connection closed", func() (bool, string) {
			return raw.Network().Connectedness(a.ID()) != network.Connected, ""
		})
	}
	testutil.WaitFor(t, 3*time.Second, "first window over", func() (bool, string) { return !a.blocked(raw.ID()), "" })
	w2 := stall()
	if n := strikes(); n != 2 || w2 > 2*cfg.RejectBackoff {
		t.Errorf("second stall: %d strikes, window %v; want 2 strikes, a window of at most %v (doubled)", n, w2, 2*cfg.RejectBackoff)
	}
	if !strings.Contains(logs.String(), "admission stalled") {
		t.Errorf("no 'admission stalled' log line in:\n%s", logs.String())
	}

	// A peer that connects and never opens admission.
	silent := rawHost(t)
	if err := silent.Connect(ctx, peerInfo(a)); err != nil {
		t.Fatalf("connect: %v", err)
	}
	testutil.WaitFor(t, 3*time.Second, "silent peer blocklisted", func() (bool, string) { return a.blocked(silent.ID()), "" })
}

func TestOldAdmissionVersionNamed(t *testing.T) {
	cfg := fastConfig(t)
	var logs logBuf
	cfg.Logger = testLogger(t, &logs)
	a := startHost(t, cfg, nil)

	// An old node dialling us opens admission 1.0.0: reset, logged with what to do.
	old := rawHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := old.Connect(ctx, peerInfo(a)); err != nil {
		t.Fatal(err)
	}
	if s, err := old.NewStream(ctx, a.ID(), protoAdmitV1); err == nil {
		s.Write(append([]byte("CAD1"), make([]byte, 64)...))
		s.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, _ := s.Read(make([]byte, 65)); n > 0 {
			t.Errorf("an admission 1.0.0 peer got %d bytes", n)
		}
		s.Reset()
	}
	testutil.WaitFor(t, 3*time.Second, "old version logged", func() (bool, string) {
		return strings.Contains(logs.String(), "runs an older constellation") && strings.Contains(logs.String(), "upgrade it"), ""
	})

	// We dial an old node: the error says so.
	old2 := rawHost(t)
	old2.SetStreamHandler(protoAdmitV1, func(s network.Stream) { s.Reset() })
	err := a.Connect(ctx, peer.AddrInfo{ID: old2.ID(), Addrs: old2.Addrs()})
	if err == nil || !strings.Contains(err.Error(), "older constellation") {
		t.Errorf("Connect to an admission 1.0.0 node: err = %v; want it to name the older version", err)
	}
}

// TestOnlyMemberServicesRegistered lists every protocol the host answers: besides
// admission and identify, each must be a cluster protocol (member-only through Guard or
// the member host) - nothing a library enabled by default answers non-members.
func TestOnlyMemberServicesRegistered(t *testing.T) {
	a := startHost(t, fastConfig(t), nil)
	a.HandlePackets("p", func(peer.ID, []byte) {})
	open := []protocol.ID{protoAdmit, protoAdmitV1, "/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0"}
	// Guarded (member-only) NAT traversal protocols: TestRelayRefusesNonMembers checks
	// that a non-member gets nothing from them.
	guarded := []protocol.ID{proto.ProtoIDv2Hop, proto.ProtoIDv2Stop, holepunch.Protocol, ping.ID}
	for _, p := range a.h.Mux().Protocols() {
		switch {
		case slices.Contains(open, p), slices.Contains(guarded, p):
		case strings.HasPrefix(string(p), "/constellation/"+a.hash+"/"):
		case strings.HasPrefix(string(p), "/meshsub/"), strings.HasPrefix(string(p), "/floodsub/"):
		default:
			t.Errorf("host answers %s, which is neither admission, identify nor a member-only cluster protocol", p)
		}
	}
	for _, p := range a.h.Mux().Protocols() {
		if strings.Contains(string(p), "autonat") {
			t.Errorf("service %s is on", p)
		}
	}
}

func TestRejectLogRateLimited(t *testing.T) {
	cfg := fastConfig(t)
	cfg.RejectLogWindow = time.Hour // the summary is triggered by hand below
	cfg.RejectLogBurst = 3
	var logs logBuf
	cfg.Logger = testLogger(t, &logs)
	a := startHost(t, cfg, nil)
	one := randomPeerID(t)
	for i := 0; i < 5; i++ {
		a.block(one, "wrong cluster key", true)
	}
	for i := 0; i < 50; i++ {
		a.block(randomPeerID(t), "wrong cluster key", true)
	}
	if n := strings.Count(logs.String(), "failed cluster admission"); n != 3 {
		t.Errorf("%d rejection lines for 55 failures of 51 peers; want 3 (burst)", n)
	}
	if n := strings.Count(logs.String(), "peer "+one.String()+" failed"); n != 1 {
		t.Errorf("peer %s logged %d times in one window; want 1", one, n)
	}
	a.logRejectSummary()
	if !strings.Contains(logs.String(), "52 more admission failures from 49 peers") {
		t.Errorf("summary missing or wrong:\n%s", logs.String())
	}
	a.logRejectSummary() // nothing new: no line
	if n := strings.Count(logs.String(), "more admission failures"); n != 1 {
		t.Errorf("%d summary lines; want 1", n)
	}
}

func TestRejectLogWindow(t *testing.T) {
	l := newRejectLog(time.Minute, 2)
	p, q, r := peer.ID("p"), peer.ID("q"), peer.ID("r")
	t0 := time.Unix(1000, 0)
	steps := []struct {
		p    peer.ID
		at   time.Duration
		want bool
	}{
		{p, 0, true}, {p, time.Second, false}, {q, 2 * time.Second, true},
		{r, 3 * time.Second, false}, // burst of 2 used
		{p, 61 * time.Second, true}, {r, 62 * time.Second, true}, {q, 63 * time.Second, false},
	}
	for i, s := range steps {
		if got := l.allow(s.p, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: allow(%s, +%v) = %v; want %v", i, s.p, s.at, got, s.want)
		}
	}
	if n, peers := l.summary(); n != 3 || peers != 3 {
		t.Errorf("summary = %d lines, %d peers; want 3, 3", n, peers)
	}
}

func TestKeyStrength(t *testing.T) {
	cases := []struct {
		key  string
		weak bool
	}{
		{"", true},
		{"secret", true},
		{"a long shared secret", true},
		{"correct horse battery staple", true},
		{strings.Repeat("a", 40), true},
		{"abababababababababababababababab", true},
		{GenerateKey(), false},
		{"kQ9#vT2$wL7!pZ4@mR8^xN3&bH6*cJ1%", false},
		{"uD1RpJ1y0nLzq6oYw6n8Ew8u3nH1mZ0bGqN0sC7dKxA=", false}, // 32 bytes in base64
	}
	for _, c := range cases {
		weak, reason := KeyStrength(c.key)
		if weak != c.weak {
			t.Errorf("KeyStrength(%q) = %v (%s); want %v", c.key, weak, reason, c.weak)
		}
		if weak && !strings.Contains(reason, "constellation keygen") {
			t.Errorf("KeyStrength(%q) reason %q does not say how to fix it", c.key, reason)
		}
	}
	k := GenerateKey()
	if len(k) != 2*KeyBytes || k == GenerateKey() {
		t.Errorf("GenerateKey() = %q: want %d hex digits, different each time", k, 2*KeyBytes)
	}
}

func TestAdmitKeyCachedAndStretched(t *testing.T) {
	cluster := fmt.Sprintf("cache-%d", time.Now().UnixNano())
	start := time.Now()
	k1 := admitKey("some key", cluster)
	first := time.Since(start)
	start = time.Now()
	k2 := admitKey("some key", cluster)
	second := time.Since(start)
	if !bytes.Equal(k1, k2) {
		t.Fatal("derivation not deterministic")
	}
	if bytes.Equal(k1, admitKey("some key", cluster+"x")) || bytes.Equal(k1, admitKey("some kez", cluster)) {
		t.Fatal("key does not depend on cluster and secret")
	}
	want := expandAdmitKey(stretchKey("some key", cluster), cluster)
	if !bytes.Equal(k1, want) {
		t.Fatal("cached key is not the argon2id-stretched key")
	}
	t.Logf("argon2id derivation %v, cached lookup %v", first, second)
}
