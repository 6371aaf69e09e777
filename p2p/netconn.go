package p2p

// net.Listener and net.Conn over libp2p streams, for libraries that want a socket
// (hashicorp/raft's StreamLayer, a mesh proxy). Only admitted members connect: the
// listener's handler is registered through the member-only host and Dial waits for
// admission. Addresses are peer IDs.
//
// hashicorp/raft's StreamLayer is net.Listener plus
// Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error); since
// ServerAddress is a distinct string type, its user adapts Listener in one line:
//
//	type raftLayer struct{ *p2p.Listener }
//	func (l raftLayer) Dial(a raft.ServerAddress, t time.Duration) (net.Conn, error) {
//		return l.Listener.Dial(string(a), t)
//	}
//
// and uses string(peerID) as each server's address.

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// Addr is the address of one end of a stream connection: a peer and the protocol.
type Addr struct {
	Peer     peer.ID
	Protocol protocol.ID
}

// Network is "libp2p".
func (a Addr) Network() string { return "libp2p" }

// String is the peer ID, which Dial accepts back.
func (a Addr) String() string { return a.Peer.String() }

// Conn is a libp2p stream as a net.Conn. Close closes both directions gracefully;
// deadlines behave as net.Conn's (an expired one fails Read/Write with a timeout error).
type Conn struct {
	s             network.Stream
	local, remote Addr
}

func newConn(s network.Stream, local peer.ID) *Conn {
	pid := s.Protocol()
	return &Conn{s: s, local: Addr{local, pid}, remote: Addr{s.Conn().RemotePeer(), pid}}
}

func (c *Conn) Read(b []byte) (int, error)         { return c.s.Read(b) }
func (c *Conn) Write(b []byte) (int, error)        { return c.s.Write(b) }
func (c *Conn) Close() error                       { return c.s.Close() }
func (c *Conn) LocalAddr() net.Addr                { return c.local }
func (c *Conn) RemoteAddr() net.Addr               { return c.remote }
func (c *Conn) SetDeadline(t time.Time) error      { return c.s.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.s.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.s.SetWriteDeadline(t) }

// CloseWrite half-closes: the peer reads io.EOF, this side can still read.
func (c *Conn) CloseWrite() error { return c.s.CloseWrite() }

// Reset aborts the connection in both directions.
func (c *Conn) Reset() error { return c.s.Reset() }

// listenBacklog bounds the connections accepted by libp2p but not yet by Accept; a
// stream that waits longer than listenAcceptWait for room is reset.
const (
	listenBacklog    = 64
	listenAcceptWait = 10 * time.Second
)

// Listener accepts stream connections of one protocol from admitted members.
type Listener struct {
	h     *Host
	pid   protocol.ID
	scope string
	addr  Addr

	conns  chan network.Stream
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup // handlers waiting for room in conns
	mu     sync.Mutex     // orders wg.Add before Close's wg.Wait
	done   bool
}

// Listen registers ProtocolID(name) and returns a Listener for its connections.
func (h *Host) Listen(name string) (*Listener, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: listener name is empty; use NAME/VERSION like \"raft/1.0.0\"", ErrConfig)
	}
	if h.isClosed() {
		return nil, ErrClosed
	}
	pid := h.ProtocolID(name)
	l := &Listener{h: h, pid: pid, scope: "constellation/" + name, addr: Addr{h.ID(), pid},
		conns: make(chan network.Stream, listenBacklog), closed: make(chan struct{})}
	for _, p := range h.h.Mux().Protocols() {
		if p == pid {
			return nil, fmt.Errorf("%w: protocol %s already has a handler", ErrConfig, pid)
		}
	}
	h.mh.SetStreamHandler(pid, l.handle)
	return l, nil
}

func (l *Listener) handle(s network.Stream) {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		s.Reset()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()
	if err := s.Scope().SetService(l.scope); err != nil {
		s.Reset()
		return
	}
	t := time.NewTimer(listenAcceptWait)
	defer t.Stop()
	select {
	case l.conns <- s:
	case <-l.closed:
		s.Reset()
	case <-l.h.ctx.Done():
		s.Reset()
	case <-t.C:
		l.h.log.Debug("listener backlog full; connection reset", "protocol", l.pid, "peer", s.Conn().RemotePeer())
		s.Reset()
	}
}

// Accept waits for the next connection; after Close it returns net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case s := <-l.conns:
		return newConn(s, l.h.ID()), nil
	case <-l.closed:
		return nil, fmt.Errorf("p2p: listener %s: %w", l.pid, net.ErrClosed)
	}
}

// Close removes the handler and resets connections not yet accepted. Accepted ones
// are the caller's. It is safe to call twice.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.h.h.RemoveStreamHandler(l.pid)
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
		close(l.closed)
		l.wg.Wait()
		for {
			select {
			case s := <-l.conns:
				s.Reset()
			default:
				return
			}
		}
	})
	return nil
}

// Addr is this host's address for the protocol.
func (l *Listener) Addr() net.Addr { return l.addr }

// Dial opens a connection to the member at address (a peer ID, /p2p/ID, or a multiaddr
// ending in /p2p/ID, whose transport part is remembered for dialling) within timeout.
func (l *Listener) Dial(address string, timeout time.Duration) (net.Conn, error) {
	p, err := l.h.parsePeerAddress(address)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(l.h.ctx, timeout)
	defer cancel()
	return l.h.DialStream(ctx, p, l.pid)
}

// DialStream opens a net.Conn of protocol pid to member p (connecting and waiting for
// admission as needed, within ctx; ctx does not bound the connection once open).
func (h *Host) DialStream(ctx context.Context, p peer.ID, pid protocol.ID) (*Conn, error) {
	s, err := h.mh.NewStream(ctx, p, pid)
	if err != nil {
		return nil, fmt.Errorf("p2p: dial %s over %s: %w", p, pid, err)
	}
	if name, ok := strings.CutPrefix(string(pid), "/constellation/"+h.hash+"/"); ok {
		if err := s.Scope().SetService("constellation/" + name); err != nil {
			s.Reset()
			return nil, fmt.Errorf("p2p: dial %s over %s: resource manager: %w", p, pid, err)
		}
	}
	return newConn(s, h.ID()), nil
}

// parsePeerAddress accepts "ID", "/p2p/ID" or "<multiaddr>/p2p/ID".
func (h *Host) parsePeerAddress(address string) (peer.ID, error) {
	const accepted = "want a peer ID (12D3Koo...), /p2p/ID or a multiaddr ending in /p2p/ID"
	if !strings.HasPrefix(address, "/") {
		p, err := peer.Decode(address)
		if err != nil {
			return "", fmt.Errorf("%w: %q: %v; %s", ErrBadAddress, address, err, accepted)
		}
		return p, nil
	}
	m, err := ma.NewMultiaddr(address)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v; %s", ErrBadAddress, address, err, accepted)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v; %s", ErrBadAddress, address, err, accepted)
	}
	h.AddAddrs(ai.ID, ai.Addrs)
	return ai.ID, nil
}
