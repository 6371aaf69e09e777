package p2p

// Discovery: join addresses (retried with backoff), mDNS on the LAN, and the cluster's
// private Kademlia DHT (rendezvous provider records plus the routing table, whose
// peers are all admitted members). Every discovered peer is dialled; admission decides.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	dialTimeout      = 10 * time.Second
	joinPollInterval = time.Second
	mdnsRetryAfter   = 5 * time.Second
	advertiseEvery   = 10 * time.Minute
)

// Connect dials pi (its addresses are added to the peerstore) and waits until the peer
// is admitted. It fails with ErrAdmission/ErrNotAdmitted if the peer is not a member.
func (h *Host) Connect(ctx context.Context, pi peer.AddrInfo) error {
	if pi.ID == "" {
		return fmt.Errorf("p2p: connect: no peer ID (use Join for addresses without /p2p/)")
	}
	if pi.ID == h.ID() {
		return nil
	}
	h.AddAddrs(pi.ID, pi.Addrs)
	return h.ensureAdmitted(ctx, pi.ID)
}

// Join makes one attempt to connect to j and get admitted, learning the peer ID from
// the secure handshake when j does not name it. It returns the peer's ID.
func (h *Host) Join(ctx context.Context, j JoinAddr) (peer.ID, error) {
	return h.join(ctx, j, j.ID)
}

func (h *Host) join(ctx context.Context, j JoinAddr, guess peer.ID) (peer.ID, error) {
	id, err := h.dialJoin(ctx, j, guess)
	if err != nil {
		if id != "" {
			if berr := h.blockedErr(id); berr != nil {
				return id, berr
			}
		}
		return id, err
	}
	return id, h.ensureAdmitted(ctx, id)
}

// dialJoin connects to j's addresses expecting guess ("" = unknown). A peer-ID mismatch
// reveals the real ID (TLS and Noise both report it), which is then dialled - unless
// the user named the ID in the join address (j.ID), which is then enforced.
func (h *Host) dialJoin(ctx context.Context, j JoinAddr, guess peer.ID) (peer.ID, error) {
	if h.isClosed() {
		return "", ErrClosed
	}
	var (
		actual peer.ID
		ok     bool
		err    error
	)
	if guess != "" {
		if err = h.h.Connect(ctx, peer.AddrInfo{ID: guess, Addrs: j.Addrs}); err == nil {
			return guess, nil
		}
		actual, ok = mismatchedID(err)
	} else {
		actual, err = h.probeJoin(ctx, j)
		ok = err == nil
	}
	if !ok {
		return "", err
	}
	if j.ID != "" && actual != j.ID {
		return "", fmt.Errorf("p2p: join %s: the peer there is %s, not the %s named in the address", j, actual, j.ID)
	}
	if actual == h.ID() {
		return "", fmt.Errorf("p2p: join %s: that address is this node", j)
	}
	if h.blocked(actual) {
		return actual, fmt.Errorf("%w: %s (%s) failed admission recently", ErrNotAdmitted, j, actual)
	}
	h.AddAddrs(actual, j.Addrs)
	if err := h.h.Connect(ctx, peer.AddrInfo{ID: actual, Addrs: j.Addrs}); err != nil {
		return actual, err
	}
	return actual, nil
}

// probeJoin learns the peer ID at a join address without an ID: it dials each address
// (QUIC, TCP) in parallel under a throwaway ID, and the secure handshake's mismatch
// names the real one. The first address that answers wins, so a blocked transport (UDP
// filtered: QUIC waits for its handshake timeout) does not delay the others.
func (h *Host) probeJoin(ctx context.Context, j JoinAddr) (peer.ID, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		id  peer.ID
		err error
	}
	res := make(chan result, len(j.Addrs))
	for _, a := range j.Addrs {
		go func() {
			probe, err := throwawayID()
			if err != nil {
				res <- result{err: err}
				return
			}
			err = h.h.Connect(ctx, peer.AddrInfo{ID: probe, Addrs: []ma.Multiaddr{a}})
			h.h.Peerstore().ClearAddrs(probe)
			h.h.Peerstore().RemovePeer(probe)
			if err == nil { // cannot happen: nobody holds a fresh random identity
				res <- result{err: fmt.Errorf("p2p: join %s: the peer at %s claimed a random identity", j, a)}
				return
			}
			if id, ok := mismatchedID(err); ok {
				res <- result{id: id}
				return
			}
			res <- result{err: err}
		}()
	}
	var errs []error
	for range j.Addrs {
		r := <-res
		if r.err == nil {
			return r.id, nil
		}
		errs = append(errs, r.err)
	}
	return "", errors.Join(errs...)
}

// mismatchedID extracts the real peer ID from a dial that expected another one.
func mismatchedID(err error) (peer.ID, bool) {
	var mm sec.ErrPeerIDMismatch
	if errors.As(err, &mm) && mm.Actual != "" {
		return mm.Actual, true
	}
	// QUIC wraps the TLS verification error as text; parse sec.ErrPeerIDMismatch's format.
	const marker = "remote key matches "
	s := err.Error()
	if i := strings.Index(s, marker); i >= 0 {
		rest := s[i+len(marker):]
		if j := strings.IndexAny(rest, " ,;:)\n\""); j >= 0 {
			rest = rest[:j]
		}
		if id, err := peer.Decode(rest); err == nil {
			return id, true
		}
	}
	return "", false
}

func throwawayID() (peer.ID, error) {
	_, pk, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(pk)
}

// joinLoop keeps this host connected to one join address for the host's lifetime:
// unreachable peers are retried with exponential backoff, and the peer is dialled
// again whenever its connection is lost (this also heals partitions).
func (h *Host) joinLoop(j JoinAddr) {
	known := j.ID
	backoff := h.cfg.JoinBackoffMin
	failures := 0
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-h.ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for h.ctx.Err() == nil {
		if known != "" && h.Connected(known) && h.IsAdmitted(known) {
			if !sleep(joinPollInterval) {
				return
			}
			continue
		}
		if known != "" {
			if until := h.blockedUntil(known); !until.IsZero() {
				// Failed admission: a clear line was logged by the verdict; wait out the window.
				h.log.Info("join peer refused admission; retrying after the block window", "join", j.String(), "peer", known, "retry_at", until.Format(time.TimeOnly))
				if !sleep(until.Sub(h.now()) + 10*time.Millisecond) {
					return
				}
				continue
			}
		}
		ctx, cancel := context.WithTimeout(h.ctx, dialTimeout)
		id, err := h.join(ctx, j, known)
		cancel()
		if h.ctx.Err() != nil {
			return
		}
		if id != "" {
			known = id
		}
		if err == nil {
			if failures > 0 {
				h.log.Info("join peer reachable", "join", j.String(), "peer", id, "after_failures", failures)
			}
			failures, backoff = 0, h.cfg.JoinBackoffMin
			continue
		}
		if errors.Is(err, ErrAdmission) {
			continue // handled by the block window above
		}
		failures++
		h.log.Warn("join peer unreachable; retrying", "join", j.String(), "attempt", failures, "retry_in", backoff, "err", err)
		if !sleep(backoff) {
			return
		}
		backoff = min(2*backoff, h.cfg.JoinBackoffMax)
	}
}

// mdnsService returns the DNS-SD service name of the cluster (≤15 chars of label, so
// different clusters do not even see each other's announcements).
func (h *Host) mdnsService() string { return "_c7n-" + h.hash[:10] + "._udp" }

type mdnsNotifee Host

func (n *mdnsNotifee) HandlePeerFound(pi peer.AddrInfo) {
	h := (*Host)(n)
	if pi.ID == h.ID() || h.Connected(pi.ID) || h.blocked(pi.ID) || h.isClosed() {
		return
	}
	h.mu.Lock()
	if h.mdnsLast == nil {
		h.mdnsLast = map[peer.ID]time.Time{}
	}
	last, seen := h.mdnsLast[pi.ID]
	now := h.now()
	if seen && now.Sub(last) < mdnsRetryAfter {
		h.mu.Unlock()
		return
	}
	h.mdnsLast[pi.ID] = now
	if len(h.mdnsLast) > 4096 {
		clear(h.mdnsLast)
	}
	h.mu.Unlock()
	h.log.Debug("mDNS found peer", "peer", pi.ID, "addrs", pi.Addrs)
	h.goRun(func() {
		ctx, cancel := context.WithTimeout(h.ctx, dialTimeout)
		defer cancel()
		if err := h.Connect(ctx, pi); err != nil && h.ctx.Err() == nil {
			h.log.Debug("mDNS peer not joined", "peer", pi.ID, "err", err)
		}
	})
}

func (h *Host) startMDNS() error {
	s := mdns.NewMdnsService(h.h, h.mdnsService(), (*mdnsNotifee)(h))
	if err := s.Start(); err != nil {
		s.Close()
		return err
	}
	h.mdns = s
	return nil
}

func (h *Host) rendezvous() string { return "constellation/" + h.hash }

func (h *Host) startDHT() error {
	d, err := dht.New(h.mh,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(protocol.ID("/constellation/"+h.hash)),
		dht.RoutingTableFilter(func(_ any, p peer.ID) bool { return h.IsAdmitted(p) }),
		dht.DisableValues(),
	)
	if err != nil {
		return fmt.Errorf("p2p: dht: %w", err)
	}
	h.dht = d
	h.goRun(h.dhtLoop)
	return nil
}

// dhtLoop advertises this node under the cluster's rendezvous key and dials the
// members it finds there and in its routing table.
func (h *Host) dhtLoop() {
	disc := drouting.NewRoutingDiscovery(h.dht)
	var lastAdvert time.Time
	wait := 2 * time.Second
	for {
		t := time.NewTimer(wait)
		select {
		case <-h.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = h.cfg.DiscoveryInterval
		if h.dht.RoutingTable().Size() == 0 {
			wait = min(wait, 5*time.Second)
			continue
		}
		ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
		if h.now().Sub(lastAdvert) > advertiseEvery {
			if _, err := disc.Advertise(ctx, h.rendezvous(), discovery.TTL(3*advertiseEvery)); err == nil {
				lastAdvert = h.now()
			} else {
				h.log.Debug("dht advertise failed", "err", err)
			}
		}
		found, err := disc.FindPeers(ctx, h.rendezvous(), discovery.Limit(256))
		if err == nil {
			for pi := range found {
				h.dialDiscovered(pi)
			}
		}
		cancel()
		for _, p := range h.dht.RoutingTable().ListPeers() {
			h.dialDiscovered(peer.AddrInfo{ID: p})
		}
	}
}

func (h *Host) dialDiscovered(pi peer.AddrInfo) {
	if pi.ID == h.ID() || pi.ID == "" || h.Connected(pi.ID) || h.blocked(pi.ID) {
		return
	}
	if len(pi.Addrs) > 0 {
		h.h.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.TempAddrTTL)
	}
	h.goRun(func() {
		ctx, cancel := context.WithTimeout(h.ctx, dialTimeout)
		defer cancel()
		if err := h.ensureAdmitted(ctx, pi.ID); err != nil && h.ctx.Err() == nil {
			h.log.Debug("discovered peer not joined", "peer", pi.ID, "err", err)
		}
	})
}
