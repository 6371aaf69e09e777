package p2p

// Admission (protocol /constellation/admit/2.0.0): run on every new connection before any
// cluster protocol answers. libp2p's secure channel (TLS or Noise) authenticates both
// peer IDs; the exchange proves knowledge of the cluster key, binding both IDs and a fresh
// nonce from each side, so a proof can be neither replayed nor relayed to another pair.
// The initiator (the side that dialled) proves first; the responder sends nothing that
// depends on the key until that proof has verified.
//
//   I -> R  hello     = "CAD2" || clusterHash(32) || nonceI(32)
//   R -> I  challenge = status(1) || nonceR(32)                 nothing key-dependent
//   I -> R  proof     = status(1) || mac("I")(32)
//   R -> I  final     = status(1) || mac("R")(32)               mac only when the proof verified
//
//   K      = HKDF-SHA256(argon2id(clusterKey, salt=label||cluster), salt=label, info=cluster)
//   mac(r) = HMAC-SHA256(K, label || r || lp(cluster) || lp(initiatorID) || lp(responderID)
//                           || nonceI || nonceR)        label = "constellation-admit-v2"
//
// The responder admits the initiator when the proof verifies, then answers with its own
// MAC; the initiator admits the responder when that MAC verifies. Keyless clusters run the
// same exchange with an unstretched empty secret. The hello carries the public hash of the
// cluster name so a name mismatch is reported as such. doc.go discusses what each side
// learns.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"
)

// protoAdmit is shared by all clusters so that a peer of another cluster gets a clear
// verdict instead of "protocol not supported". protoAdmitV1 is the previous version,
// whose responder answered a MAC before the initiator proved anything: it is refused
// with a log line telling the operator to upgrade that node.
const (
	protoAdmit   = protocol.ID("/constellation/admit/2.0.0")
	protoAdmitV1 = protocol.ID("/constellation/admit/1.0.0")
)

const (
	helloLen     = 4 + 32 + 32
	challengeLen = 1 + 32
	proofLen     = 1 + 32
	finalLen     = 1 + 32
)

var helloMagic = [4]byte{'C', 'A', 'D', '2'}

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
	if len(b) != helloLen {
		return h, fmt.Errorf("%w: admission hello of %d bytes, want %d", ErrMalformed, len(b), helloLen)
	}
	if !bytes.Equal(b[:4], helloMagic[:]) {
		return h, fmt.Errorf("%w: admission hello starts with %q, want %q", ErrMalformed, b[:4], helloMagic[:])
	}
	copy(h.cluster[:], b[4:36])
	copy(h.nonce[:], b[36:68])
	return h, nil
}

// record is a status byte and 32 bytes: a challenge (nonce), a proof or a final (MAC).
type record struct {
	status byte
	body   [32]byte
}

func (r record) encode() []byte {
	b := make([]byte, 0, 33)
	b = append(b, r.status)
	return append(b, r.body[:]...)
}

// decodeRecord decodes a challenge, proof or final. A non-OK record must carry a zero
// body (nothing travels with a refusal); a status beyond the known verdicts is refused.
func decodeRecord(what string, b []byte) (record, error) {
	var r record
	if len(b) != 33 {
		return r, fmt.Errorf("%w: admission %s of %d bytes, want 33", ErrMalformed, what, len(b))
	}
	r.status = b[0]
	copy(r.body[:], b[1:])
	if r.status > admitBlocked {
		return record{}, fmt.Errorf("%w: admission %s status %d", ErrMalformed, what, r.status)
	}
	if r.status != admitOK && r.body != ([32]byte{}) {
		return record{}, fmt.Errorf("%w: admission %s refusal carries data", ErrMalformed, what)
	}
	return r, nil
}

func clusterHashFull(cluster string) [32]byte {
	return sha256.Sum256([]byte("constellation-cluster-v1\x00" + cluster))
}

// exchangeFailure classifies an exchange that ended without a verdict.
type exchangeFailure int

const (
	failTransport  exchangeFailure = iota // reset, EOF, connection lost: retry later
	failStalled                           // the peer did not answer within AdmitTimeout
	failMalformed                         // the peer sent bytes that are not admission v2
	failOldVersion                        // the peer speaks only admission 1.0.0
)

// outcome is the result of one exchange: a verdict, or an error with its class.
type outcome struct {
	verdict byte
	err     error
	fail    exchangeFailure
}

func verdict(v byte) outcome { return outcome{verdict: v} }

func failure(err error) outcome {
	o := outcome{err: err, fail: failTransport}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		o.fail = failStalled
	case errors.Is(err, ErrMalformed):
		o.fail = failMalformed
	}
	return o
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// initiateAdmission runs (or joins) the exchange in the initiator role with p. Only call
// it for a peer this node chose to contact (it dialled p, or wants a stream to p): the
// initiator proves first, so it must never be a reaction to an unsolicited connection.
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
	if r := h.rejected[p]; r != nil && h.now().Before(r.until) {
		h.mu.Unlock()
		return h.blockedErr(p)
	}
	a := &attempt{done: make(chan struct{})}
	h.initiating[p] = a
	h.exchanges[p]++
	h.mu.Unlock()

	a.err = h.finishExchange(p, true, h.runInitiator(ctx, p))
	h.mu.Lock()
	delete(h.initiating, p)
	h.mu.Unlock()
	close(a.done)
	return a.err
}

func (h *Host) runInitiator(ctx context.Context, p peer.ID) outcome {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.AdmitTimeout)
	defer cancel()
	s, err := h.h.NewStream(memberCtx(ctx), p, h.protoAdmit)
	if err != nil {
		if errors.Is(err, ctx.Err()) || h.isClosed() {
			return failure(err)
		}
		if isProtocolNotSupported(err) {
			if ok, _ := h.h.Peerstore().SupportsProtocols(p, protoAdmitV1); len(ok) > 0 {
				return outcome{err: fmt.Errorf("the peer runs an older constellation (admission %s only; this node speaks %s): upgrade it", protoAdmitV1, protoAdmit), fail: failOldVersion}
			}
			return outcome{verdict: admitBadProof, err: fmt.Errorf("peer does not speak %s (not a constellation node?)", h.protoAdmit)}
		}
		return failure(err)
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	s.SetDeadline(dl)
	o := h.initiatorExchange(s, p)
	if o.err != nil || o.verdict != admitOK {
		s.Reset()
	}
	return o
}

func (h *Host) initiatorExchange(s io.ReadWriter, p peer.ID) outcome {
	var hl hello
	hl.cluster = clusterHashFull(h.cfg.Cluster)
	rand.Read(hl.nonce[:])
	if _, err := s.Write(hl.encode()); err != nil {
		return failure(err)
	}
	ch, err := readRecord(s, "challenge")
	if err != nil {
		return failure(err)
	}
	if ch.status != admitOK {
		return verdict(ch.status)
	}
	local := h.ID()
	pr := record{status: admitOK}
	copy(pr.body[:], admitMAC(h.key, 'I', h.cfg.Cluster, local, p, hl.nonce[:], ch.body[:]))
	if _, err := s.Write(pr.encode()); err != nil {
		return failure(err)
	}
	fin, err := readRecord(s, "final")
	if err != nil {
		return failure(err)
	}
	if fin.status != admitOK {
		return verdict(fin.status)
	}
	want := admitMAC(h.key, 'R', h.cfg.Cluster, local, p, hl.nonce[:], ch.body[:])
	if !hmac.Equal(want, fin.body[:]) {
		// It accepted our proof without knowing the key: a fake node.
		return outcome{verdict: admitBadProof, err: errors.New("the peer accepted our proof but could not prove the cluster key itself (not a member)")}
	}
	return verdict(admitOK)
}

func readRecord(r io.Reader, what string) (record, error) {
	var b [33]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return record{}, err
	}
	return decodeRecord(what, b[:])
}

// handleAdmit runs the responder role.
func (h *Host) handleAdmit(s network.Stream) {
	p := s.Conn().RemotePeer()
	h.mu.Lock()
	h.exchanges[p]++
	h.mu.Unlock()
	s.SetDeadline(h.now().Add(h.cfg.AdmitTimeout))
	wasAdmitted := h.IsAdmitted(p)
	o := h.responderExchange(s, p)
	if o.verdict == admitOK && o.err == nil && wasAdmitted {
		// A member we already had a connection with dialled us and proved itself on a
		// new connection: peers only dial when they have no connection, so it restarted
		// (or lost the old connection) and our older connections to it are stale. libp2p
		// prefers the connection with more streams, so drop them now rather than send
		// into a dead connection until its idle timeout.
		h.dropStaleConns(p, s.Conn())
	}
	if o.err != nil {
		s.Reset()
	} else {
		s.Close() // graceful: the verdict written last still reaches the peer
	}
	h.finishExchange(p, false, o)
}

// handleAdmitV1 answers a node of an older version: no bytes, a reset, and a log line
// that says what to do.
func (h *Host) handleAdmitV1(s network.Stream) {
	p := s.Conn().RemotePeer()
	s.Reset()
	h.mu.Lock()
	h.exchanges[p]++
	h.mu.Unlock()
	h.finishExchange(p, false, outcome{err: fmt.Errorf("the peer runs an older constellation (it opened admission %s; this node speaks %s): upgrade it", protoAdmitV1, protoAdmit), fail: failOldVersion})
}

// responderExchange never writes a key-dependent byte before the initiator's proof has
// verified.
func (h *Host) responderExchange(s io.ReadWriter, p peer.ID) outcome {
	buf := make([]byte, helloLen)
	if _, err := io.ReadFull(s, buf); err != nil {
		return failure(err)
	}
	hl, err := decodeHello(buf)
	if err != nil {
		return failure(err)
	}
	refuse := func(status byte) outcome {
		s.Write(record{status: status}.encode())
		return verdict(status)
	}
	if h.blocked(p) {
		return refuse(admitBlocked)
	}
	if hl.cluster != clusterHashFull(h.cfg.Cluster) {
		return refuse(admitOtherCluster)
	}
	ch := record{status: admitOK}
	rand.Read(ch.body[:])
	if _, err := s.Write(ch.encode()); err != nil {
		return failure(err)
	}
	pr, err := readRecord(s, "proof")
	if err != nil {
		return failure(err)
	}
	if pr.status != admitOK {
		return verdict(pr.status)
	}
	local := h.ID()
	want := admitMAC(h.key, 'I', h.cfg.Cluster, p, local, hl.nonce[:], ch.body[:])
	if !hmac.Equal(want, pr.body[:]) {
		return refuse(admitBadProof)
	}
	// Admit before answering, so the initiator's first cluster stream finds us ready.
	h.markAdmitted(p, false)
	fin := record{status: admitOK}
	copy(fin.body[:], admitMAC(h.key, 'R', h.cfg.Cluster, p, local, hl.nonce[:], ch.body[:]))
	if _, err := s.Write(fin.encode()); err != nil {
		return failure(err)
	}
	return verdict(admitOK)
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

// finishExchange records the outcome of one exchange and wakes waiters. A verdict other
// than OK, a stall, a malformed message or an old protocol version blocklists the peer;
// transport failures (reset, EOF) do too once they repeat (maxIncomplete in a row).
func (h *Host) finishExchange(p peer.ID, initiator bool, o outcome) error {
	var err error
	switch {
	case o.err == nil && o.verdict == admitOK:
		h.markAdmitted(p, initiator)
	case o.err != nil && o.verdict == 0 && o.fail == failTransport:
		h.log.Debug("admission exchange did not complete", "peer", p, "err", o.err)
		err = o.err
		if h.noteIncomplete(p) {
			h.blockFor(p, fmt.Sprintf("%d admission exchanges in a row did not complete (last: %v)", maxIncomplete, o.err), true, min(incompleteBackoff, h.cfg.RejectBackoff))
			err = fmt.Errorf("%w: peer %s: %v", ErrAdmission, p, o.err)
		}
	case o.err != nil && o.verdict == 0:
		reason := o.err.Error()
		if o.fail == failStalled {
			reason = fmt.Sprintf("admission stalled: no answer within %v", h.cfg.AdmitTimeout)
		}
		h.block(p, reason, true)
		err = fmt.Errorf("%w: peer %s: %s", ErrAdmission, p, reason)
	case o.verdict == admitBlocked:
		// The other side still blocks us; stay quiet and back off too.
		h.block(p, admitReason(o.verdict), false)
		err = fmt.Errorf("%w: %s", ErrAdmission, admitReason(o.verdict))
	default:
		reason := admitReason(o.verdict)
		if o.err != nil {
			reason = o.err.Error()
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
	if err != nil && !ok && o.verdict == 0 && o.fail == failTransport && h.Connected(p) && !h.anyExchange(p) {
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
	h.triggerRelays()
	h.mh.peerAdmitted(p)
	if cb := h.cfg.OnPeerAdmitted; cb != nil {
		h.events.push(func() { cb(p) })
	}
	if initiator {
		// Bootstrap: one push-pull exchange right away (a new node gets full state).
		h.requestSync(p)
	}
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
		if err := h.h.Connect(memberCtx(ctx), peer.AddrInfo{ID: p}); err != nil {
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

// onConnected starts admission for a new connection. The dialling side initiates at once;
// the accepting side never does (the initiator proves first, and this node did not choose
// the peer): it waits for the peer's hello. A connection still not admitted after
// AdmitTimeout is closed and its peer blocklisted (it stalled, or never started).
func (h *Host) onConnected(c network.Conn) {
	p := c.RemotePeer()
	outbound := c.Stat().Direction == network.DirOutbound
	h.goRun(func() {
		if outbound && !h.IsAdmitted(p) && h.Connected(p) {
			h.initiateAdmission(h.ctx, p)
		}
		t := time.NewTimer(h.cfg.AdmitTimeout)
		defer t.Stop()
		select {
		case <-t.C:
		case <-h.ctx.Done():
			return
		}
		if h.IsAdmitted(p) || c.IsClosed() {
			return
		}
		h.log.Debug("closing connection: peer not admitted in time", "peer", p, "outbound", outbound)
		// An exchange still in flight judges the peer itself (its own stall deadline):
		// wait for its verdict so that one stall is one strike, not two.
		for deadline := time.Now().Add(h.cfg.AdmitTimeout); time.Now().Before(deadline); {
			h.mu.Lock()
			inFlight := h.exchanges[p] > 0
			h.mu.Unlock()
			if !inFlight || h.ctx.Err() != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if h.IsAdmitted(p) || c.IsClosed() {
			return
		}
		if !h.blocked(p) {
			// Still connected, not admitted, no verdict: it never started admission or
			// stalled in the middle of it.
			h.block(p, fmt.Sprintf("admission stalled: not completed within %v of connecting", h.cfg.AdmitTimeout), true)
		}
		c.Close()
	})
}

func (h *Host) onDisconnected(c network.Conn) {
	p := c.RemotePeer()
	if h.Connected(p) {
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

func (g *gater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool { return g.allowPath(p, a) }

// allowPath refuses direct connections to peers the (test) NAT hook cuts: only relayed
// connections reach them, as between two members behind symmetric NATs.
func (g *gater) allowPath(p peer.ID, a ma.Multiaddr) bool {
	h := g.host()
	h.mu.Lock()
	cut := h.noDirect
	h.mu.Unlock()
	return cut == nil || !cut(p) || isRelayed(a)
}

func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool {
	h := g.host()
	h.closeMu.Lock()
	defer h.closeMu.Unlock()
	return h.started && !h.closed
}

func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, cm network.ConnMultiaddrs) bool {
	return g.allow(p) && g.allowPath(p, cm.RemoteMultiaddr())
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

func isProtocolNotSupported(err error) bool {
	var ns msmux.ErrNotSupported[protocol.ID]
	return errors.As(err, &ns)
}
