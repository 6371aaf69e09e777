package locks

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/p2p"
)

// Protocol names on the member-only host (cluster-private protocol IDs).
const (
	raftProtocol    = "locks-raft/1.0.0"
	forwardProtocol = "locks/1.0.0"
)

// P2PNetwork carries the lock group over libp2p streams between admitted members: Raft's
// RPCs on a stream listener (raft.NetworkTransport over p2p.Listener) and forwarded
// requests on a p2p.Service (one bounded CBOR frame each way, deadlines on both sides).
type P2PNetwork struct {
	host  *p2p.Host
	ln    *p2p.Listener
	trans *raft.NetworkTransport
	svc   *p2p.Service

	mu      sync.RWMutex
	handler func(ctx context.Context, req *Request) *Response
}

// streamLayer is raft.StreamLayer over the member-only host's listener: Accept takes
// admitted members' streams only, Dial waits for the peer's admission.
type streamLayer struct{ *p2p.Listener }

func (l streamLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.Listener.Dial(string(a), timeout)
}

// NewP2PNetwork registers the lock protocols on h.
func NewP2PNetwork(h *p2p.Host, log *slog.Logger) (*P2PNetwork, error) {
	n := &P2PNetwork{host: h}
	ln, err := h.Listen(raftProtocol)
	if err != nil {
		return nil, err
	}
	n.ln = ln
	// NetworkTransport sets a deadline on every RPC's connection (timeout), and pools
	// at most 3 connections per peer.
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: streamLayer{ln}, MaxPool: 3, Timeout: 2 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "raft-net", Level: hclog.Warn, Output: slogWriter{log}}),
	})
	n.svc, err = h.NewService(forwardProtocol, p2p.ServiceConfig{MaxFrame: maxFrame, ReadTimeout: 5 * time.Second,
		WriteTimeout: 5 * time.Second, DialTimeout: 3 * time.Second}, n.handle)
	if err != nil {
		n.trans.Close()
		return nil, err
	}
	return n, nil
}

// Raft implements Network.
func (n *P2PNetwork) Raft() raft.Transport { return n.trans }

// Serve implements Network.
func (n *P2PNetwork) Serve(h func(ctx context.Context, req *Request) *Response) {
	n.mu.Lock()
	n.handler = h
	n.mu.Unlock()
}

func (n *P2PNetwork) handle(ctx context.Context, s *p2p.Stream) error {
	b, err := s.ReadFrame()
	if err != nil {
		return err
	}
	var resp *Response
	req, err := DecodeRequest(b)
	n.mu.RLock()
	h := n.handler
	n.mu.RUnlock()
	switch {
	case err != nil:
		resp = &Response{Err: toWireErr(err)}
	case h == nil:
		resp = &Response{Err: toWireErr(unavailable("the lock service of %s is not running", n.host.ID()))}
	default:
		ctx, cancel := context.WithTimeout(ctx, applyTimeout+500*time.Millisecond)
		resp = h(ctx, req)
		cancel()
	}
	out, err := encMode.Marshal(resp)
	if err != nil {
		return err
	}
	return s.WriteFrame(out)
}

// Call implements Network.
func (n *P2PNetwork) Call(ctx context.Context, to string, req *Request) (*Response, error) {
	p, err := peer.Decode(to)
	if err != nil {
		return nil, fmt.Errorf("locks: member %q: %w", to, err)
	}
	b, err := encMode.Marshal(req)
	if err != nil {
		return nil, err
	}
	rb, err := n.svc.Call(ctx, p, b)
	if err != nil {
		return nil, err
	}
	return DecodeResponse(rb)
}

// Close unregisters the protocols and closes Raft's connections. Close the Service first.
func (n *P2PNetwork) Close() error {
	n.svc.Close()
	err := n.trans.Close()
	n.ln.Close()
	return err
}
