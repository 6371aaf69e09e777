package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// Proxy is `constellation ui`: the dashboard of a node reachable only on its Unix socket,
// served on a local port. Whoever can open the socket is the node's owner, so the port
// admits only browsers holding a session, and sessions come only from one-time login codes
// (NewLoginCode) that the owner opens. Cookies and Authorization never reach the socket.
type Proxy struct {
	Sessions *Sessions
	front    *Front
	rp       *httputil.ReverseProxy
	tr       *http.Transport
}

// NewProxy serves the node listening on the Unix socket sock.
func NewProxy(sock string, sessions *Sessions) *Proxy {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	target := &url.URL{Scheme: "http", Host: "unix"}
	p := &Proxy{Sessions: sessions, tr: tr}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = "unix"
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del(CSRFHeader)
		},
		Transport:     tr,
		FlushInterval: -1, // event streams and log tails pass at once
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			httpapi.WriteError(w, http.StatusBadGateway, "unavailable", fmt.Sprintf("the node's socket %s does not answer: %v (is the node running?)", sock, err))
		},
	}
	p.front = &Front{Sessions: sessions, Proxy: true}
	return p
}

// Handler is the local port's handler.
func (p *Proxy) Handler() http.Handler { return p.front.Wrap(http.HandlerFunc(p.forward)) }

// Close drops the idle connections to the socket.
func (p *Proxy) Close() { p.tr.CloseIdleConnections() }

// NewLoginCode is a one-time code for GET /ui/login?code=... (valid LoginCodeTTL).
func (p *Proxy) NewLoginCode() (string, error) { return p.Sessions.NewCode("") }

// forward passes an authenticated request to the socket; the session answer gets the
// proxy's session (its CSRF token and end).
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request) {
	s, ok := SessionFrom(r.Context())
	if r.URL.Path != "/ui/session" || !ok {
		p.rp.ServeHTTP(w, r)
		return
	}
	rec := &bufferedResponse{header: http.Header{}}
	p.rp.ServeHTTP(rec, r)
	if rec.status != http.StatusOK {
		rec.copyTo(w)
		return
	}
	var who api.UISession
	if err := json.Unmarshal(rec.body.Bytes(), &who); err != nil {
		httpapi.WriteError(w, http.StatusBadGateway, "internal", "the node's GET /ui/session answer is not a session: "+err.Error())
		return
	}
	who.CSRFToken, who.Expires = s.CSRF, s.Expires.UTC().Format(time.RFC3339)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, who)
}

// bufferedResponse holds a small answer (the session) to rewrite it.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.body.Len()+len(p) > 1<<20 {
		return 0, io.ErrShortBuffer
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(b.body.Len()))
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}
