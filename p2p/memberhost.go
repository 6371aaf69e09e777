package p2p

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

// memberHost is the libp2p host as seen by gossipsub, the DHT and other libraries
// (bitswap, ...) that must only ever talk to admitted members:
//
//   - inbound streams of every protocol they register are reset unless the remote
//     peer is admitted (Guard);
//   - outbound streams (NewStream) wait for admission and fail for non-members;
//   - their event bus is private: peer identification/protocol events reach them only
//     for admitted peers, and an admission itself is announced as an identification,
//     so they discover a member exactly when it is admitted.
type memberHost struct {
	host.Host
	h   *Host
	bus event.Bus

	emitIdent  event.Emitter
	emitProtos event.Emitter
	emitAddrs  event.Emitter
	emitConn   event.Emitter
	sub        event.Subscription

	wg       sync.WaitGroup
	stopOnce sync.Once
}

func newMemberHost(h *Host) *memberHost {
	return &memberHost{Host: h.h, h: h, bus: eventbus.NewBus()}
}

func (m *memberHost) start() error {
	var err error
	if m.emitIdent, err = m.bus.Emitter(new(event.EvtPeerIdentificationCompleted)); err != nil {
		return err
	}
	if m.emitProtos, err = m.bus.Emitter(new(event.EvtPeerProtocolsUpdated)); err != nil {
		return err
	}
	if m.emitAddrs, err = m.bus.Emitter(new(event.EvtLocalAddressesUpdated)); err != nil {
		return err
	}
	if m.emitConn, err = m.bus.Emitter(new(event.EvtPeerConnectednessChanged)); err != nil {
		return err
	}
	m.sub, err = m.Host.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerProtocolsUpdated),
		new(event.EvtLocalAddressesUpdated),
		new(event.EvtPeerConnectednessChanged),
	}, eventbus.BufSize(256), eventbus.Name("constellation-members"))
	if err != nil {
		return err
	}
	m.wg.Add(1)
	go m.forward()
	return nil
}

// forward copies real host events to the private bus, hiding non-members.
func (m *memberHost) forward() {
	defer m.wg.Done()
	for ev := range m.sub.Out() {
		switch e := ev.(type) {
		case event.EvtPeerIdentificationCompleted:
			if m.h.IsAdmitted(e.Peer) {
				m.emitIdent.Emit(e)
			}
		case event.EvtPeerProtocolsUpdated:
			if m.h.IsAdmitted(e.Peer) {
				m.emitProtos.Emit(e)
			}
		case event.EvtLocalAddressesUpdated:
			m.emitAddrs.Emit(e)
		case event.EvtPeerConnectednessChanged:
			m.emitConn.Emit(e)
		}
	}
}

// peerAdmitted announces p to the libraries as if identify had just completed.
func (m *memberHost) peerAdmitted(p peer.ID) {
	if m.emitIdent == nil {
		return
	}
	protos, _ := m.Host.Peerstore().GetProtocols(p)
	if len(protos) == 0 {
		return // identify has not finished yet; its own event will be forwarded
	}
	ev := event.EvtPeerIdentificationCompleted{Peer: p, Protocols: protos}
	m.h.events.push(func() { m.emitIdent.Emit(ev) })
}

func (m *memberHost) close() {
	m.stopOnce.Do(func() {
		if m.sub != nil {
			m.sub.Close()
		}
		m.wg.Wait()
		for _, e := range []event.Emitter{m.emitIdent, m.emitProtos, m.emitAddrs, m.emitConn} {
			if e != nil {
				e.Close()
			}
		}
	})
}

func (m *memberHost) EventBus() event.Bus { return m.bus }

func (m *memberHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	m.Host.SetStreamHandler(pid, m.h.Guard(handler))
}

func (m *memberHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	m.Host.SetStreamHandlerMatch(pid, match, m.h.Guard(handler))
}

func (m *memberHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if err := m.h.ensureAdmitted(ctx, p); err != nil {
		return nil, err
	}
	return m.Host.NewStream(memberCtx(ctx), p, pids...)
}
