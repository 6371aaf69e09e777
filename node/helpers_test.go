package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

// logBuf collects a node's log lines (safe for concurrent writers).
type logBuf struct {
	mu sync.Mutex // guards b
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

func (l *logBuf) contains(s string) bool { return strings.Contains(l.String(), s) }

// testNode is a started node with its log.
type testNode struct {
	*Node
	cfg Config
	log *logBuf
}

// nodeConfig is a loopback node with its own data dir, no mDNS and fast anti-entropy.
func nodeConfig(tb testing.TB, name string) Config {
	return Config{
		Node:                name,
		Cluster:             "test",
		Bind:                "127.0.0.1:0",
		NoMDNS:              true,
		DataDir:             tb.TempDir(),
		AntiEntropyInterval: 500 * time.Millisecond,
		// Nodes of one test share the host: no bridge each (sandbox/ tests bridges).
		DefaultNetwork: "host",
	}
}

// newTestNode builds (New) a node; the test closes it (Kill is fine too: Close after it is a no-op).
func newTestNode(tb testing.TB, cfg Config) (*testNode, error) {
	tb.Helper()
	lb := &logBuf{}
	n, err := New(cfg, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		return nil, err
	}
	tn := &testNode{Node: n, cfg: cfg, log: lb}
	tb.Cleanup(func() {
		_ = n.Kill() // fast; a test that wants a graceful leave calls Close itself
		if t, ok := tb.(*testing.T); ok && t.Failed() && testing.Verbose() {
			t.Logf("log of %s:\n%s", cfg.Node, lb.String())
		}
	})
	return tn, nil
}

// startTestNode builds and starts a node, failing the test on error.
func startTestNode(tb testing.TB, cfg Config) *testNode {
	tb.Helper()
	tn, err := newTestNode(tb, cfg)
	if err != nil {
		tb.Fatalf("New(%s): %v", cfg.Node, err)
	}
	if err := tn.Start(context.Background()); err != nil {
		tb.Fatalf("Start(%s): %v", cfg.Node, err)
	}
	return tn
}

// joinAddr is a --join value for n: its first full multiaddr (with /p2p/).
func joinAddr(tb testing.TB, n *Node) string {
	tb.Helper()
	as := n.Status().Addresses
	if len(as) == 0 {
		tb.Fatalf("node %s has no addresses", n.cfg.Node)
	}
	return as[0]
}

// startCluster starts count nodes; every node after the first joins the first one.
// mod, when non-nil, adjusts each config before start.
func startCluster(tb testing.TB, count int, mod func(i int, c *Config)) []*testNode {
	tb.Helper()
	var ns []*testNode
	for i := 0; i < count; i++ {
		cfg := nodeConfig(tb, fmt.Sprintf("n%d", i))
		if i > 0 {
			cfg.Join = []string{joinAddr(tb, ns[0].Node)}
		}
		if mod != nil {
			mod(i, &cfg)
		}
		ns = append(ns, startTestNode(tb, cfg))
	}
	return ns
}

// memberStatus returns how observer judges the node with peer ID id ("" if unknown).
func memberStatus(observer *Node, id string) string {
	for _, x := range observer.Nodes() {
		if x.ID == id {
			return x.Status
		}
	}
	return ""
}

// allSee reports whether every observer sees every target with status want.
func allSee(observers, targets []*testNode, want string) (bool, string) {
	for _, o := range observers {
		for _, tn := range targets {
			if got := memberStatus(o.Node, tn.ID().String()); got != want {
				return false, fmt.Sprintf("%s sees %s as %q, want %q", o.cfg.Node, tn.cfg.Node, got, want)
			}
		}
	}
	return true, ""
}

// unixHTTP is an HTTP client for a node's API socket.
func unixHTTP(n *Node) *http.Client {
	sock := n.SocketPath()
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// readEvents reads GET /v1/events?since=0 (every retained event, then new ones) until
// stop returns true for the events read so far or timeout passes; it returns them all.
func readEvents(tb testing.TB, n *Node, timeout time.Duration, stop func([]api.Event) bool) []api.Event {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://unix/v1/events?since=0", nil)
	resp, err := unixHTTP(n).Do(req)
	if err != nil {
		tb.Fatalf("GET /v1/events: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		tb.Fatalf("GET /v1/events: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var evs []api.Event
	sc := bufio.NewScanner(resp.Body)
	var id, typ string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			var e api.Event
			if err := json.Unmarshal([]byte(line[6:]), &e); err != nil {
				tb.Fatalf("event data %q: %v", line, err)
			}
			if e.Type != typ || fmt.Sprint(e.Seq) != id {
				tb.Fatalf("SSE frame id=%s event=%s does not match its data %+v", id, typ, e)
			}
			evs = append(evs, e)
			if stop(evs) {
				return evs
			}
		}
	}
	return evs
}

// hasNodeEvent reports whether evs contain an event of type typ about peer id.
func hasNodeEvent(evs []api.Event, typ, id string) bool {
	for _, e := range evs {
		if e.Type == typ && e.Node != nil && e.Node.ID == id {
			return true
		}
	}
	return false
}
