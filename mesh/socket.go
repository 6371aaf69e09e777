package mesh

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/rads-lang/constellation/api"
)

// Per-instance entry points: a Unix socket in each local instance's run directory,
// /run/constellation/mesh.sock inside (CONSTELLATION_MESH_SOCKET), reachable whatever the
// instance's network. Calls through it carry the instance's identity: its namespace, and
// the service of an endpoint registered for it (none: no service name).
const (
	socketFile   = "mesh.sock"
	socketInside = "/run/constellation/" + socketFile
)

// RunSockets opens a socket in a local instance's run directory (the instance service).
type RunSockets interface {
	ListenRunSocket(name, file string) (net.Listener, string, error)
}

type instSocket struct {
	srv  *http.Server
	path string
	done chan struct{}
}

type instSockets struct {
	mu     sync.Mutex
	socks  map[string]*instSocket
	closed bool
}

// attachSocket serves the mesh socket of a local instance (once per run).
func (m *Service) attachSocket(name string) {
	rs, ok := m.insts.(RunSockets)
	if !ok {
		return
	}
	m.isocks.mu.Lock()
	if m.isocks.closed || m.isocks.socks[name] != nil {
		m.isocks.mu.Unlock()
		return
	}
	m.isocks.mu.Unlock()
	l, path, err := rs.ListenRunSocket(name, socketFile)
	if err != nil {
		m.log.Debug("mesh: no socket for instance", "instance", name, "err", err)
		return
	}
	s := &instSocket{path: path, done: make(chan struct{})}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{Protocols: &protos, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		BaseContext: func(net.Listener) context.Context { return m.ctx },
		Handler: m.served.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ns, caller := m.instanceIdentity(name)
			m.serveEntry(w, r, ns, caller)
		}))}
	m.isocks.mu.Lock()
	if m.isocks.closed || m.isocks.socks[name] != nil {
		m.isocks.mu.Unlock()
		l.Close()
		return
	}
	m.isocks.socks[name] = s
	m.isocks.mu.Unlock()
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Warn("mesh: instance socket stopped", "instance", name, "err", err)
		}
	}()
}

// detachSocket closes a removed instance's socket.
func (m *Service) detachSocket(name string) {
	m.isocks.mu.Lock()
	s := m.isocks.socks[name]
	delete(m.isocks.socks, name)
	m.isocks.mu.Unlock()
	if s != nil {
		s.close()
	}
}

func (s *instSocket) close() {
	s.srv.Close()
	<-s.done
	_ = os.Remove(s.path)
}

func (m *Service) closeSockets() {
	m.isocks.mu.Lock()
	m.isocks.closed = true
	socks := m.isocks.socks
	m.isocks.socks = nil
	m.isocks.mu.Unlock()
	for _, s := range socks {
		s.close()
	}
}

// instanceIdentity is the caller identity of a local instance: its namespace and the
// service of an endpoint this node registered for it.
func (m *Service) instanceIdentity(name string) (string, string) {
	ns := api.DefaultNamespace
	if in, ok := m.insts.LookupInstance(name); ok && in.Namespace != "" {
		ns = in.Namespace
	}
	best := ""
	for _, e := range m.idx.Load().byKey {
		if e.Peer == m.self && e.Rec.Instance == name && e.Rec.Namespace == ns && (best == "" || e.Rec.Service < best) {
			best = e.Rec.Service
		}
	}
	return ns, best
}

// InstanceSocket is the host path of a local instance's mesh socket ("" when none).
func (m *Service) InstanceSocket(name string) string {
	m.isocks.mu.Lock()
	defer m.isocks.mu.Unlock()
	if s := m.isocks.socks[name]; s != nil {
		return s.path
	}
	return ""
}
