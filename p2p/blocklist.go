package p2p

// The blocklist of peers that failed admission, and its rate-limited log.

import (
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// maxStrikes caps the doubling of the rejection window (at most 16x RejectBackoff: 8
// minutes by default), so a node whose key was fixed gets in within minutes while a peer
// that keeps failing costs one exchange per window. Strikes are forgotten on admission.
const maxStrikes = 5

// maxIncomplete is how many admission exchanges in a row may end without a verdict
// (reset, EOF, lost connection: a restart or a network fault) before the peer is
// blocklisted like one that failed.
const maxIncomplete = 3

// noteIncomplete counts an exchange with p that ended without a verdict and reports
// whether p has now reached maxIncomplete.
func (h *Host) noteIncomplete(p peer.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rejected[p]
	if r == nil {
		r = &rejection{}
		h.rejected[p] = r
		h.pruneRejectedLocked()
	}
	r.incomplete++
	if r.incomplete >= maxIncomplete {
		r.incomplete = 0
		return true
	}
	return false
}

// block puts p on the blocklist, logs the verdict and closes its connections.
func (h *Host) block(p peer.ID, reason string, loud bool) { h.blockFor(p, reason, loud, 0) }

// incompleteBackoff is the window after maxIncomplete exchanges in a row ended without a
// verdict. They carry no evidence against the peer (it may still be starting: nodes started
// together saw each other's first exchanges reset), so the window only rate-limits them
// and counts no strike; a refused verdict still blocks for RejectBackoff and doubles.
const incompleteBackoff = 2 * time.Second

// blockFor blocklists p for d, or (d == 0) for the doubling rejection window.
func (h *Host) blockFor(p peer.ID, reason string, loud bool, d time.Duration) {
	h.mu.Lock()
	r := h.rejected[p]
	if r == nil {
		r = &rejection{}
		h.rejected[p] = r
		h.pruneRejectedLocked()
	}
	if d == 0 {
		if r.strikes < maxStrikes {
			r.strikes++
		}
		d = h.cfg.RejectBackoff << (r.strikes - 1)
	}
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
		if h.rejectLog.allow(p, h.now()) {
			h.log.Warn(fmt.Sprintf("peer %s failed cluster admission: %s", p, reason), "peer", p, "cluster", h.cfg.Cluster, "retry_after", d)
		}
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

// rejectLog rate-limits the "failed cluster admission" lines: at most one per peer per
// window, and at most burst lines per window in all (many identities cost nothing to
// make); what it holds back is counted and reported by summary once per window.
type rejectLog struct {
	window time.Duration
	burst  int

	mu         sync.Mutex // guards the following fields
	last       map[peer.ID]time.Time
	start      time.Time // of the current window
	lines      int       // logged in the current window
	suppressed int
	peers      map[peer.ID]struct{} // suppressed peers, bounded by maxTrackedPeers
}

const maxTrackedPeers = 4096

func newRejectLog(window time.Duration, burst int) *rejectLog {
	return &rejectLog{window: window, burst: burst, last: map[peer.ID]time.Time{}, peers: map[peer.ID]struct{}{}}
}

// allow reports whether a line about p may be logged now; otherwise it is counted.
func (l *rejectLog) allow(p peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.window {
		l.start, l.lines = now, 0
	}
	if t, ok := l.last[p]; (!ok || now.Sub(t) >= l.window) && l.lines < l.burst {
		if len(l.last) >= maxTrackedPeers {
			for q, t := range l.last {
				if now.Sub(t) >= l.window {
					delete(l.last, q)
				}
			}
			if len(l.last) >= maxTrackedPeers {
				clear(l.last)
			}
		}
		l.last[p] = now
		l.lines++
		return true
	}
	l.suppressed++
	if len(l.peers) < maxTrackedPeers {
		l.peers[p] = struct{}{}
	}
	return false
}

// summary returns and resets the counts of suppressed lines and of distinct peers
// (peers saturates at maxTrackedPeers).
func (l *rejectLog) summary() (lines, peers int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines, peers = l.suppressed, len(l.peers)
	l.suppressed = 0
	clear(l.peers)
	return lines, peers
}

// rejectLogLoop logs, once per window, how many rejection lines were held back.
func (h *Host) rejectLogLoop() {
	t := time.NewTicker(h.rejectLog.window)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
			h.logRejectSummary()
		}
	}
}

func (h *Host) logRejectSummary() {
	if n, peers := h.rejectLog.summary(); n > 0 {
		h.log.Warn(fmt.Sprintf("%d more admission failures from %d peers in the last %v were not logged one by one", n, peers, h.rejectLog.window),
			"suppressed", n, "peers", peers, "cluster", h.cfg.Cluster)
	}
}
