package httpapi

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

var quiet = slog.New(slog.DiscardHandler)

// TestLoadOrCreateTLS: the identity is generated once (files 0600, fingerprint file
// matching), loaded unchanged afterwards, and replaced only when its files are unusable.
func TestLoadOrCreateTLS(t *testing.T) {
	dir := t.TempDir()
	id, err := LoadOrCreateTLS(dir, []string{"10.1.2.3", "node-1", "0.0.0.0", "bad name!", "node-1"}, quiet)
	if err != nil || !id.Created {
		t.Fatalf("first LoadOrCreateTLS: created %v, %v; want a new identity", id.Created, err)
	}
	for name, mode := range map[string]os.FileMode{CertFile: 0o600, KeyFile: 0o600, api.FingerprintFile: 0o644} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v; want mode %v", name, fi, err, mode)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, api.FingerprintFile)); strings.TrimSpace(string(b)) != id.Fingerprint {
		t.Fatalf("fingerprint file %q; want %s", b, id.Fingerprint)
	}
	leaf, err := x509.ParseCertificate(id.Cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(leaf.DNSNames, ","); got != "localhost,node-1" {
		t.Errorf("DNS SANs %s; want localhost,node-1", got)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if got := strings.Join(ips, ","); got != "127.0.0.1,::1,10.1.2.3" {
		t.Errorf("IP SANs %s; want 127.0.0.1,::1,10.1.2.3", got)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 10*365*24*time.Hour {
		t.Errorf("validity %v; want years", life)
	}
	// Usable as its own root (curl --cacert api.crt) for the names it carries.
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, name := range []string{"127.0.0.1", "localhost", "node-1", "10.1.2.3"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("verify as %s with the certificate as root: %v", name, err)
		}
	}

	again, err := LoadOrCreateTLS(dir, []string{"10.9.9.9"}, quiet)
	if err != nil || again.Created || again.Fingerprint != id.Fingerprint {
		t.Fatalf("second LoadOrCreateTLS: %s created %v, %v; want the same %s loaded", again.Fingerprint, again.Created, err, id.Fingerprint)
	}

	// Unusable pairs are replaced: a damaged certificate, a lost key, another key.
	other := t.TempDir()
	if _, err := LoadOrCreateTLS(other, nil, quiet); err != nil {
		t.Fatal(err)
	}
	otherKey, _ := os.ReadFile(filepath.Join(other, KeyFile))
	prev := id.Fingerprint
	for _, damage := range []struct {
		name string
		do   func() error
	}{
		{"garbage certificate", func() error { return os.WriteFile(filepath.Join(dir, CertFile), []byte("garbage"), 0o600) }},
		{"missing key", func() error { return os.Remove(filepath.Join(dir, KeyFile)) }},
		{"another node's key", func() error { return os.WriteFile(filepath.Join(dir, KeyFile), otherKey, 0o600) }},
		{"missing certificate", func() error { return os.Remove(filepath.Join(dir, CertFile)) }},
	} {
		if err := damage.do(); err != nil {
			t.Fatal(err)
		}
		got, err := LoadOrCreateTLS(dir, nil, quiet)
		if err != nil || !got.Created || got.Fingerprint == prev {
			t.Fatalf("%s: created %v, %v, fingerprint %s; want a new identity", damage.name, got.Created, err, got.Fingerprint)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, api.FingerprintFile)); strings.TrimSpace(string(b)) != got.Fingerprint {
			t.Fatalf("%s: fingerprint file %q; want %s", damage.name, b, got.Fingerprint)
		}
		block, _ := pem.Decode(mustRead(t, filepath.Join(dir, CertFile)))
		if block == nil || api.Fingerprint(block.Bytes) != got.Fingerprint {
			t.Fatalf("%s: api.crt does not hold the new certificate", damage.name)
		}
		prev = got.Fingerprint
	}
	// A read error other than "missing" is not a reason to change identity.
	if err := os.Remove(filepath.Join(dir, CertFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, CertFile), 0o700); err != nil { // reading it fails: a directory
		t.Fatal(err)
	}
	if _, err := LoadOrCreateTLS(dir, nil, quiet); err == nil || !strings.Contains(err.Error(), CertFile) {
		t.Fatalf("unreadable certificate: err = %v; want an error naming it, not a new identity", err)
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRefusedHandshakeIsNotAnError: a client refusing the certificate (or anyone failing a
// handshake) is a debug line in the node's log, never an error line.
func TestRefusedHandshakeIsNotAnError(t *testing.T) {
	var out syncBuffer
	s := New(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	defer s.Close()
	id, err := LoadOrCreateTLS(t.TempDir(), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.ListenTCP("127.0.0.1:0", id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClientConfig(api.ClientConfig{DataDir: t.TempDir(), API: addr.String(),
		Fingerprint: "sha256:" + strings.Repeat("00", 32)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, api.ErrUnverified) {
		t.Fatalf("client with another pin: %v; want ErrUnverified", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "API connection refused") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if log := out.String(); !strings.Contains(log, "level=DEBUG msg=\"API connection refused\"") || strings.Contains(log, "level=ERROR") {
		t.Fatalf("node log after a refused handshake:\n%s\nwant one debug line and no error", log)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// benchServers starts the status route on a plain listener (no token) and on the TLS
// listener (token required), as a node serves them.
func benchServers(b *testing.B) (plain, tlsAddr string, id TLSIdentity) {
	s := New(quiet, nil)
	s.Handle("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, api.StatusInfo{Name: "bench", Cluster: "c", Version: "v"})
	})
	s.SetToken("0123456789abcdef0123456789abcdef0123456789abcdef")
	id, err := LoadOrCreateTLS(b.TempDir(), nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s.Serve(l, s.Handler())
	a, err := s.ListenTCP("127.0.0.1:0", id)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return l.Addr().String(), a.String(), id
}

func benchClient(b *testing.B, api_ string, fp string) *api.Client {
	tok := ""
	if fp != "" {
		tok = "0123456789abcdef0123456789abcdef0123456789abcdef"
	}
	c, err := api.NewClientConfig(api.ClientConfig{DataDir: b.TempDir(), API: api_, Token: tok, Fingerprint: fp,
		KnownNodes: filepath.Join(b.TempDir(), "known_nodes")})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkTCPAPIFirstRequest: what a CLI command pays to reach a node over TCP: connect and
// GET /v1/status on a new connection, plain HTTP against TLS 1.3 with the pin check,
// alternating in the same loop so both see the same machine.
func BenchmarkTCPAPIFirstRequest(b *testing.B) {
	plainAddr, tlsAddr, id := benchServers(b)
	plain, pinned := benchClient(b, "http://"+plainAddr, ""), benchClient(b, tlsAddr, id.Fingerprint)
	ctx := context.Background()
	var tPlain, tTLS time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := plain.Status(ctx); err != nil {
			b.Fatal(err)
		}
		plain.CloseIdleConnections()
		t1 := time.Now()
		if _, err := pinned.Status(ctx); err != nil {
			b.Fatal(err)
		}
		pinned.CloseIdleConnections()
		tTLS += time.Since(t1)
		tPlain += t1.Sub(t0)
	}
	reportPlainTLS(b, tPlain, tTLS)
}

// BenchmarkTCPAPIReusedConnection: a request on a kept-alive connection (a long-running
// client such as the dashboard), plain HTTP against TLS, same loop.
func BenchmarkTCPAPIReusedConnection(b *testing.B) {
	plainAddr, tlsAddr, id := benchServers(b)
	plain, pinned := benchClient(b, "http://"+plainAddr, ""), benchClient(b, tlsAddr, id.Fingerprint)
	ctx := context.Background()
	for _, c := range []*api.Client{plain, pinned} { // connect outside the timing
		if _, err := c.Status(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var tPlain, tTLS time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := plain.Status(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := pinned.Status(ctx); err != nil {
			b.Fatal(err)
		}
		tTLS += time.Since(t1)
		tPlain += t1.Sub(t0)
	}
	reportPlainTLS(b, tPlain, tTLS)
}

// reportPlainTLS reports the mean request time of each transport and their ratio.
func reportPlainTLS(b *testing.B, tPlain, tTLS time.Duration) {
	b.ReportMetric(float64(tPlain)/1e3/float64(b.N), "plain-µs/req")
	b.ReportMetric(float64(tTLS)/1e3/float64(b.N), "tls-µs/req")
	b.ReportMetric(float64(tTLS)/float64(tPlain), "tls/plain")
}
