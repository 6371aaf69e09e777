package dfs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/p2p"
)

// PinRequest asks a holder to pin a root, fetching its blocks from From first.
type PinRequest struct {
	Root string   `cbor:"1,keyasint"`
	Size int64    `cbor:"2,keyasint,omitempty"`
	From []string `cbor:"3,keyasint,omitempty"`
	// Path and Token: a strong tree's write names its path and the writer's fencing token;
	// the holder refuses a token older than the newest it saw for the path (0: unfenced).
	Path  string `cbor:"4,keyasint,omitempty"`
	Token uint64 `cbor:"5,keyasint,omitempty"`
}

// pinResponse is the holder's answer: empty Err once the blocks are pinned and fsynced.
type pinResponse struct {
	Err     string `cbor:"1,keyasint,omitempty"`
	Missing int64  `cbor:"2,keyasint,omitempty"` // bytes the holder lacked room for
	// Seen: the request's token was stale; the newest token the holder saw for the path.
	Seen uint64 `cbor:"3,keyasint,omitempty"`
}

// Limits of the pin protocol.
const (
	pinProtocol   = "dfs-pin/1.0.0"
	maxPinRequest = 64 << 10
	maxPinFrom    = 32
)

// Host is what the pin protocol needs of the member-only host.
type Host interface {
	NewService(name string, cfg p2p.ServiceConfig, h p2p.Handler) (*p2p.Service, error)
}

// PinProtocol is the Peers implementation over the member-only host: a request/response
// protocol whose handler pins on this node.
type PinProtocol struct {
	svc     *p2p.Service
	timeout time.Duration
	nameOf  func(peer.ID) string
}

// NewPinProtocol registers the pin protocol on host, served by s.
func NewPinProtocol(host Host, s *Service) (*PinProtocol, error) {
	svc, err := host.NewService(pinProtocol, p2p.ServiceConfig{MaxFrame: maxPinRequest, ReadTimeout: 10 * time.Second}, func(ctx context.Context, st *p2p.Stream) error {
		var req PinRequest
		if err := st.ReadMsg(&req); err != nil {
			return err
		}
		// the answer comes after the pin: as long as a write may take
		st.SetReadTimeout(s.cfg.WriteTimeout)
		pctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
		defer cancel()
		var resp pinResponse
		if err := s.HandlePin(pctx, st.Peer(), req); err != nil {
			resp.Err = err.Error()
			var ne *NoRoomError
			if errors.As(err, &ne) {
				resp.Missing = ne.Missing
			}
			var se *StaleTokenError
			if errors.As(err, &se) {
				resp.Seen = se.Seen
			}
		}
		return st.WriteMsg(resp)
	})
	if err != nil {
		return nil, err
	}
	return &PinProtocol{svc: svc, timeout: s.cfg.WriteTimeout, nameOf: func(id peer.ID) string { return s.nameOf(id.String()) }}, nil
}

// Pin asks to to pin req.Root and waits for its answer.
func (p *PinProtocol) Pin(ctx context.Context, to peer.ID, req PinRequest) error {
	var resp pinResponse
	if err := p.svc.CallMsg(ctx, to, req, &resp); err != nil {
		return err
	}
	if resp.Err != "" {
		if resp.Seen > 0 && req.Token > 0 && resp.Seen > req.Token {
			return &StaleTokenError{Node: p.nameOf(to), Path: req.Path, Token: req.Token, Seen: resp.Seen}
		}
		if resp.Missing > 0 {
			return &NoRoomError{Node: to.String(), Missing: resp.Missing, Msg: resp.Err}
		}
		return errors.New(resp.Err)
	}
	return nil
}

// Close unregisters the protocol.
func (p *PinProtocol) Close() error { return p.svc.Close() }

// NoRoomError: a holder lacks room for a root.
type NoRoomError struct {
	Node    string
	Missing int64
	Msg     string
}

func (e *NoRoomError) Error() string { return e.Msg }

// HandlePin pins a root on this node for a member (the holder's side of a write or a
// re-replication): it checks the room, fetches from the sender and the given holders,
// pins, and records the pin.
func (s *Service) HandlePin(ctx context.Context, from peer.ID, req PinRequest) error {
	root, err := cid.Decode(req.Root)
	if err != nil {
		return fmt.Errorf("dfs: bad root %q: %v", req.Root, err)
	}
	if req.Size < 0 || len(req.From) > maxPinFrom {
		return fmt.Errorf("dfs: bad pin request (size %d, %d sources)", req.Size, len(req.From))
	}
	if req.Token > 0 {
		if err := CheckPath(req.Path); err != nil {
			return fmt.Errorf("dfs: bad pin request: fenced without a valid path: %w", err)
		}
		if err := s.fence(req.Path, req.Token); err != nil {
			return err
		}
	}
	holders := []peer.ID{from}
	for _, f := range req.From {
		if id, err := peer.Decode(f); err == nil && id != from {
			holders = append(holders, id)
		}
	}
	return s.pinLocal(ctx, root, req.Size, holders)
}

// pinLocal pins root here (fetching from holders) and records the pin.
func (s *Service) pinLocal(ctx context.Context, root cid.Cid, size int64, holders []peer.ID) error {
	key := root.String()
	if free := s.capacity() - s.content.UsedBytes(); size > free {
		if has, _ := s.content.Has(ctx, root); !has {
			return &NoRoomError{Node: s.cfg.NodeName, Missing: size - free,
				Msg: fmt.Sprintf("node %s: block store full: %d bytes missing (needs %d, %d free of %d)", s.cfg.NodeName, size-free, size, free, s.capacity())}
		}
	}
	s.hold(key, 1)
	defer s.hold(key, -1)
	start := time.Now()
	if err := s.content.Pin(ctx, root, holders); err != nil {
		return fmt.Errorf("node %s: pin %s: %w", s.cfg.NodeName, key, err)
	}
	s.met.pinSeconds.Observe(time.Since(start).Seconds())
	b, err := state.Encode(PinRecord{Root: key, NodeID: s.self, Size: size, At: s.cfg.Now().UnixNano()})
	if err != nil {
		return err
	}
	if err := s.st.Update(func(tx *state.Tx) error { return tx.Put(CollPins, pinKey(s.self, key), b) }); err != nil {
		return err
	}
	s.writeCapacity()
	return nil
}

// capacity is the block store's room in bytes.
func (s *Service) capacity() int64 {
	if s.cfg.CapacityBytes > 0 {
		return s.cfg.CapacityBytes
	}
	if s.cfg.Ledger != nil {
		if b := s.cfg.Ledger.DFSRoomBytes(); b > 0 {
			return b
		}
	}
	for _, n := range s.members.Nodes() {
		if n.Self && n.DiskTotalMB > 0 {
			return int64(n.DiskTotalMB) << 20
		}
	}
	return 10 << 30
}

// writeCapacity publishes this node's room (rounded to 1 MiB, written when it changed).
func (s *Service) writeCapacity() {
	rec := CapacityRecord{CapacityBytes: s.capacity(), UsedBytes: s.content.UsedBytes() &^ (1<<20 - 1), Zone: s.cfg.Zone}
	b, err := state.Encode(rec)
	if err != nil {
		return
	}
	self := s.self
	_ = s.st.Update(func(tx *state.Tx) error {
		if old, _, ok := tx.GetLWW(CollCapacity, self); ok && string(old) == string(b) {
			return nil
		}
		return tx.Put(CollCapacity, self, b)
	})
}

// ---- the replication runner ----

func (s *Service) runner() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.RepairInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.writeCapacity()
			s.Repair()
		}
	}
}

// ref is a root the namespace or a snapshot references.
type ref struct {
	size int64
	rf   int
}

// Repair runs one pass of the replication runner: for every referenced root with fewer
// than R good copies (a holder counts while alive, suspect, or dead for less than the
// grace), the nodes the rendezvous hash chooses among the alive ones pin it, each node
// acting only for itself; this node's pins that nothing references any more (after
// GCDelay) are dropped and the block store collected. It returns the roots it pinned.
func (s *Service) Repair() (pinned int) {
	now := s.cfg.Now()
	status := map[string]api.NodeInfo{}
	for _, n := range s.members.Nodes() {
		status[n.ID] = n
	}
	good := func(id string) bool {
		n, ok := status[id]
		if !ok {
			return false
		}
		switch n.Status {
		case api.StatusAlive, "suspect":
			return true
		case api.StatusDead:
			return now.Sub(n.LastSeen) < s.cfg.Grace
		}
		return n.Self
	}
	refs := s.references()
	self := s.self
	pins := map[string][]string{} // root -> holders
	own := map[string]PinRecord{}
	s.st.View(func(v *state.View) {
		for _, k := range v.Keys(CollPins) {
			b, _, ok := v.GetLWW(CollPins, k)
			if !ok {
				continue
			}
			p, err := decodePin(b)
			if err != nil || pinKey(p.NodeID, p.Root) != k {
				continue
			}
			pins[p.Root] = append(pins[p.Root], p.NodeID)
			if p.NodeID == self {
				own[p.Root] = p
			}
		}
	})
	for root, r := range refs {
		if _, mine := own[root]; mine {
			continue
		}
		n := 0
		var from []peer.ID
		holds := map[string]bool{}
		for _, h := range pins[root] {
			holds[h] = true
			if good(h) {
				n++
			}
			if status[h].Status == api.StatusAlive {
				if id, err := peer.Decode(h); err == nil {
					from = append(from, id)
				}
			}
		}
		if n >= r.rf || len(from) == 0 {
			continue
		}
		// the missing copies go to the best-placed nodes that do not hold it yet: every
		// node computes the same choice and only the chosen ones act
		var cands []Candidate
		all, _ := s.candidates(r.size)
		for _, c := range all {
			if !holds[c.ID] {
				cands = append(cands, c)
			}
		}
		if !containsStr(Place(root, cands, r.rf-n), self) {
			continue
		}
		c, err := cid.Decode(root)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
		err = s.pinLocal(ctx, c, r.size, from)
		cancel()
		if err != nil {
			s.log.Warn("re-replication failed", "root", root, "err", err)
			continue
		}
		s.met.repairs.Inc()
		pinned++
		select {
		case <-s.stop:
			return pinned
		default:
		}
	}
	s.dropUnreferenced(refs, own, now)
	return pinned
}

// dropUnreferenced unpins this node's roots nothing references (after GCDelay, never a
// root of a write in progress) and collects the block store.
func (s *Service) dropUnreferenced(refs map[string]ref, own map[string]PinRecord, now time.Time) {
	var drop []string
	s.mu.Lock()
	for root, p := range own {
		if _, ok := refs[root]; ok || s.inflight[root] > 0 || now.Sub(time.Unix(0, p.At)) < s.cfg.GCDelay {
			continue
		}
		drop = append(drop, root)
	}
	s.mu.Unlock()
	if len(drop) == 0 {
		return
	}
	self := s.self
	for _, root := range drop {
		if c, err := cid.Decode(root); err == nil {
			_ = s.content.Unpin(c)
		}
		_ = s.st.Update(func(tx *state.Tx) error { return tx.Remove(CollPins, pinKey(self, root)) })
	}
	err := s.content.GC(s.ctx, func(c cid.Cid) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.inflight[c.String()] > 0
	})
	if err != nil {
		s.log.Warn("block store gc", "err", err)
	}
	s.met.gcRuns.Inc()
	s.writeCapacity()
}

// references are the roots the namespace (every shown entry and the kept versions) and
// the snapshots reference, with the replication they want.
func (s *Service) references() map[string]ref {
	refs := map[string]ref{}
	add := func(v Version, rf int) {
		if v.Deleted || v.CID == "" {
			return
		}
		if rf <= 0 {
			rf = s.cfg.DefaultReplication
		}
		if r, ok := refs[v.CID]; !ok || r.rf < rf {
			refs[v.CID] = ref{size: v.Size, rf: rf}
		}
	}
	s.st.View(func(v *state.View) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for p, st := range s.idx {
			es := readEntries(v, p, st.writers)
			tree := s.treeOf(v, p)
			w, vis := Resolve(es, policyOf(tree))
			for _, x := range vis {
				add(x.Entry.Cur, x.Entry.Cur.Replication)
			}
			if w >= 0 {
				for _, h := range es[w].History {
					add(h, h.Replication)
				}
			}
		}
		for _, k := range v.Keys(CollSnapshots) {
			b, _, ok := v.GetLWW(CollSnapshots, k)
			if !ok {
				continue
			}
			sr, err := decodeSnapshot(b)
			if err != nil {
				continue
			}
			for _, f := range sr.Files {
				add(Version{CID: f.CID, Size: f.Size}, s.treeOf(v, f.Path).Replication)
			}
		}
	})
	return refs
}
