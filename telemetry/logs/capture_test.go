package logs

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/sandbox"
)

// Instance output is split into lines across writes, tagged with the instance's
// deployment and namespace; stderr lines are errors; a line without an end waits.
func TestOutputCapture(t *testing.T) {
	s := openTest(t, Config{})
	o := NewOutput(s, "n1", func(string) (string, string) { return "payment", "shop" })
	at := time.Now()
	o.InstanceOutput("pay-1", sandbox.Stdout, []byte("hello wor"), at)
	o.InstanceOutput("pay-1", sandbox.Stdout, []byte("ld\nWARN disk almost full\r\npartial"), at)
	o.InstanceOutput("pay-1", sandbox.Stderr, []byte("panic: boom\n"), at)
	o.InstanceOutput("pay-1", sandbox.Stdout, []byte(strings.Repeat("x", MaxMessageBytes+10)+"\n"), at)
	r := search(t, s, "", 100)
	if len(r.Entries) != 5 {
		t.Fatalf("%d entries: %+v", len(r.Entries), r.Entries)
	}
	byMsg := map[string]Entry{}
	for _, e := range r.Entries {
		byMsg[e.Message] = e
	}
	if e := byMsg["hello world"]; e.Instance != "pay-1" || e.Deployment != "payment" || e.Namespace != "shop" || e.Level != "info" || e.Stream != "stdout" {
		t.Fatalf("hello world: %+v", e)
	}
	if e := byMsg["WARN disk almost full"]; e.Level != "warn" {
		t.Fatalf("warn line: %+v", e)
	}
	if e := byMsg["panic: boom"]; e.Level != "error" || e.Stream != "stderr" {
		t.Fatalf("stderr line: %+v", e)
	}
	if r := search(t, s, "service=payment AND namespace=shop AND hello", 10); len(r.Entries) != 1 {
		t.Fatalf("service/namespace query: %d", len(r.Entries))
	}
	if r := search(t, s, "partial", 10); len(r.Entries) != 0 {
		t.Fatal("an unterminated line was stored")
	}
}

// The node's own log records go into the store with their attributes (and groups) and
// still reach the next handler.
func TestHandler(t *testing.T) {
	s := openTest(t, Config{})
	var out bytes.Buffer
	log := slog.New(NewHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}), s, "n1"))
	log.With("component", "p2p").WithGroup("peer").Info("peer admitted", "id", "12D3", "rtt", 3*time.Millisecond)
	log.Debug("not stored")
	log.Error("disk failed", "path", "/data")
	r := search(t, s, "stream=node", 10)
	if len(r.Entries) != 2 {
		t.Fatalf("%d entries", len(r.Entries))
	}
	if e := r.Entries[1]; e.Message != "peer admitted" || e.Fields["component"] != "p2p" || e.Fields["peer.id"] != "12D3" || e.Level != "info" {
		t.Fatalf("info entry %+v", e)
	}
	if !strings.Contains(out.String(), "disk failed") || strings.Contains(out.String(), "peer admitted") {
		t.Fatalf("next handler got %q", out.String())
	}
}
