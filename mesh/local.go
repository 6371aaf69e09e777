package mesh

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/rads-lang/constellation/internal/httpapi"
)

// localListener is the node's loopback entry point for instances (CONSTELLATION_MESH):
// HTTP/1.1 and h2c. A request reaches a service by its Host (NAME.mesh or
// NAME.NAMESPACE.mesh) or by a path prefix (/NAME/rest, the prefix removed); CONNECT
// NAME.mesh:PORT opens a raw TCP tunnel to an endpoint of a tcp service.
type localListener struct {
	m    *Service
	l    net.Listener
	addr string
	srv  *http.Server
	wg   sync.WaitGroup
}

func listenLocal(m *Service, addr string) (*localListener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("mesh: listen address %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("mesh: listen address %q: must be a loopback address (127.0.0.1:PORT)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mesh: listen %s: %w", addr, err)
	}
	ll := &localListener{m: m, l: l, addr: l.Addr().String()}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	ll.srv = &http.Server{Handler: m.served.wrap(ll), Protocols: &protos, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, BaseContext: func(net.Listener) context.Context { return m.ctx },
		ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelDebug)}
	return ll, nil
}

func (ll *localListener) serve() {
	ll.wg.Add(1)
	go func() {
		defer ll.wg.Done()
		_ = ll.srv.Serve(ll.l)
	}()
}

func (ll *localListener) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = ll.srv.Shutdown(ctx)
	_ = ll.srv.Close()
	ll.l.Close()
	ll.wg.Wait()
}

// target finds the service a request names: NAME[.NAMESPACE].mesh[:port] in Host, else
// the first path segment.
func meshTarget(r *http.Request) (ns, name, rest string, ok bool) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if base, found := strings.CutSuffix(host, ".mesh"); found {
		name, ns, _ = strings.Cut(base, ".")
		return ns, name, r.URL.Path, name != ""
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	name, rest, _ = strings.Cut(p, "/")
	return "", name, "/" + rest, name != ""
}

func (ll *localListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ll.m.serveEntry(w, r, "default", "")
}

// serveEntry serves one request of an entry point made by caller (NAMESPACE, NAME; NAME
// empty: no service identity). A name without namespace resolves in the caller's.
func (m *Service) serveEntry(w http.ResponseWriter, r *http.Request, callerNS, caller string) {
	ns, name, rest, ok := meshTarget(r)
	if !ok {
		http.Error(w, "mesh: name a service: Host: NAME.mesh, or a path /NAME/...", http.StatusBadRequest)
		return
	}
	if ns == "" {
		ns = callerNS
	}
	if r.Method == http.MethodConnect {
		m.tunnel(w, r, ns, name, callerNS, caller)
		return
	}
	r.URL.Path = rest
	r.URL.RawPath = ""
	spec := &callSpec{ns: ns, service: name, callerNS: callerNS, caller: caller, in: r, idempotent: idempotentMethod(r.Method),
		key: clientKey(r), h2: r.ProtoMajor == 2}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", name+".mesh"
			pr.Out.Host = r.Host
		},
		Transport:  callTransport{m: m, spec: spec},
		BufferPool: proxyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			st, code, msg := httpapi.Status(err)
			w.Header().Set("X-Mesh-Error-Code", code)
			http.Error(w, msg, st)
		},
	}
	rp.ServeHTTP(w, r)
}

// clientKey is ip_hash's key: the X-Mesh-Hash-Key header, else the client address.
func clientKey(r *http.Request) string {
	if k := r.Header.Get("X-Mesh-Hash-Key"); k != "" {
		return k
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return host
}

// tunnel answers CONNECT NAME.mesh:PORT with a raw TCP connection to an endpoint.
func (m *Service) tunnel(w http.ResponseWriter, r *http.Request, ns, name, callerNS, caller string) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	c, err := m.calls.dialService(ctx, ns, name, callerNS, caller, clientKey(r))
	cancel()
	if err != nil {
		st, _, msg := httpapi.Status(err)
		http.Error(w, msg, st)
		return
	}
	m.serveTunnel(w, r, c)
}
