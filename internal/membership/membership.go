// Package membership keeps this node's membership record in the replicated document, judges
// every member's status (alive, suspect, dead, left) from the records and the failure
// detector (p2p/liveness), publishes node_* events, dials members learned from state, and
// answers who a node is (Resolve, NameOf, Nodes).
//
// Records are written only by the node they describe (the ownership rule), so LWW never
// loses a concurrent write. Status is local: each node judges its peers itself.
package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/internal/events"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/p2p"
	"github.com/rads-lang/constellation/p2p/liveness"
)

// Coll holds one membership Record per node, keyed by peer ID.
const Coll = "nodes"

var (
	// ErrNodeNotFound means no member of the cluster has the given name or ID.
	ErrNodeNotFound = errors.New("no such node")
	// ErrNodeUnavailable means the node is known but cannot be reached now.
	ErrNodeUnavailable = errors.New("node unavailable")
)

// Record is a node's membership record in the replicated document.
type Record struct {
	Name        string            `cbor:"1,keyasint,omitempty"`
	PeerID      string            `cbor:"2,keyasint,omitempty"`
	Addrs       []string          `cbor:"3,keyasint,omitempty"` // full multiaddrs without /p2p/
	Labels      map[string]string `cbor:"4,keyasint,omitempty"`
	CPUCores    int               `cbor:"5,keyasint,omitempty"`
	RAMMB       uint64            `cbor:"6,keyasint,omitempty"`
	DiskMB      uint64            `cbor:"7,keyasint,omitempty"`
	Instances   int               `cbor:"8,keyasint,omitempty"`
	StartedAt   int64             `cbor:"9,keyasint,omitempty"`  // unix ms
	Incarnation uint64            `cbor:"10,keyasint,omitempty"` // failure-detector incarnation at start
	Left        bool              `cbor:"11,keyasint,omitempty"` // set on graceful leave
	Heartbeat   int64             `cbor:"12,keyasint,omitempty"` // unix ms of the last record refresh
	Version     string            `cbor:"13,keyasint,omitempty"`
	// Reach and NAT are what the node detected for itself (p2p.NATStatus).
	Reach string `cbor:"14,keyasint,omitempty"`
	NAT   string `cbor:"15,keyasint,omitempty"`
	// RTT is the node's measured round-trip time to other members in microseconds, by
	// peer ID: the cluster's RTT table (topology awareness).
	RTT map[string]uint32 `cbor:"16,keyasint,omitempty"`
}

// EncodeRecord encodes a membership record (the state codec).
func EncodeRecord(r Record) []byte {
	b, err := state.Encode(r)
	if err != nil {
		panic(fmt.Sprintf("membership: encode record: %v", err)) // bounded plain struct
	}
	return b
}

// DecodeRecord decodes an (untrusted) membership record.
func DecodeRecord(b []byte) (Record, error) {
	var r Record
	err := state.Decode(b, &r)
	return r, err
}

// Host is what membership needs of the p2p host.
type Host interface {
	ID() peer.ID
	Addrs() []ma.Multiaddr
	Admitted() []peer.ID
	IsAdmitted(p peer.ID) bool
	Connect(ctx context.Context, pi peer.AddrInfo) error
	AddAddrs(p peer.ID, addrs []ma.Multiaddr)
	SendPacket(ctx context.Context, to peer.ID, name string, b []byte) error
	HandlePackets(name string, fn func(from peer.ID, b []byte))
	Stats() p2p.Stats
}

// detector is what membership needs from the failure detector (p2p/liveness).
type detector interface {
	start(ctx context.Context) error
	AddMember(id string)
	RemoveMember(id string)
	HandlePacket(from string, b []byte)
	// Member reports the detector's view of id.
	Member(id string) (status string, lastSeen time.Time, ok bool)
	Leave(ctx context.Context) error
	Close() error
}

// Config configures the service.
type Config struct {
	Name    string
	Labels  map[string]string
	DataDir string // its filesystem's size is advertised
	Version string
	// Liveness tunes the failure detector (DefaultConfig, or a profile: Profile).
	Liveness liveness.Config
	// InstanceCount reports how many instances this node runs (for its record); may be nil.
	InstanceCount func() int
	// Settling bounds the catch-up after start (Settled); zero values take the defaults.
	Settling Settling
	// NAT reports this node's reachability and NAT type for its record; may be nil.
	NAT func() (reach, natType string)
	// RTT reports this node's measured round-trip times to members; may be nil. The
	// record keeps a published value until it moves by more than rttHysteresis, so
	// jitter does not rewrite the record.
	RTT func() map[peer.ID]time.Duration
}

// rttHysteresis is the relative change of a round-trip time that updates the record.
const rttHysteresis = 0.3

// Service is the membership of one node.
type Service struct {
	cfg     Config
	host    Host
	st      *state.Store
	bus     *events.Bus
	log     *slog.Logger
	det     detector
	settle  Settling
	incarn  uint64
	started time.Time

	mu sync.Mutex // guards status and names
	// status is the last status published per peer ID (for event de-duplication).
	status map[string]string
	// names caches peer ID -> node name from records.
	names map[string]string
	// rtt is the RTT table last put in the own record (microseconds by peer ID).
	rtt map[string]uint32

	dialNow  chan struct{} // capacity 1: a member was learned; dial it without waiting for the tick
	writeNow chan struct{} // capacity 1: this node's addresses changed; rewrite its record now
	// dialing holds the members being dialled, with the addresses of that attempt.
	dialing map[peer.ID]string
	// addrsSeen holds each member's addresses from its last record (a change redials),
	// learned when they were first seen.
	addrsSeen map[string]string
	learned   map[string]time.Time
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// New builds the service; nothing runs before Start.
func New(cfg Config, h Host, st *state.Store, bus *events.Bus, log *slog.Logger) *Service {
	if cfg.Liveness == (liveness.Config{}) {
		cfg.Liveness = liveness.DefaultConfig()
	}
	s := &Service{
		cfg: cfg, host: h, st: st, bus: bus, log: log, started: time.Now(),
		incarn: uint64(time.Now().UnixMilli()),
		status: map[string]string{}, names: map[string]string{}, dialNow: make(chan struct{}, 1),
		writeNow: make(chan struct{}, 1), dialing: map[peer.ID]string{}, addrsSeen: map[string]string{}, learned: map[string]time.Time{},
	}
	s.settle = cfg.Settling
	if s.settle.Window <= 0 {
		s.settle.Window = 10 * time.Second
	}
	if s.settle.MaxWait <= 0 {
		s.settle.MaxWait = 30 * time.Second
	}
	s.det = newLivenessDetector(s, h, s.incarn, cfg.Liveness, log)
	return s
}

// WriteOwn writes this node's record (left: it is leaving gracefully). Before Start it seeds
// the document so the first anti-entropy exchange already carries the record.
func (s *Service) WriteOwn(left bool) {
	rec := s.ownRecord(left)
	err := s.st.Update(func(tx *state.Tx) error {
		if old, _, ok := tx.GetLWW(Coll, rec.PeerID); ok && !left {
			if o, err := DecodeRecord(old); err == nil && sameRecord(o, rec) {
				return nil
			}
		}
		return tx.Put(Coll, rec.PeerID, EncodeRecord(rec))
	})
	if err != nil {
		s.log.Error("write own record", "err", err)
	}
}

// Start runs the failure detector, follows the records and dials members learned from
// state, until Close.
func (s *Service) Start(ctx context.Context) error {
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.host.HandlePackets("liveness", func(from peer.ID, b []byte) { s.det.HandlePacket(from.String(), b) })
	if err := s.det.start(s.ctx); err != nil {
		return err
	}
	s.st.Watch(func(cs []crdt.Change) {
		for _, c := range cs {
			s.trackMember(c.Key)
		}
	}, Coll)
	var keys []string
	s.st.View(func(v *state.View) { keys = v.Keys(Coll) })
	for _, k := range keys {
		s.trackMember(k)
	}
	s.wg.Add(1)
	go s.maintainLoop()
	return nil
}

// Leave writes the `left` record and tells the peers (graceful shutdown).
func (s *Service) Leave(ctx context.Context) error {
	s.WriteOwn(true)
	return s.det.Leave(ctx)
}

// Close stops the loops and the detector.
func (s *Service) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	return s.det.Close()
}

// OnPeerAdmitted makes the detector watch a newly admitted member.
func (s *Service) OnPeerAdmitted(p peer.ID) { s.det.AddMember(p.String()) }

// Started is when this node started.
func (s *Service) Started() time.Time { return s.started }

func (s *Service) ownRecord(left bool) Record {
	res := LocalResources(s.cfg.DataDir)
	n := 0
	if s.cfg.InstanceCount != nil {
		n = s.cfg.InstanceCount()
	}
	var reach, natType string
	if s.cfg.NAT != nil {
		reach, natType = s.cfg.NAT()
	}
	return Record{
		Reach:       reach,
		NAT:         natType,
		RTT:         s.rttTable(),
		Name:        s.cfg.Name,
		PeerID:      s.host.ID().String(),
		Addrs:       recordAddrs(s.host.Addrs()),
		Labels:      s.cfg.Labels,
		CPUCores:    res.CPUCores,
		RAMMB:       res.RAMMB,
		DiskMB:      res.DiskMB,
		Instances:   n,
		StartedAt:   s.started.UnixMilli(),
		Incarnation: s.incarn,
		Left:        left,
		Heartbeat:   time.Now().UnixMilli(),
		Version:     s.cfg.Version,
	}
}

// rttTable is the RTT table for the own record: measured members only, each value kept
// until the measurement moves by more than rttHysteresis.
func (s *Service) rttTable() map[string]uint32 {
	if s.cfg.RTT == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]uint32{}
	for p, d := range s.cfg.RTT() {
		if d <= 0 {
			continue
		}
		us := uint32(min(d.Microseconds(), int64(^uint32(0))))
		if old, ok := s.rtt[p.String()]; ok && old > 0 {
			if r := float64(us) / float64(old); r > 1-rttHysteresis && r < 1+rttHysteresis {
				us = old
			}
		}
		out[p.String()] = max(us, 1)
	}
	s.rtt = out
	if len(out) == 0 {
		return nil
	}
	return out
}

// sameRecord ignores the heartbeat so that an unchanged record is not rewritten.
func sameRecord(a, b Record) bool {
	a.Heartbeat, b.Heartbeat = 0, 0
	return string(EncodeRecord(a)) == string(EncodeRecord(b))
}

// recordRefresh bounds how stale a record's heartbeat may get; liveness itself comes from
// the failure detector's probes, so this can be long and cheap.
const recordRefresh = 5 * time.Minute

// maintainLoop refreshes the own record when addresses or resources change and at least
// every recordRefresh, and dials members learned from state that are not connected.
func (s *Service) maintainLoop() {
	defer s.wg.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	lastHeartbeat := time.Now()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.dialNow:
			s.dialKnownMembers()
			continue
		case <-s.writeNow:
			s.WriteOwn(false)
			continue
		case <-t.C:
		}
		if time.Since(lastHeartbeat) > recordRefresh {
			lastHeartbeat = time.Now()
			rec := s.ownRecord(false)
			_ = s.st.Update(func(tx *state.Tx) error { return tx.Put(Coll, rec.PeerID, EncodeRecord(rec)) })
		} else {
			s.WriteOwn(false)
		}
		s.dialKnownMembers()
	}
}

func (s *Service) dialKnownMembers() {
	admitted := map[peer.ID]bool{}
	for _, p := range s.host.Admitted() {
		admitted[p] = true
	}
	var todo []peer.AddrInfo
	yielded := false
	self := s.host.ID()
	s.st.View(func(v *state.View) {
		for _, k := range v.Keys(Coll) {
			b, _, ok := v.GetLWW(Coll, k)
			if !ok {
				continue
			}
			rec, err := DecodeRecord(b)
			if err != nil || rec.Left {
				continue
			}
			id, err := peer.Decode(k)
			if err != nil || id == self || admitted[id] {
				continue
			}
			// Of two members that learn of each other at once, the one with the smaller
			// ID dials first and the other waits dialYield: two connections at once
			// through a relay would make both sides start hole punching as the initiator,
			// and the punch fails.
			s.mu.Lock()
			fresh := time.Since(s.learned[k]) < dialYield
			s.mu.Unlock()
			if fresh && self > id {
				yielded = true
				continue
			}
			if ai := (peer.AddrInfo{ID: id, Addrs: parseAddrs(rec.Addrs)}); len(ai.Addrs) > 0 {
				todo = append(todo, ai)
			}
		}
	})
	if yielded { // come back when the other side had its turn
		time.AfterFunc(dialYield, func() {
			select {
			case s.dialNow <- struct{}{}:
			default:
			}
		})
	}
	// In parallel and without waiting: one unreachable member must not delay the others
	// by its timeout, nor a member whose addresses changed (a relayed one arrived) wait
	// for the attempt on its old ones.
	for _, ai := range todo {
		key := fmt.Sprint(ai.Addrs)
		s.mu.Lock()
		if s.dialing[ai.ID] == key {
			s.mu.Unlock()
			continue
		}
		s.dialing[ai.ID] = key
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
			if err := s.host.Connect(ctx, ai); err != nil && s.ctx.Err() == nil {
				s.log.Debug("member from state not reachable", "peer", ai.ID, "err", err)
			}
			cancel()
			s.mu.Lock()
			if s.dialing[ai.ID] == key {
				delete(s.dialing, ai.ID)
			}
			s.mu.Unlock()
		}()
	}
}

// dialYield is how long the member with the larger peer ID waits before dialling a member
// it just learned (or whose addresses changed), so that the other dials first.
const dialYield = time.Second

// AddrsChanged makes the service rewrite this node's record now (its addresses changed:
// a relay reservation, an address observed behind NAT).
func (s *Service) AddrsChanged() {
	select {
	case s.writeNow <- struct{}{}:
	default:
	}
}

func parseAddrs(as []string) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range as {
		if m, err := ma.NewMultiaddr(a); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// record reads a member's record.
func (s *Service) record(id string) (Record, bool) {
	var b []byte
	var ok bool
	s.st.View(func(v *state.View) { b, _, ok = v.GetLWW(Coll, id) })
	if !ok {
		return Record{}, false
	}
	rec, err := DecodeRecord(b)
	if err != nil {
		s.log.Warn("undecodable membership record", "peer", id, "err", err)
		return Record{}, false
	}
	return rec, true
}

// trackMember makes the detector watch a member learned from state, and re-derives its
// status (a record saying `left` turns into a node_leave event).
func (s *Service) trackMember(key string) {
	if key == s.host.ID().String() {
		return
	}
	rec, ok := s.record(key)
	if !ok {
		var exists bool
		s.st.View(func(v *state.View) { exists = v.Has(Coll, key) })
		if !exists {
			s.det.RemoveMember(key)
		}
		return
	}
	addrs := fmt.Sprint(rec.Addrs)
	s.mu.Lock()
	_, known := s.names[key]
	s.names[key] = rec.Name
	moved := known && s.addrsSeen[key] != addrs
	s.addrsSeen[key] = addrs
	if !known || moved {
		s.learned[key] = time.Now()
	}
	s.mu.Unlock()
	if (!known || moved) && !rec.Left {
		select { // a new member, or new addresses (relayed): connect now (it learns our record on admission)
		case s.dialNow <- struct{}{}:
		default:
		}
	}
	id, err := peer.Decode(key)
	if err == nil {
		s.host.AddAddrs(id, parseAddrs(rec.Addrs))
	}
	// The detector watches admitted members only: a member learned from state is dialled
	// (above) and joins the detector on admission, so a first probe never has to wait for a
	// dial, handshake and admission within the probe timeout (false suspicions at join). A
	// member that disconnects later stays in the detector and is probed to dead.
	if rec.Left {
		s.det.RemoveMember(key)
	} else if err == nil && s.host.IsAdmitted(id) {
		s.det.AddMember(key)
	}
	s.refreshStatus(key, rec)
}

// onDetectorEvent is called by the failure detector on every state change.
func (s *Service) onDetectorEvent(id string) {
	if rec, ok := s.record(id); ok { // else not a member yet: its record has not arrived
		s.refreshStatus(id, rec)
	}
}

// statusOf derives a member's status from its record and the detector.
func (s *Service) statusOf(id string, rec Record) (string, time.Time) {
	if id == s.host.ID().String() {
		return api.StatusAlive, time.Now()
	}
	st, seen, ok := s.det.Member(id)
	if seen.IsZero() && rec.Heartbeat > 0 {
		seen = time.UnixMilli(rec.Heartbeat) // the detector forgot it (left): the record's last refresh
	}
	if rec.Left && (!ok || st != api.StatusAlive) {
		return api.StatusLeft, seen
	}
	if !ok {
		return api.StatusDead, seen
	}
	return st, seen
}

func (s *Service) refreshStatus(id string, rec Record) {
	st, _ := s.statusOf(id, rec)
	s.mu.Lock()
	prev, seen := s.status[id]
	if seen && prev == st {
		s.mu.Unlock()
		return
	}
	s.status[id] = st
	s.mu.Unlock()
	s.st.Touch(Coll) // blocking reads of nodes (and instances' node status) see the change
	var typ string
	switch st {
	case api.StatusAlive:
		if prev == api.StatusSuspect {
			typ = api.EventNodeAlive
		} else {
			typ = api.EventNodeJoin
		}
	case api.StatusSuspect:
		typ = api.EventNodeSuspect
	case api.StatusDead:
		if !seen {
			return // a member we have never seen alive: nothing happened
		}
		typ = api.EventNodeDead
	case api.StatusLeft:
		if !seen {
			return
		}
		typ = api.EventNodeLeave
	}
	s.log.Info("member "+st, "node", rec.Name, "id", id)
	s.bus.Publish(api.Event{Type: typ, Node: &api.EventNode{Name: rec.Name, ID: id, Status: st}})
}

// Settling bounds how long a node may take to catch up after it starts (see Settled).
type Settling struct {
	// Window: a member that is neither admitted nor judged dead by the failure detector
	// keeps the view unsettled this long after start (default 10 s: the detector's
	// suspicion ceiling plus a probe round).
	Window time.Duration
	// MaxWait: after this long the view counts as settled whatever it holds (default 30 s),
	// so a lone survivor of a cluster still acts.
	MaxWait time.Duration
}

// Settled reports whether this node's view of the cluster may be acted on. A node that
// just started (a restart, a restore from an old backup) holds state that may be out of
// date and judges every member it has not reached yet dead; acting on that re-places
// healthy instances. The view is settled when either there is no other member, or the
// state has been exchanged with at least one member (anti-entropy) and every member in the
// records is admitted or has had a full detection window to be; and in any case MaxWait
// after start.
func (s *Service) Settled() bool {
	since := time.Since(s.started)
	if since >= s.settle.MaxWait {
		return true
	}
	self := s.host.ID().String()
	var others []string
	s.st.View(func(v *state.View) {
		for _, k := range v.Keys(Coll) {
			if k == self {
				continue
			}
			if b, _, ok := v.GetLWW(Coll, k); ok {
				if rec, err := DecodeRecord(b); err == nil && !rec.Left {
					others = append(others, k)
				}
			}
		}
	})
	if len(others) == 0 {
		return true
	}
	if s.host.Stats().Syncs == 0 {
		return false
	}
	if since >= s.settle.Window {
		return true
	}
	admitted := map[string]bool{}
	for _, p := range s.host.Admitted() {
		admitted[p.String()] = true
	}
	for _, k := range others {
		if !admitted[k] {
			return false
		}
	}
	return true
}

// Nodes lists every member this node knows with its locally judged status, sorted by name.
func (s *Service) Nodes() []api.NodeInfo {
	type kv struct {
		id  string
		rec Record
	}
	var recs []kv
	s.st.View(func(v *state.View) {
		for _, k := range v.Keys(Coll) {
			if b, _, ok := v.GetLWW(Coll, k); ok {
				if rec, err := DecodeRecord(b); err == nil {
					recs = append(recs, kv{k, rec})
				}
			}
		}
	})
	out := make([]api.NodeInfo, 0, len(recs))
	self := s.host.ID().String()
	for _, x := range recs {
		rec := x.rec
		st, seen := s.statusOf(x.id, rec)
		addrs := rec.Addrs
		if addrs == nil {
			addrs = []string{}
		}
		labels := rec.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		var rtts map[string]float64
		if len(rec.RTT) > 0 {
			rtts = make(map[string]float64, len(rec.RTT))
			for p, us := range rec.RTT {
				rtts[p] = float64(us) / 1000
			}
		}
		out = append(out, api.NodeInfo{
			Reachability: rec.Reach, NATType: rec.NAT, RTTs: rtts,
			Name: rec.Name, ID: x.id, Status: st, Addresses: addrs, Labels: labels,
			Instances: rec.Instances, CPUTotal: rec.CPUCores, RAMTotalMB: rec.RAMMB, DiskTotalMB: rec.DiskMB,
			LastSeen: seen.UTC().Truncate(time.Millisecond), Self: x.id == self, Incarnation: rec.Incarnation,
			StartedAt: time.UnixMilli(rec.StartedAt).UTC(),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// NameOf is the node name of a peer ID from its record (ok false: unknown).
func (s *Service) NameOf(id string) (string, bool) {
	if id == s.host.ID().String() {
		return s.cfg.Name, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.names[id]
	return n, ok
}

// Resolve finds a member by name or peer ID, preferring an alive one. A dead or left node
// is ErrNodeUnavailable; an unknown one ErrNodeNotFound.
func (s *Service) Resolve(nameOrID string) (peer.ID, string, error) {
	var best *api.NodeInfo
	for _, x := range s.Nodes() {
		if x.Name != nameOrID && x.ID != nameOrID {
			continue
		}
		if best == nil || (x.Status == api.StatusAlive && best.Status != api.StatusAlive) {
			best = &x
		}
	}
	if best == nil {
		return "", "", fmt.Errorf("%w: %q is neither a node name nor a peer ID in 'constellation nodes'", ErrNodeNotFound, nameOrID)
	}
	if best.Status == api.StatusLeft || best.Status == api.StatusDead {
		return "", "", fmt.Errorf("%w: node %s is %s", ErrNodeUnavailable, best.Name, best.Status)
	}
	id, err := peer.Decode(best.ID)
	if err != nil {
		return "", "", fmt.Errorf("%w: bad peer ID %q", ErrNodeNotFound, best.ID)
	}
	return id, best.Name, nil
}

// recordAddrs strips /p2p/<id> (the record is keyed by peer ID already).
func recordAddrs(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		if t, _ := peer.SplitAddr(a); t != nil {
			out = append(out, t.String())
		}
	}
	return out
}
