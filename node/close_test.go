package node

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// openEventStreams opens count GET /v1/events streams on n's socket and waits until each
// has its first line (the stream is being served).
func openEventStreams(tb testing.TB, n *Node, count int) []*http.Response {
	tb.Helper()
	cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", n.SocketPath())
	}}}
	var out []*http.Response
	for range count {
		resp, err := cl.Get("http://unix/v1/events")
		if err != nil {
			tb.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, ":") {
			tb.Fatalf("event stream's first line %q, %v", line, err)
		}
		out = append(out, resp)
	}
	tb.Cleanup(func() {
		for _, r := range out {
			r.Body.Close()
		}
	})
	return out
}

// TestCloseWithOpenStreams: open event streams end when the node closes; Close does not wait
// for them to time out (it used to take 2 s per open stream).
func TestCloseWithOpenStreams(t *testing.T) {
	n := startTestNode(t, nodeConfig(t, "n0"))
	openEventStreams(t, n.Node, 10)
	start := time.Now()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	// The bound is generous for a loaded machine; the old behaviour took 20 s here.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close with 10 open event streams took %v", d)
	}
}

// BenchmarkCloseWithStreams reports how long Close takes with 10 open event streams.
func BenchmarkCloseWithStreams(b *testing.B) {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		n := startTestNode(b, nodeConfig(b, "n0"))
		openEventStreams(b, n.Node, 10)
		b.StartTimer()
		start := time.Now()
		if err := n.Close(); err != nil { // graceful: leave, flush, close
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/close")
}
