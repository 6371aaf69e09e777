package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Packets: small best-effort-ish messages (liveness probes, ...) framed on one cached
// long-lived stream per (peer, name). A packet is delivered at most once and in order
// per stream; a send that fails is retried once on a fresh stream, and an error is
// returned if that fails too. Only admitted peers can send or receive packets.

// defaultPacketTimeout bounds a SendPacket whose ctx has no deadline.
const defaultPacketTimeout = 5 * time.Second

type pktKey struct {
	p    peer.ID
	name string
}

type pktStream struct {
	mu sync.Mutex     // guards s and serialises writes
	s  network.Stream // nil until opened / after a failure
}

func (h *Host) packetProto(name string) protocol.ID {
	return protocol.ID("/constellation/" + h.hash + "/pkt/" + name + "/1.0.0")
}

// HandlePackets registers fn for packets named name (e.g. "liveness"); a later call
// replaces it. fn runs on the peer's stream goroutine, so packets from one peer are
// handled in order; fn must not block for long and must not keep b.
func (h *Host) HandlePackets(name string, fn func(from peer.ID, b []byte)) {
	h.mu.Lock()
	_, had := h.pktHandlers[name]
	h.pktHandlers[name] = fn
	h.mu.Unlock()
	if !had {
		h.h.SetStreamHandler(h.packetProto(name), h.Guard(func(s network.Stream) { h.readPackets(name, s) }))
	}
}

func (h *Host) readPackets(name string, s network.Stream) {
	p := s.Conn().RemotePeer()
	br := bufio.NewReader(s)
	for {
		b, err := readFrame(br, h.cfg.MaxPacketBytes)
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.Close()
			} else {
				s.Reset()
			}
			return
		}
		if !h.IsAdmitted(p) {
			s.Reset()
			return
		}
		h.mu.Lock()
		fn := h.pktHandlers[name]
		h.mu.Unlock()
		if fn != nil {
			fn(p, b)
		}
	}
}

// SendPacket sends b to peer to's handler for name, connecting and waiting for
// admission if needed (bounded by ctx).
func (h *Host) SendPacket(ctx context.Context, to peer.ID, name string, b []byte) error {
	if len(b) > h.cfg.MaxPacketBytes {
		return fmt.Errorf("%w: packet of %d bytes (limit %d)", ErrTooLarge, len(b), h.cfg.MaxPacketBytes)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPacketTimeout)
		defer cancel()
	}
	if err := h.ensureAdmitted(ctx, to); err != nil {
		return err
	}
	k := pktKey{to, name}
	h.mu.Lock()
	ps := h.pktOut[k]
	if ps == nil {
		ps = &pktStream{}
		h.pktOut[k] = ps
	}
	h.mu.Unlock()

	ps.mu.Lock()
	defer ps.mu.Unlock()
	var err error
	for try := 0; try < 2; try++ {
		if ps.s == nil {
			ps.s, err = h.h.NewStream(memberCtx(ctx), to, h.packetProto(name))
			if err != nil {
				ps.s = nil
				return fmt.Errorf("p2p: packet stream to %s: %w", to, err)
			}
		}
		dl, _ := ctx.Deadline()
		ps.s.SetWriteDeadline(dl)
		err = writeFrame(ps.s, b)
		if err == nil {
			return nil
		}
		ps.s.Reset()
		ps.s = nil
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("p2p: send packet to %s: %w", to, err)
}

// dropPacketStreams closes the cached outbound streams to p.
func (h *Host) dropPacketStreams(p peer.ID) {
	h.mu.Lock()
	var drop []*pktStream
	for k, ps := range h.pktOut {
		if k.p == p {
			drop = append(drop, ps)
			delete(h.pktOut, k)
		}
	}
	h.mu.Unlock()
	for _, ps := range drop {
		ps.mu.Lock()
		if ps.s != nil {
			ps.s.Reset()
			ps.s = nil
		}
		ps.mu.Unlock()
	}
}
