package api_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

const secret = "0123456789abcdef0123456789abcdef0123456789abcdef" // an admin token

// newIdentity generates a TCP API identity as a node does, in its own data dir.
func newIdentity(t *testing.T) (httpapi.TLSIdentity, string) {
	t.Helper()
	dir := t.TempDir()
	id, err := httpapi.LoadOrCreateTLS(dir, []string{"127.0.0.1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return id, dir
}

// recorder is a TLS server that records every Authorization header it is sent.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	auth []string
}

func newRecorder(t *testing.T, cfg *tls.Config) *recorder {
	t.Helper()
	r := &recorder{}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		w.Write([]byte(`{"name":"impostor"}`))
	}))
	r.srv.TLS = cfg
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point here
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) addr() string { return strings.TrimPrefix(r.srv.URL, "https://") }

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

// client builds a client for addr with the admin token, the given pins and a private
// known_nodes file.
func client(t *testing.T, cfg api.ClientConfig) *api.Client {
	t.Helper()
	cfg.Token = secret
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.KnownNodes == "" {
		cfg.KnownNodes = filepath.Join(t.TempDir(), "known_nodes")
	}
	c, err := api.NewClientConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func status(c *api.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Status(ctx)
	return err
}

// TestTokenNeverReachesAnImpostor: servers that are not the pinned node (another
// certificate, plain TCP, plain HTTP, TLS 1.2 only) never receive a request, so never the
// token, and the client says why.
func TestTokenNeverReachesAnImpostor(t *testing.T) {
	node, nodeDir := newIdentity(t)
	other, _ := newIdentity(t)

	t.Run("another certificate", func(t *testing.T) {
		imp := newRecorder(t, &tls.Config{Certificates: []tls.Certificate{other.Cert}})
		known := filepath.Join(t.TempDir(), "known_nodes")
		cases := []struct {
			name string
			cfg  api.ClientConfig
			want string
		}{
			{"pinned by flag", api.ClientConfig{API: imp.addr(), Fingerprint: node.Fingerprint}, "not the pinned " + node.Fingerprint},
			{"pinned by the data dir", api.ClientConfig{API: imp.addr(), DataDir: nodeDir}, filepath.Join(nodeDir, api.FingerprintFile)},
			{"no pin", api.ClientConfig{API: "https://" + imp.addr(), KnownNodes: known}, "no fingerprint is known"},
		}
		for _, tc := range cases {
			err := status(client(t, tc.cfg))
			var pe *api.PinError
			if !errors.As(err, &pe) || !errors.Is(err, api.ErrUnverified) || pe.Got != other.Fingerprint || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: err = %v; want a PinError (ErrUnverified) naming %s and %q", tc.name, err, other.Fingerprint, tc.want)
			}
		}
		if _, err := os.Stat(known); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("known_nodes written without --trust: %v", err)
		}
		if got := imp.seen(); len(got) != 0 {
			t.Fatalf("the impostor received requests: %q", got)
		}
	})

	t.Run("TLS 1.2 only", func(t *testing.T) {
		imp := newRecorder(t, &tls.Config{Certificates: []tls.Certificate{node.Cert}, MaxVersion: tls.VersionTLS12})
		err := status(client(t, api.ClientConfig{API: imp.addr(), Fingerprint: node.Fingerprint}))
		if !errors.Is(err, api.ErrUnverified) || !strings.Contains(err.Error(), "TLS 1.3") {
			t.Errorf("err = %v; want ErrUnverified naming TLS 1.3", err)
		}
		if got := imp.seen(); len(got) != 0 {
			t.Fatalf("the TLS 1.2 server received requests: %q", got)
		}
	})

	t.Run("plain TCP", func(t *testing.T) {
		for _, answer := range []string{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", ""} {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan []byte, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					got <- nil
					return
				}
				defer c.Close()
				// The transport finishes a dial in the background after the caller gave up,
				// so a silent listener reads until its own deadline.
				c.SetDeadline(time.Now().Add(time.Second))
				if answer != "" {
					c.Write([]byte(answer))
				}
				b, _ := io.ReadAll(c) // until the client gives up (or the deadline)
				got <- b
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			_, err = client(t, api.ClientConfig{API: l.Addr().String(), Fingerprint: node.Fingerprint}).Status(ctx)
			cancel()
			want := "does not speak TLS"
			if answer == "" {
				want = "deadline exceeded" // a silent listener: the caller's deadline ends it
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("answer %q: err = %v; want %q", answer, err, want)
			}
			b := <-got
			l.Close()
			if len(b) == 0 || bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("Authorization")) {
				t.Fatalf("answer %q: the listener received %d bytes %q; want a TLS ClientHello only", answer, len(b), b)
			}
		}
	})

	t.Run("plain http:// URL", func(t *testing.T) {
		var seen []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.Header.Get("Authorization"))
			w.Write([]byte(`{}`))
		}))
		defer srv.Close()
		_, err := api.NewClientConfig(api.ClientConfig{API: srv.URL, Token: secret, DataDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "plain HTTP") || !strings.Contains(err.Error(), strings.TrimPrefix(srv.URL, "http://")) {
			t.Errorf("http:// with the admin token: err = %v; want a refusal naming the TLS address", err)
		}
		// The instance API (plain, loopback) still takes an instance's token.
		c, err := api.NewClientConfig(api.ClientConfig{API: srv.URL, Token: "ci1.web.00ff", DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if err := status(c); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 1 || seen[0] != "Bearer ci1.web.00ff" {
			t.Fatalf("the instance API saw %q; want only the instance token", seen)
		}
	})
}

// TestPinnedRedirectStaysPinned: even the pinned node cannot send the client, and its token,
// to another origin or down to plain HTTP.
func TestPinnedRedirectStaysPinned(t *testing.T) {
	node, _ := newIdentity(t)
	var plainSeen []string
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainSeen = append(plainSeen, r.Header.Get("Authorization"))
	}))
	defer plain.Close()
	srv := httptest.NewUnstartedServer(http.RedirectHandler(plain.URL+"/v1/status", http.StatusFound))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{node.Cert}}
	srv.StartTLS()
	defer srv.Close()
	err := status(client(t, api.ClientConfig{API: srv.URL, Fingerprint: node.Fingerprint}))
	if err == nil || !strings.Contains(err.Error(), "refusing a redirect") {
		t.Fatalf("redirect to plain HTTP: err = %v; want a refusal", err)
	}
	if len(plainSeen) != 0 {
		t.Fatalf("the redirect target received %q", plainSeen)
	}
}

// TestTrustOnFirstUse: --trust records an unknown node's certificate; later clients accept
// it without --trust; a different certificate at that address is a hard error naming the
// file and line, with or without --trust, and the file is left as it was.
func TestTrustOnFirstUse(t *testing.T) {
	node, _ := newIdentity(t)
	other, _ := newIdentity(t)
	srv := newRecorder(t, &tls.Config{Certificates: []tls.Certificate{node.Cert}})
	known := filepath.Join(t.TempDir(), "cfg", "known_nodes")
	if err := os.MkdirAll(filepath.Dir(known), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(known, []byte("# trusted nodes\nexample.org:7947 "+other.Fingerprint), 0o600); err != nil { // no final newline
		t.Fatal(err)
	}
	var told []string
	c := client(t, api.ClientConfig{API: srv.addr(), KnownNodes: known, Trust: true,
		OnTrust: func(addr, fp, file string) { told = append(told, addr+" "+fp+" "+file) }})
	if err := status(c); err != nil {
		t.Fatalf("first use with Trust: %v", err)
	}
	want := srv.addr() + " " + node.Fingerprint
	if len(told) != 1 || told[0] != want+" "+known {
		t.Fatalf("OnTrust calls %q; want one for %s", told, want)
	}
	b, _ := os.ReadFile(known)
	if !strings.HasSuffix(string(b), "\n"+want+"\n") || !strings.Contains(string(b), other.Fingerprint+"\n") {
		t.Fatalf("known_nodes after --trust:\n%s\nwant the old lines kept and %q appended", b, want)
	}
	if err := status(client(t, api.ClientConfig{API: srv.addr(), KnownNodes: known})); err != nil {
		t.Fatalf("second use without Trust: %v", err)
	}
	if n := len(srv.seen()); n != 2 {
		t.Fatalf("the node saw %d requests; want 2", n)
	}

	// The same address now presents another certificate.
	srv.srv.Close()
	imp := newRecorderOn(t, srv.addr(), other.Cert)
	for _, trust := range []bool{false, true} {
		err := status(client(t, api.ClientConfig{API: srv.addr(), KnownNodes: known, Trust: trust}))
		var pe *api.PinError
		if !errors.As(err, &pe) || !pe.Changed || !strings.Contains(err.Error(), "HAS CHANGED") || !strings.Contains(err.Error(), "line 3 of "+known) {
			t.Errorf("trust=%v, changed certificate: err = %v; want a hard error naming line 3 of %s", trust, err, known)
		}
	}
	if got := imp.seen(); len(got) != 0 {
		t.Fatalf("the changed server received requests: %q", got)
	}
	if b2, _ := os.ReadFile(known); !bytes.Equal(b, b2) {
		t.Fatalf("known_nodes changed after a refusal:\n%s", b2)
	}
}

// newRecorderOn is newRecorder on a given address (a server taking over a port).
func newRecorderOn(t *testing.T, addr string, cert tls.Certificate) *recorder {
	t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port was just released
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	r.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
	})}}
	r.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	return r
}

// TestBadPinInput: malformed fingerprints and known_nodes lines are refused with what is
// wrong and what would be right.
func TestBadPinInput(t *testing.T) {
	const hex64 = "e210891cd3201d54257b2928185061fc85dbd85a0d0d8a15c11355159991acba"
	for _, in := range []string{"sha256:" + hex64, "SHA256:" + strings.ToUpper(hex64), hex64, " sha256:" + hex64 + "\n",
		"sha256:" + strings.ToUpper(colons(hex64))} {
		if got, err := api.ParseFingerprint(in); err != nil || got != "sha256:"+hex64 {
			t.Errorf("ParseFingerprint(%q) = %q, %v; want sha256:%s", in, got, err, hex64)
		}
	}
	for _, in := range []string{"", "sha256:", "sha256:12ab", "sha1:" + hex64, "sha256:" + hex64[:63] + "g", "sha256:" + hex64 + "00",
		"sha256:" + colons(hex64)[1:]} {
		if got, err := api.ParseFingerprint(in); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
			t.Errorf("ParseFingerprint(%q) = %q, %v; want an error saying 64 hex digits", in, got, err)
		}
	}
	_, err := api.NewClientConfig(api.ClientConfig{API: "127.0.0.1:7947", Fingerprint: "abc", DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "--api-fingerprint") || !strings.Contains(err.Error(), `"abc"`) {
		t.Errorf("malformed Fingerprint: err = %v; want one naming --api-fingerprint and the value", err)
	}
	if err := status(api.NewClient(t.TempDir(), "127.0.0.1", "")); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
		t.Errorf("--api without a port: err = %v; want one asking for HOST:PORT", err)
	}

	node, _ := newIdentity(t)
	srv := newRecorder(t, &tls.Config{Certificates: []tls.Certificate{node.Cert}})
	known := filepath.Join(t.TempDir(), "known_nodes")
	os.WriteFile(known, []byte("a:1 "+node.Fingerprint+"\nnode-2 sha256:xyz\n"), 0o600)
	err = status(client(t, api.ClientConfig{API: srv.addr(), KnownNodes: known, Trust: true}))
	if !errors.Is(err, api.ErrUnverified) || !strings.Contains(err.Error(), known+" line 2") {
		t.Errorf("malformed known_nodes: err = %v; want ErrUnverified naming line 2", err)
	}
	if len(srv.seen()) != 0 {
		t.Fatal("a request went out despite the unreadable known_nodes")
	}
}

func colons(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}
