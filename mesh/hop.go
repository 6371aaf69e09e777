package mesh

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/fsutil"
	"github.com/rads-lang/constellation/p2p"
)

// The hop protocol (/constellation/<cluster-hash>/mesh/1.0.0) carries calls between nodes:
// each libp2p stream (over the members' one QUIC connection, so streams are multiplexed)
// is an HTTP/1.1 or h2c connection from the caller's node to the endpoint's node, kept in
// a pool for the next requests. Every request names its endpoint and caller in headers:
//
//	X-Mesh-Endpoint: NODEID/NAMESPACE/SERVICE/ID   (must be hosted by the receiving node)
//	X-Mesh-Caller:   NAMESPACE/NAME or NAMESPACE/  (NAME empty: an operator's call)
//	traceparent:     W3C trace context
//
// The receiving node checks them (parseHop), verifies the caller's identity (a node may
// only speak for services it hosts), applies the intentions and forwards the request to
// the instance's port (TLS with the node's mesh certificate for TLS endpoints). CONNECT
// requests open a raw TCP tunnel; Upgrade (WebSocket) passes through.
const (
	hopProtocol = "mesh/1.0.0"
	hdrEndpoint = "X-Mesh-Endpoint"
	hdrCaller   = "X-Mesh-Caller"
	hdrError    = "X-Mesh-Error"
	maxHopHdr   = 512
)

// hopReq is a parsed hop request.
type hopReq struct {
	endpoint          string
	callerNS, caller  string
	targetNS, service string
}

// parseHop checks the mesh headers of a request received from another node.
func parseHop(h http.Header, self string) (hopReq, error) {
	var r hopReq
	ep := h.Values(hdrEndpoint)
	ca := h.Values(hdrCaller)
	if len(ep) != 1 || len(ca) != 1 {
		return r, fmt.Errorf("%w: want one %s and one %s header", ErrBadRequest, hdrEndpoint, hdrCaller)
	}
	if len(ep[0]) > maxHopHdr || len(ca[0]) > maxHopHdr {
		return r, fmt.Errorf("%w: mesh header too long", ErrBadRequest)
	}
	parts := strings.Split(ep[0], "/")
	if len(parts) != 4 || parts[0] != self {
		return r, fmt.Errorf("%w: endpoint %q is not hosted by this node", ErrBadRequest, ep[0])
	}
	if !api.ValidNamespace(parts[1]) || validName("service", parts[2]) != nil || parts[3] == "" || len(parts[3]) > 80 {
		return r, fmt.Errorf("%w: endpoint %q is malformed", ErrBadRequest, ep[0])
	}
	ns, name, ok := strings.Cut(ca[0], "/")
	if !ok {
		return r, fmt.Errorf("%w: caller %q: want NAMESPACE/NAME", ErrBadRequest, ca[0])
	}
	if !api.ValidNamespace(ns) {
		return r, fmt.Errorf("%w: caller %q: bad namespace", ErrBadRequest, ca[0])
	}
	if name != "" && validName("caller", name) != nil {
		return r, fmt.Errorf("%w: caller %q: bad service name", ErrBadRequest, ca[0])
	}
	return hopReq{endpoint: ep[0], callerNS: ns, caller: name, targetNS: parts[1], service: parts[2]}, nil
}

// peerKey holds the calling member's peer ID in a hop connection's context.
type peerKey struct{}

// hopServer serves the hop protocol.
type hopServer struct {
	m   *Service
	l   *p2p.Listener
	srv *http.Server
	wg  sync.WaitGroup
}

func startHop(m *Service, l *p2p.Listener) *hopServer {
	h := &hopServer{m: m, l: l}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	h.srv = &http.Server{Handler: m.served.wrap(http.HandlerFunc(h.serve)), Protocols: &protos, ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return m.ctx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if a, ok := c.RemoteAddr().(p2p.Addr); ok {
				return context.WithValue(ctx, peerKey{}, a.Peer)
			}
			return ctx
		}}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_ = h.srv.Serve(l)
	}()
	return h
}

func (h *hopServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
	_ = h.srv.Close()
	h.l.Close()
	h.wg.Wait()
}

func hopFail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set(hdrError, "1")
	http.Error(w, msg, status)
}

// serve is one request from another node.
func (h *hopServer) serve(w http.ResponseWriter, r *http.Request) {
	m := h.m
	if m.serveControl(w, r) {
		return
	}
	hr, err := parseHop(r.Header, m.self.String())
	if err != nil {
		hopFail(w, http.StatusBadRequest, err.Error())
		return
	}
	from, ok := r.Context().Value(peerKey{}).(peer.ID)
	if !ok {
		hopFail(w, http.StatusForbidden, "caller is not a member")
		return
	}
	if hr.caller != "" && !m.hosts(from, hr.callerNS, hr.caller) {
		name, _ := m.members.NameOf(from.String())
		hopFail(w, http.StatusForbidden, fmt.Sprintf("node %s does not host service %s/%s and cannot call as it", name, hr.callerNS, hr.caller))
		return
	}
	if ok, why := m.Allowed(hr.callerNS, hr.caller, hr.targetNS, hr.service); !ok {
		hopFail(w, http.StatusForbidden, why)
		return
	}
	e, ok := m.idx.Load().byKey[hr.endpoint]
	if !ok {
		hopFail(w, http.StatusServiceUnavailable, "endpoint "+hr.endpoint+" is not registered here")
		return
	}
	if !e.Rec.Healthy {
		hopFail(w, http.StatusServiceUnavailable, "endpoint "+e.ID()+" is unhealthy: "+e.Rec.Reason)
		return
	}
	r.Header.Del(hdrEndpoint)
	ctx := otelProp.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := m.tracer.Start(ctx, "mesh.serve "+e.Rec.Service, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("mesh.service", e.Rec.Service), attribute.String("mesh.endpoint", e.ID()),
			attribute.String("mesh.caller", hr.callerNS+"/"+hr.caller), attribute.String("http.request.method", r.Method)))
	defer span.End()
	otelProp.Inject(ctx, propagation.HeaderCarrier(r.Header))
	r = r.WithContext(ctx)
	if r.Method == http.MethodConnect {
		m.tunnelLocal(w, r, e)
		return
	}
	rec := &statusRecorder{ResponseWriter: w}
	m.forwardLocal(rec, r, e)
	if rec.status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(rec.status))
	}
	span.SetAttributes(attribute.Int("http.response.status_code", rec.status))
}

// hosts reports whether node p hosts an endpoint of ns/name.
func (m *Service) hosts(p peer.ID, ns, name string) bool {
	se := m.idx.Load().services[ns+"/"+name]
	if se == nil {
		return false
	}
	for _, e := range se.eps {
		if e.Peer == p {
			return true
		}
	}
	return false
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(c int) {
	if s.status == 0 {
		s.status = c
	}
	s.ResponseWriter.WriteHeader(c)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = 200
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// forwardLocal proxies r to an endpoint on this node.
func (m *Service) forwardLocal(w http.ResponseWriter, r *http.Request, e Endpoint) {
	scheme := "http"
	if e.Rec.TLS {
		scheme = "https"
	}
	target := &url.URL{Scheme: scheme, Host: e.Addr()}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del(hdrEndpoint)
		},
		Transport:  m.pool.localTransport(e),
		BufferPool: proxyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			hopFail(w, http.StatusBadGateway, fmt.Sprintf("endpoint %s (%s): %v", e.ID(), e.Addr(), shortErr(err)))
		},
	}
	rp.ServeHTTP(w, r)
}

// tunnelLocal answers CONNECT: a raw TCP tunnel to the endpoint.
func (m *Service) tunnelLocal(w http.ResponseWriter, r *http.Request, e Endpoint) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	c, err := d.DialContext(ctx, "tcp", e.Addr())
	cancel()
	if err != nil {
		hopFail(w, http.StatusBadGateway, fmt.Sprintf("endpoint %s: %v", e.ID(), shortErr(err)))
		return
	}
	m.serveTunnel(w, r, c)
}

// serveTunnel answers a CONNECT whose far end c is open: 200, then bytes both ways until
// both directions end or the node shuts down. c is closed on return.
func (m *Service) serveTunnel(w http.ResponseWriter, r *http.Request, c net.Conn) {
	defer c.Close()
	if r.ProtoMajor == 2 { // h2 CONNECT: the request body and response body are the tunnel
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		m.splice(c, struct {
			io.Reader
			io.Writer
		}{r.Body, flushWriter{w}}, r.Body)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		hopFail(w, http.StatusInternalServerError, "hijack: "+err.Error())
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		return
	}
	var src io.Reader = conn
	if brw != nil && brw.Reader.Buffered() > 0 {
		src = io.MultiReader(io.LimitReader(brw.Reader, int64(brw.Reader.Buffered())), conn)
	}
	m.splice(c, struct {
		io.Reader
		io.Writer
	}{src, conn}, conn)
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	http.NewResponseController(f.w).Flush()
	return n, err
}

// splice copies both ways until both directions end; the node's shutdown closes a and
// bc (b's closer) so that a tunnel never outlives it.
func (m *Service) splice(a net.Conn, b io.ReadWriter, bc io.Closer) {
	stop := context.AfterFunc(m.ctx, func() {
		a.Close()
		bc.Close()
	})
	defer stop()
	done := make(chan struct{})
	go func() {
		io.Copy(a, b)
		if cw, ok := a.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		close(done)
	}()
	io.Copy(b, a)
	if cw, ok := b.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	<-done
}

// ---- the caller's side: pooled connections ----

// pool holds the HTTP transports of this node: to other nodes over hop streams (one
// HTTP/1.1 and one h2c transport per node, idle connections kept) and to local endpoints.
type pool struct {
	m     *Service
	mu    sync.Mutex
	peers map[peer.ID]*peerTransports
	local *http.Transport
	h2c   *http.Transport
	tls   *http.Transport
}

type peerTransports struct{ h1, h2 *http.Transport }

// maxStreamsPerPeer bounds the HTTP/1.1 hop streams open to one node (busy and idle): the
// libp2p resource manager admits 64 inbound streams of one protocol from one peer on a
// small machine, so more concurrent requests wait for a stream instead of being reset.
// Upgraded (WebSocket) and CONNECT streams are not pooled and not counted here.
const maxStreamsPerPeer = 48

func newPool(m *Service) *pool {
	p := &pool{m: m, peers: map[peer.ID]*peerTransports{}}
	p.local = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	p.h2c = &http.Transport{Protocols: &h2, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	return p
}

// localTransport is the transport to an endpoint on this node.
func (p *pool) localTransport(e Endpoint) http.RoundTripper {
	if e.Rec.TLS {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.tls == nil {
			var tc *tls.Config
			if t := p.m.tlsConf.Load(); t != nil {
				tc = t.client.Clone()
			}
			p.tls = &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}
		}
		return p.tls
	}
	if e.Rec.Protocol == "grpc" {
		return p.h2c
	}
	return p.local
}

// remote is the transport to node id (h2 for gRPC and other HTTP/2 requests).
func (p *pool) remote(id peer.ID, h2 bool) *http.Transport {
	p.mu.Lock()
	defer p.mu.Unlock()
	pt := p.peers[id]
	if pt == nil {
		pid := p.m.host.ProtocolID(hopProtocol)
		dial := func(ctx context.Context, _, _ string) (net.Conn, error) { return p.m.dialHop(ctx, id, pid) }
		var h2p http.Protocols
		h2p.SetUnencryptedHTTP2(true)
		pt = &peerTransports{
			h1: &http.Transport{DialContext: dial, MaxConnsPerHost: maxStreamsPerPeer, MaxIdleConnsPerHost: maxStreamsPerPeer,
				IdleConnTimeout: 90 * time.Second, DisableCompression: true},
			h2: &http.Transport{DialContext: dial, Protocols: &h2p, IdleConnTimeout: 90 * time.Second, DisableCompression: true},
		}
		p.peers[id] = pt
	}
	if h2 {
		return pt.h2
	}
	return pt.h1
}

func (m *Service) dialHop(ctx context.Context, id peer.ID, pid protocol.ID) (net.Conn, error) {
	c, err := m.host.DialStream(ctx, id, pid)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pt := range p.peers {
		pt.h1.CloseIdleConnections()
		pt.h2.CloseIdleConnections()
	}
	p.local.CloseIdleConnections()
	p.h2c.CloseIdleConnections()
	if p.tls != nil {
		p.tls.CloseIdleConnections()
	}
}

// dialTunnel opens a raw TCP tunnel to endpoint e (CONNECT over a hop stream, or a
// direct connection for a local endpoint).
func (m *Service) dialTunnel(ctx context.Context, e Endpoint, callerNS, caller string) (net.Conn, error) {
	if e.Peer == m.self {
		if ok, why := m.Allowed(callerNS, caller, e.Rec.Namespace, e.Rec.Service); !ok {
			return nil, fmt.Errorf("%w: %s", ErrDenied, why)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", e.Addr())
	}
	c, err := m.dialHop(ctx, e.Peer, m.host.ProtocolID(hopProtocol))
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Host: e.Rec.Service + ".mesh:0"}, Host: e.Rec.Service + ".mesh:0",
		Header: http.Header{hdrEndpoint: {e.Key}, hdrCaller: {callerNS + "/" + caller}}, ProtoMajor: 1, ProtoMinor: 1}
	otelProp.Inject(ctx, propagation.HeaderCarrier(req.Header))
	if err := req.Write(c); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		c.Close()
		return nil, fmt.Errorf("%w: endpoint %s: %d %s", ErrUnavailable, e.ID(), resp.StatusCode, strings.TrimSpace(string(b)))
	}
	c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return &bufConn{Conn: c, r: io.MultiReader(io.LimitReader(br, int64(br.Buffered())), c)}, nil
	}
	return c, nil
}

type bufConn struct {
	net.Conn
	r io.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ---- mTLS material for TLS endpoints (enable-mtls) ----

type tlsState struct {
	paths  [3]string
	client *tls.Config
}

type tlsFile struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
	CA   string `json:"ca"`
}

// EnableMTLS loads the certificate, key and CA used on the last hop to TLS endpoints
// (client certificate, server verified against the CA) and remembers the paths.
func (m *Service) EnableMTLS(cert, key, ca string) error {
	st, err := loadTLSFiles(cert, key, ca)
	if err != nil {
		return err
	}
	if m.cfg.DataDir != "" {
		b, _ := json.Marshal(tlsFile{cert, key, ca})
		if err := fsutil.WriteFile(filepath.Join(m.cfg.DataDir, "mesh-tls.json"), b, 0o600); err != nil {
			return err
		}
	}
	m.tlsConf.Store(st)
	m.pool.mu.Lock()
	if m.pool.tls != nil {
		m.pool.tls.CloseIdleConnections()
		m.pool.tls = nil
	}
	m.pool.mu.Unlock()
	return nil
}

func loadTLSFiles(cert, key, ca string) (*tlsState, error) {
	if cert == "" || key == "" || ca == "" {
		return nil, bad("fields \"cert\", \"key\" and \"ca\" are all required (paths on the node)")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, bad("fields \"cert\"/\"key\": %v", err)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, bad("field \"ca\": %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, bad("field \"ca\": %s holds no PEM certificate", ca)
	}
	return &tlsState{paths: [3]string{cert, key, ca}, client: &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}}, nil
}

func (m *Service) loadTLS() {
	if m.cfg.DataDir == "" {
		return
	}
	b, err := os.ReadFile(filepath.Join(m.cfg.DataDir, "mesh-tls.json"))
	if err != nil {
		return
	}
	var f tlsFile
	if json.Unmarshal(b, &f) != nil {
		return
	}
	st, err := loadTLSFiles(f.Cert, f.Key, f.CA)
	if err != nil {
		m.log.Warn("mesh: mTLS files no longer load", "err", err)
		return
	}
	m.tlsConf.Store(st)
}

// bufPool lends the proxies their copy buffers (httputil.ReverseProxy allocates 32 KiB
// per response without one: most of the mesh's garbage under load).
type bufPool struct{ p sync.Pool }

var proxyBuffers = &bufPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

func (b *bufPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufPool) Put(x []byte) { b.p.Put(&x) }
