package p2p

// Admission: a mutual challenge-response run on every new connection before any
// cluster protocol answers. libp2p's secure channel (TLS or Noise) authenticates both
// peer IDs; the exchange proves knowledge of the cluster key and binds both IDs and
// both nonces, so a proof cannot be replayed or relayed to another pair of peers.
//
//   I -> R  hello  = "CAD1" || clusterHash(32) || nonceI(32)
//   R -> I  reply  = status(1) || nonceR(32) || mac("R")(32)
//   I -> R  proof  = status(1) || mac("I")(32)
//   R -> I  final  = status(1)
//
//   key    = HKDF-SHA256(secret=clusterKey, salt="constellation-admit-v1", info=cluster)
//   mac(r) = HMAC-SHA256(key, "constellation-admit-v1" || r || lp(cluster) ||
//                        lp(initiatorID) || lp(responderID) || nonceI || nonceR)
//
// The responder admits the initiator when proof verifies; the initiator admits the
// responder when final says OK (it verified the responder's MAC before sending its
// own). Keyless clusters run the same exchange with an empty secret. The hello carries
// the public hash of the cluster name so a name mismatch is reported as such.

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"
)

// protoAdmit is shared by all clusters so that a peer of another cluster gets a clear
// verdict instead of "protocol not supported".
const protoAdmit = protocol.ID("/constellation/admit/1.0.0")

const admitLabel = "constellation-admit-v1"

const (
	helloLen = 4 + 32 + 32
	replyLen = 1 + 32 + 32
	proofLen = 1 + 32
	finalLen = 1
)

var helloMagic = [4]byte{'C', 'A', 'D', '1'}

// Admission verdicts carried in status bytes.
const (
	admitOK           byte = 0
	admitOtherCluster byte = 1
	admitBadProof     byte = 2
	admitBlocked      byte = 3
)

func admitReason(status byte) string {
	switch status {
	case admitOtherCluster:
		return "wrong cluster name (the peer belongs to another cluster)"
	case admitBadProof:
		return "wrong cluster key (or only one side has a key)"
	case admitBlocked:
		return "refused: recently failed admission"
	default:
		return fmt.Sprintf("unknown admission status %d", status)
	}
}

func admitKey(clusterKey, cluster string) []byte {
	k, err := hkdf.Key(sha256.New, []byte(clusterKey), []byte(admitLabel), "cluster:"+cluster, 32)
	if err != nil {
		panic(err) // only for impossible lengths
	}
	return k
}

func admitMAC(key []byte, role byte, cluster string, initiator, responder peer.ID, nonceI, nonceR []byte) []byte {
	m := hmac.New(sha256.New, key)
	lp := func(b []byte) {
		var l [binary.MaxVarintLen64]byte
		m.Write(l[:binary.PutUvarint(l[:], uint64(len(b)))])
		m.Write(b)
	}
	m.Write([]byte(admitLabel))
	m.Write([]byte{role})
	lp([]byte(cluster))
	lp([]byte(initiator))
	lp([]byte(responder))
	m.Write(nonceI)
	m.Write(nonceR)
	return m.Sum(nil)
}

type hello struct {
	cluster [32]byte
	nonce   [32]byte
}

func (h hello) encode() []byte {
	b := make([]byte, 0, helloLen)
	b = append(b, helloMagic[:]...)
	b = append(b, h.cluster[:]...)
	return append(b, h.nonce[:]...)
}

func decodeHello(b []byte) (hello, error) {
	var h hello
	if len(b) != helloLen || !bytes.Equal(b[:4], helloMagic[:]) {
		return h, fmt.Errorf("%w: admission hello", ErrMalformed)
	}
	copy(h.cluster[:], b[4:36])
	copy(h.nonce[:], b[36:68])
	return h, nil
}

type reply struct {
	status byte
	nonce  [32]byte
	mac    [32]byte
}

func (r reply) encode() []byte {
	b := make([]byte, 0, replyLen)
	b = append(b, r.status)
	b = append(b, r.nonce[:]...)
	return append(b, r.mac[:]...)
}

func decodeReply(b []byte) (reply, error) {
	var r reply
	if len(b) != replyLen {
		return r, fmt.Errorf("%w: admission reply", ErrMalformed)
	}
	r.status = b[0]
	copy(r.nonce[:], b[1:33])
	copy(r.mac[:], b[33:65])
	return r, nil
}

func clusterHashFull(cluster string) [32]byte {
	return sha256.Sum256([]byte("constellation-cluster-v1\x00" + cluster))
}

// initiateAdmission runs (or joins) the exchange in the initiator role with p.
func (h *Host) initiateAdmission(ctx context.Context, p peer.ID) error {
	h.mu.Lock()
	if _, ok := h.admitted[p]; ok {
		h.mu.Unlock()
		return nil
	}
	if a := h.initiating[p]; a != nil {
		h.mu.Unlock()
		select {
		case <-a.done:
			return a.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a := &attempt{done: make(chan struct{})}
	h.initiating[p] = a
	h.exchanges[p]++
	h.mu.Unlock()

	verdict, err := h.runInitiator(ctx, p)
	a.err = h.finishExchange(p, true, verdict, err)
	h.mu.Lock()
	delete(h.initiating, p)
	h.mu.Unlock()
	close(a.done)
	return a.err
}

// runInitiator returns the verdict status (admitOK or a rejection) or a transport error.
func (h *Host) runInitiator(ctx context.Context, p peer.ID) (byte, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.AdmitTimeout)
	defer cancel()
	s, err := h.h.NewStream(ctx, p, h.protoAdmit)
	if err != nil {
		if errors.Is(err, ctx.Err()) || h.isClosed() {
			return 0, err
		}
		if isProtocolNotSupported(err) {
			return admitBadProof, fmt.Errorf("peer does not speak %s (not a constellation node?)", h.protoAdmit)
		}
		return 0, err
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	s.SetDeadline(dl)

	var hl hello
	hl.cluster = clusterHashFull(h.cfg.Cluster)
	rand.Read(hl.nonce[:])
	if _, err := s.Write(hl.encode()); err != nil {
		s.Reset()
		return 0, err
	}
	buf := make([]byte, replyLen)
	if _, err := io.ReadFull(s, buf); err != nil {
		s.Reset()
		return 0, err
	}
	rp, _ := decodeReply(buf)
	if rp.status != admitOK {
		s.Reset()
		return rp.status, nil
	}
	local, remote := h.ID(), p
	want := admitMAC(h.key, 'R', h.cfg.Cluster, local, remote, hl.nonce[:], rp.nonce[:])
	if !hmac.Equal(want, rp.mac[:]) {
		// Tell the responder why (graceful close so the status is delivered).
		s.Write(append([]byte{admitBadProof}, make([]byte, 32)...))
		s.CloseWrite()
		return admitBadProof, nil
	}
	proof := append([]byte{admitOK}, admitMAC(h.key, 'I', h.cfg.Cluster, local, remote, hl.nonce[:], rp.nonce[:])...)
	if _, err := s.Write(proof); err != nil {
		s.Reset()
		return 0, err
	}
	fin := make([]byte, finalLen)
	if _, err := io.ReadFull(s, fin); err != nil {
		s.Reset()
		return 0, err
	}
	return fin[0], nil
}

// handleAdmit runs the responder role.
func (h *Host) handleAdmit(s network.Stream) {
	p := s.Conn().RemotePeer()
	h.mu.Lock()
	h.exchanges[p]++
	h.mu.Unlock()
	verdict, err := h.runResponder(s, p)
	if err != nil {
		s.Reset()
	} else {
		s.Close()
	}
	h.finishExchange(p, false, verdict, err)
}

func (h *Host) runResponder(s network.Stream, p peer.ID) (byte, error) {
	s.SetDeadline(h.now().Add(h.cfg.AdmitTimeout))
	wasAdmitted := h.IsAdmitted(p)
	buf := make([]byte, helloLen)
	if _, err := io.ReadFull(s, buf); err != nil {
		return 0, err
	}
	hl, err := decodeHello(buf)
	if err != nil {
		return 0, err
	}
	if h.blocked(p) {
		s.Write(reply{status: admitBlocked}.encode())
		return admitBlocked, nil
	}
	if hl.cluster != clusterHashFull(h.cfg.Cluster) {
		s.Write(reply{status: admitOtherCluster}.encode())
		return admitOtherCluster, nil
	}
	rp := reply{status: admitOK}
	rand.Read(rp.nonce[:])
	local := h.ID()
	copy(rp.mac[:], admitMAC(h.key, 'R', h.cfg.Cluster, p, local, hl.nonce[:], rp.nonce[:]))
	if _, err := s.Write(rp.encode()); err != nil {
		return 0, err
	}
	pb := make([]byte, proofLen)
	if _, err := io.ReadFull(s, pb); err != nil {
		return 0, err
	}
	if pb[0] != admitOK {
		return pb[0], nil
	}
	want := admitMAC(h.key, 'I', h.cfg.Cluster, p, local, hl.nonce[:], rp.nonce[:])
	if !hmac.Equal(want, pb[1:]) {
		s.Write([]byte{admitBadProof})
		return admitBadProof, nil
	}
	// Admit before telling the initiator, so its first cluster stream finds us ready.
	h.markAdmitted(p, false)
	if wasAdmitted {
		// A member we already had a connection with dialled us and proved itself on a
		// new connection: peers only dial when they have no connection, so it restarted
		// (or lost the old connection) and our older connections to it are stale. libp2p
		// prefers the connection with more streams, so drop them now rather than send
		// into a dead connection until its idle timeout.
		h.dropStaleConns(p, s.Conn())
	}
	if _, err := s.Write([]byte{admitOK}); err != nil {
		return 0, err
	}
	s.CloseWrite()
	return admitOK, nil
}

func (h *Host) dropStaleConns(p peer.ID, keep network.Conn) {
	for _, c := range h.h.Network().ConnsToPeer(p) {
		if c != keep && c.Stat().Opened.Before(keep.Stat().Opened) {
			h.log.Debug("closing stale connection to re-admitted peer", "peer", p, "conn", c.ID())
			c.Close()
		}
	}
	h.goRun(func() { h.dropPacketStreams(p) })
}

// finishExchange records the outcome of one exchange and wakes waiters.
func (h *Host) finishExchange(p peer.ID, initiator bool, verdict byte, err error) error {
	switch {
	case err != nil && verdict == 0:
		h.log.Debug("admission exchange did not complete", "peer", p, "err", err)
	case verdict == admitOK:
		h.markAdmitted(p, initiator)
	case verdict == admitBlocked:
		// The other side still blocks us; stay quiet and back off too.
		h.block(p, admitReason(verdict), false)
		err = fmt.Errorf("%w: %s", ErrAdmission, admitReason(verdict))
	default:
		reason := admitReason(verdict)
		if err != nil {
			reason = err.Error()
		}
		h.block(p, reason, true)
		err = fmt.Errorf("%w: peer %s: %s", ErrAdmission, p, reason)
	}
	h.mu.Lock()
	h.exchanges[p]--
	if h.exchanges[p] <= 0 {
		delete(h.exchanges, p)
	}
	if ch := h.admitWait[p]; ch != nil {
		close(ch)
		delete(h.admitWait, p)
	}
	_, ok := h.admitted[p]
	h.mu.Unlock()
	if err == nil && !ok {
		err = fmt.Errorf("%w: peer %s: exchange did not complete", ErrNotAdmitted, p)
	}
	if err != nil && !ok && verdict == 0 && h.Connected(p) && !h.anyExchange(p) {
		// Transport failure with no verdict: drop the connection; the next dial retries.
		h.h.Network().ClosePeer(p)
	}
	return err
}

func (h *Host) anyExchange(p peer.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.admitted[p]
	return ok || h.exchanges[p] > 0
}

func (h *Host) markAdmitted(p peer.ID, initiator bool) {
	if !h.Connected(p) {
		return
	}
	h.mu.Lock()
	_, already := h.admitted[p]
	if !already {
		h.admitted[p] = h.now()
		delete(h.rejected, p)
	}
	h.mu.Unlock()
	if already {
		return
	}
	h.h.ConnManager().Protect(p, memberTag)
	h.log.Info("peer admitted", "peer", p, "initiator", initiator)
	h.mh.peerAdmitted(p)
	if cb := h.cfg.OnPeerAdmitted; cb != nil {
		h.events.push(func() { cb(p) })
	}
	if initiator {
		// Bootstrap: one push-pull exchange right away (a new node gets full state).
		h.requestSync(p)
	}
}

// maxStrikes caps the doubling of the rejection window (at most 4x RejectBackoff), so
// a node whose key was fixed gets in within minutes.
const maxStrikes = 3

// block puts p on the blocklist, logs the verdict and closes its connections.
func (h *Host) block(p peer.ID, reason string, loud bool) {
	h.mu.Lock()
	r := h.rejected[p]
	if r == nil {
		r = &rejection{}
		h.rejected[p] = r
		h.pruneRejectedLocked()
	}
	if r.strikes < maxStrikes {
		r.strikes++
	}
	d := h.cfg.RejectBackoff << (r.strikes - 1)
	r.until = h.now().Add(d)
	r.reason = reason
	_, was := h.admitted[p]
	delete(h.admitted, p)
	h.mu.Unlock()
	if was {
		h.h.ConnManager().Unprotect(p, memberTag)
		if cb := h.cfg.OnPeerGone; cb != nil {
			h.events.push(func() { cb(p) })
		}
	}
	if loud {
		h.log.Warn(fmt.Sprintf("peer %s failed cluster admission: %s", p, reason), "peer", p, "cluster", h.cfg.Cluster, "retry_after", d)
		if cb := h.cfg.OnAdmissionRejected; cb != nil {
			h.events.push(func() { cb(p, reason) })
		}
	}
	// Close after a short grace period so the verdict we may have just written reaches
	// the peer (which then closes on its side); meanwhile the gater and Guard refuse it.
	h.goRun(func() {
		t := time.NewTimer(min(time.Second, h.cfg.AdmitTimeout))
		defer t.Stop()
		select {
		case <-t.C:
		case <-h.ctx.Done():
			return
		}
		h.h.Network().ClosePeer(p)
	})
}

// pruneRejectedLocked bounds the blocklist; entries long past their window go first.
func (h *Host) pruneRejectedLocked() {
	const max = 4096
	if len(h.rejected) <= max {
		return
	}
	now := h.now()
	for p, r := range h.rejected {
		if now.Sub(r.until) > time.Hour || len(h.rejected) > 2*max {
			delete(h.rejected, p)
		}
	}
}

// blocked reports whether p is inside its rejection window.
func (h *Host) blocked(p peer.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rejected[p]
	return r != nil && h.now().Before(r.until)
}

// waitAdmitted waits until p is admitted, no exchange with p is running, or ctx ends.
func (h *Host) waitAdmitted(ctx context.Context, p peer.ID) bool {
	for {
		h.mu.Lock()
		if _, ok := h.admitted[p]; ok {
			h.mu.Unlock()
			return true
		}
		if h.exchanges[p] == 0 {
			h.mu.Unlock()
			return false
		}
		ch := h.admitWait[p]
		if ch == nil {
			ch = make(chan struct{})
			h.admitWait[p] = ch
		}
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// ensureAdmitted connects to p if needed and waits for admission.
func (h *Host) ensureAdmitted(ctx context.Context, p peer.ID) error {
	if p == h.ID() {
		return fmt.Errorf("p2p: cannot open a cluster stream to self")
	}
	if h.IsAdmitted(p) {
		return nil
	}
	if h.isClosed() {
		return ErrClosed
	}
	if err := h.blockedErr(p); err != nil {
		return err
	}
	if !h.Connected(p) {
		if err := h.h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
			if err := h.blockedErr(p); err != nil {
				return err
			}
			return fmt.Errorf("%w: connect %s: %v", ErrNotAdmitted, p, err)
		}
	}
	if h.waitAdmitted(ctx, p) {
		return nil
	}
	err := h.initiateAdmission(ctx, p)
	if h.IsAdmitted(p) {
		return nil
	}
	if berr := h.blockedErr(p); berr != nil {
		return berr
	}
	if err == nil {
		err = fmt.Errorf("%w: %s", ErrNotAdmitted, p)
	}
	return err
}

// blockedErr returns an ErrAdmission error with the verdict if p is blocklisted.
func (h *Host) blockedErr(p peer.ID) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rejected[p]
	if r == nil || !h.now().Before(r.until) {
		return nil
	}
	return fmt.Errorf("%w: peer %s: %s (refused until %s)", ErrAdmission, p, r.reason, r.until.Format(time.TimeOnly))
}

// blockedUntil returns the end of p's rejection window (zero if none).
func (h *Host) blockedUntil(p peer.ID) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rejected[p]; r != nil && h.now().Before(r.until) {
		return r.until
	}
	return time.Time{}
}

// Guard wraps a stream handler so it runs only for admitted peers; streams from other
// peers are reset (a peer whose admission is in flight is waited for, briefly).
func (h *Host) Guard(handler network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		p := s.Conn().RemotePeer()
		if !h.IsAdmitted(p) {
			ctx, cancel := context.WithTimeout(h.ctx, h.cfg.AdmitTimeout)
			ok := h.waitAdmitted(ctx, p)
			cancel()
			if !ok {
				h.log.Debug("reset stream from non-member", "peer", p, "protocol", s.Protocol())
				s.Reset()
				return
			}
		}
		handler(s)
	}
}

// onConnected starts admission for a new connection: the dialling side initiates at
// once; the accepting side initiates itself if nothing happened after a quarter of
// AdmitTimeout. A connection still not admitted after AdmitTimeout is closed.
func (h *Host) onConnected(c network.Conn) {
	p := c.RemotePeer()
	outbound := c.Stat().Direction == network.DirOutbound
	h.goRun(func() {
		if !outbound {
			select {
			case <-time.After(h.cfg.AdmitTimeout / 4):
			case <-h.ctx.Done():
				return
			}
		}
		if !h.IsAdmitted(p) && h.Connected(p) {
			h.initiateAdmission(h.ctx, p)
		}
		select {
		case <-time.After(h.cfg.AdmitTimeout):
		case <-h.ctx.Done():
			return
		}
		if !h.IsAdmitted(p) && !c.IsClosed() {
			h.log.Debug("closing connection: peer not admitted in time", "peer", p)
			c.Close()
		}
	})
}

func (h *Host) onDisconnected(c network.Conn) {
	p := c.RemotePeer()
	if h.h.Network().Connectedness(p) == network.Connected {
		return
	}
	h.mu.Lock()
	_, was := h.admitted[p]
	delete(h.admitted, p)
	h.mu.Unlock()
	if !was {
		return
	}
	h.h.ConnManager().Unprotect(p, memberTag)
	h.goRun(func() { h.dropPacketStreams(p) })
	h.log.Info("admitted peer disconnected", "peer", p)
	if cb := h.cfg.OnPeerGone; cb != nil {
		h.events.push(func() { cb(p) })
	}
}

// gater is the Host as a libp2p connection gater: no connections before Start, none
// with blocked peers, none across a (test) partition.
type gater Host

func (g *gater) host() *Host { return (*Host)(g) }

func (g *gater) allow(p peer.ID) bool {
	h := g.host()
	h.closeMu.Lock()
	started := h.started && !h.closed
	h.closeMu.Unlock()
	if !started {
		return false
	}
	h.mu.Lock()
	part := h.partitioned
	r := h.rejected[p]
	h.mu.Unlock()
	if part != nil && part(p) {
		return false
	}
	return r == nil || !h.now().Before(r.until)
}

func (g *gater) InterceptPeerDial(p peer.ID) bool { return g.allow(p) }

func (g *gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool {
	h := g.host()
	h.closeMu.Lock()
	defer h.closeMu.Unlock()
	return h.started && !h.closed
}

func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allow(p)
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

func isProtocolNotSupported(err error) bool {
	var ns msmux.ErrNotSupported[protocol.ID]
	return errors.As(err, &ns)
}
