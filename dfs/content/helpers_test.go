package content

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"

	"github.com/rads-lang/constellation/internal/testutil"
	"github.com/rads-lang/constellation/p2p"
)

func testLog(tb testing.TB) *slog.Logger {
	if os.Getenv("DFS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// transports picks the loopback listen addresses of test hosts.
type transport string

const (
	quicOnly transport = "quic"
	tcpOnly  transport = "tcp"
	both     transport = "both"
)

func listenAddrs(tr transport) []ma.Multiaddr {
	q := ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")
	tc := ma.StringCast("/ip4/127.0.0.1/tcp/0")
	switch tr {
	case quicOnly:
		return []ma.Multiaddr{q}
	case tcpOnly:
		return []ma.Multiaddr{tc}
	}
	return []ma.Multiaddr{q, tc}
}

// startHosts starts n real p2p hosts of one cluster on loopback, all admitted to each
// other (as node does), closed at cleanup.
func startHosts(tb testing.TB, n int, tr transport, mods ...func(*p2p.Config)) []*p2p.Host {
	tb.Helper()
	var hs []*p2p.Host
	for range n {
		cfg := p2p.Config{
			Cluster:      "dfs-test",
			Listen:       listenAddrs(tr),
			IdentityFile: filepath.Join(tb.TempDir(), "id.key"),
			Logger:       testLog(tb),
			DisableDHT:   true,
			NoPortMap:    true,
		}
		for _, prev := range hs {
			cfg.Join = append(cfg.Join, joinAddr(tb, prev))
		}
		for _, m := range mods {
			m(&cfg)
		}
		h, err := p2p.New(cfg)
		if err != nil {
			tb.Fatalf("p2p.New: %v", err)
		}
		tb.Cleanup(func() { h.Close() })
		if err := h.Start(context.Background(), nil); err != nil {
			tb.Fatalf("Start: %v", err)
		}
		hs = append(hs, h)
	}
	testutil.WaitFor(tb, 15*time.Second, "admission", func() (bool, string) {
		for _, h := range hs {
			if len(h.Admitted()) < n-1 {
				return false, h.ID().String() + " has not admitted everyone"
			}
		}
		return true, ""
	})
	return hs
}

func joinAddr(tb testing.TB, h *p2p.Host) p2p.JoinAddr {
	tb.Helper()
	for _, a := range h.Addrs() {
		s := a.String()
		if strings.HasPrefix(s, "/ip4/127.0.0.1/") {
			j, err := p2p.ParseJoin(s)
			if err != nil {
				tb.Fatalf("ParseJoin(%q): %v", s, err)
			}
			return j
		}
	}
	tb.Fatalf("no loopback address in %v", h.Addrs())
	return p2p.JoinAddr{}
}

// newStore opens a store in a temp dir (closed at cleanup).
func newStore(tb testing.TB, net Network, mod func(*Config)) *Store {
	tb.Helper()
	cfg := Config{Dir: tb.TempDir(), ClusterID: "dfs-test", Log: testLog(tb), FetchTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	var n Network
	if net != nil {
		n = net
	}
	s, err := New(context.Background(), cfg, n)
	if err != nil {
		tb.Fatalf("content.New: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func add(tb testing.TB, s *Store, data []byte, chunker string) Added {
	tb.Helper()
	a, err := s.Add(ctxT(tb), bytes.NewReader(data), AddOptions{Chunker: chunker})
	if err != nil {
		tb.Fatalf("Add: %v", err)
	}
	return a
}

func readAll(tb testing.TB, s *Store, root cid.Cid, holders ...peer.ID) []byte {
	tb.Helper()
	f, err := s.Open(ctxT(tb), root, holders)
	if err != nil {
		tb.Fatalf("Open(%s): %v", root, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		tb.Fatalf("read %s: %v", root, err)
	}
	return b
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func timeNow() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustSum(b []byte) mh.Multihash {
	h, err := mh.Sum(b, mh.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return h
}
