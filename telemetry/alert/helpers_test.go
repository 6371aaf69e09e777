package alert

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// ---- a local TSDB with a PromQL engine ----

type testDB struct {
	db *tsdb.DB
	q  EngineQuerier
}

func newTestDB(t testing.TB) *testDB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), quietLog(), nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	eng := promql.NewEngine(promql.EngineOpts{Logger: quietLog(), MaxSamples: 5e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	return &testDB{db: db, q: EngineQuerier{Engine: eng, Queryable: db}}
}

// fill appends v(t) for the series every step over [from, to].
func (d *testDB) fill(t testing.TB, lbls labels.Labels, from, to time.Time, step time.Duration, v func(time.Time) float64) {
	t.Helper()
	app := d.db.Appender(context.Background())
	for ts := from; !ts.After(to); ts = ts.Add(step) {
		if _, err := app.Append(0, lbls, ts.UnixMilli(), v(ts)); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// ---- in-process replication between state stores ----

type cluster struct {
	stores []*state.Store
	ch     chan delivery
	wg     sync.WaitGroup
}

type delivery struct {
	from int
	data []byte
}

type clusterPub struct {
	c    *cluster
	from int
}

func (p clusterPub) Publish(d []byte) { p.c.ch <- delivery{p.from, append([]byte(nil), d...)} }

// newCluster builds n state stores whose deltas reach each other (like gossip).
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{ch: make(chan delivery, 4096)}
	for i := range n {
		st, err := state.Open(state.Options{Path: filepath.Join(t.TempDir(), "state.db"), Cluster: "c", Fresh: true, Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Load([]byte{byte('a' + i)}, clusterPub{c, i}); err != nil {
			t.Fatal(err)
		}
		st.Start()
		c.stores = append(c.stores, st)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for d := range c.ch {
			for i, st := range c.stores {
				if i != d.from {
					_ = st.Apply(peer.ID("p"), d.data)
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(c.ch)
		c.wg.Wait()
		for _, st := range c.stores {
			_ = st.Close(true)
		}
	})
	return c
}

// ---- membership ----

type fakeMembers struct {
	mu     sync.Mutex
	status map[string]string
}

func newMembers(names ...string) *fakeMembers {
	m := &fakeMembers{status: map[string]string{}}
	for _, n := range names {
		m.status[n] = api.StatusAlive
	}
	return m
}

func (m *fakeMembers) set(name, status string) {
	m.mu.Lock()
	m.status[name] = status
	m.mu.Unlock()
}

func (m *fakeMembers) Nodes() []api.NodeInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []api.NodeInfo
	for n, s := range m.status {
		out = append(out, api.NodeInfo{Name: n, ID: "id-" + n, Status: s})
	}
	return out
}

func (m *fakeMembers) Settled() bool { return true }

// ---- a fake clock ----

type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()) }
func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }

// ---- a webhook receiver ----

type hook struct {
	srv   *httptest.Server
	mu    sync.Mutex
	got   []map[string]any
	fails atomic.Int32 // answer 503 this many times first
}

func newHook(t testing.TB) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.fails.Load() > 0 {
			h.fails.Add(-1)
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, m)
		h.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) messages() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.got...)
}

// ---- an SMTP sink: EHLO, STARTTLS (self-signed), AUTH PLAIN, MAIL, RCPT, DATA, QUIT ----

type sunkMail struct {
	From, To, Data, User string
	TLS                  bool
}

type smtpSink struct {
	ln         net.Listener
	tlsCfg     *tls.Config
	user, pass string
	mu         sync.Mutex
	mails      []sunkMail
	wg         sync.WaitGroup
}

func newSMTPSink(t testing.TB) *smtpSink {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sink"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln, user: "alerts", pass: "s3cret",
		tlsCfg: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpSink) addr() string { return s.ln.Addr().String() }

func (s *smtpSink) received() []sunkMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunkMail(nil), s.mails...)
}

func (s *smtpSink) serve(c net.Conn) {
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(c)
	var cur sunkMail
	_ = tp.PrintfLine("220 sink ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO", "HELO":
			if cur.TLS {
				_ = tp.PrintfLine("250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME")
			} else {
				_ = tp.PrintfLine("250-sink\r\n250-STARTTLS\r\n250 8BITMIME")
			}
		case "STARTTLS":
			_ = tp.PrintfLine("220 go ahead")
			tc := tls.Server(c, s.tlsCfg)
			if tc.Handshake() != nil {
				return
			}
			c, cur.TLS = tc, true
			tp = textproto.NewConn(tc)
		case "AUTH":
			f := strings.Fields(line)
			b, _ := base64.StdEncoding.DecodeString(f[len(f)-1])
			parts := strings.Split(string(b), "\x00")
			if !cur.TLS || len(parts) != 3 || parts[1] != s.user || parts[2] != s.pass {
				_ = tp.PrintfLine("535 authentication failed")
				continue
			}
			cur.User = parts[1]
			_ = tp.PrintfLine("235 ok")
		case "MAIL":
			cur.From = line
			_ = tp.PrintfLine("250 ok")
		case "RCPT":
			cur.To += line
			_ = tp.PrintfLine("250 ok")
		case "DATA":
			_ = tp.PrintfLine("354 go")
			b, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			cur.Data = string(b)
			s.mu.Lock()
			s.mails = append(s.mails, cur)
			s.mu.Unlock()
			_ = tp.PrintfLine("250 queued")
		case "QUIT":
			_ = tp.PrintfLine("221 bye")
			return
		default:
			_ = tp.PrintfLine("502 unknown")
		}
	}
}

func waitFor(t testing.TB, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
