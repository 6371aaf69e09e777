package liveness

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Packet is an encoded message the caller must send to To (best effort: a
// lost packet is handled by the protocol). Data is owned by the caller.
type Packet struct {
	To   string
	Data []byte
}

// ErrInvalidID is returned for an empty, too long, or own member ID.
var ErrInvalidID = errors.New("liveness: invalid member id")

const (
	// maxRelays bounds the indirect probes this node runs for others at once.
	maxRelays = 64
	// maxUrgent bounds the out-of-order probe list.
	maxUrgent = 16
	// maxEvents bounds undrained events; the oldest are dropped beyond it.
	maxEvents = 4096
)

// Detector is the SWIM failure detector with the Lifeguard extensions, as a
// pure state machine: it never reads the clock, sleeps or does I/O. The caller
// feeds it time (Tick at NextDeadline), inbound packets (Handle) and the
// member list (AddMember/RemoveMember), and sends the packets it returns.
// A Detector is not safe for concurrent use; Runner adds the locking.
type Detector struct {
	cfg  Config
	self string
	inc  uint64
	rng  *rand.Rand

	members map[string]*member
	ids     []string // sorted member IDs, for deterministic iteration
	order   []string // probe order (shuffled), consumed from orderAt
	orderAt int
	urgent  []string // members suspected by others: probed next, out of order

	started bool
	left    bool
	health  int

	seq       uint16
	probe     *probe
	nextProbe time.Time
	relays    map[uint16]*relay

	queue         broadcastQueue
	nextGossip    time.Time
	nextReconnect time.Time

	events      []Event
	refutations uint64
}

type member struct {
	Member
	susp *suspicion // non-nil while State is StateSuspect
}

// suspicion is Lifeguard's dynamic suspicion timeout: it starts at max and
// shrinks towards min, logarithmically, with each independent confirmation,
// reaching min after k confirmations.
type suspicion struct {
	start     time.Time
	k         int
	n         int // confirmations beyond the first accuser
	min, max  time.Duration
	confirmed []string // accusers seen, the first one included
}

func (s *suspicion) deadline() time.Time {
	if s.k < 1 {
		return s.start.Add(s.min)
	}
	frac := math.Log(float64(s.n)+1) / math.Log(float64(s.k)+1)
	t := time.Duration(float64(s.max) - frac*float64(s.max-s.min))
	if t < s.min {
		t = s.min
	}
	return s.start.Add(t)
}

// probe is the probe in flight.
type probe struct {
	target   string
	seq      uint16
	direct   time.Time // direct ack deadline: then ask helpers
	end      time.Time // end of the probe: suspect unless acked
	indirect bool
	acked    bool
	helpers  []string
	nacks    []string
}

// relay is an indirect probe run on behalf of a requester.
type relay struct {
	requester string
	reqSeq    uint16
	target    string
	deadline  time.Time
}

// New returns a detector for the member self with the given starting
// incarnation. Use a value that grows across restarts (the node passes its
// start time in milliseconds) so that a restarted node is never confused
// with its previous life.
func New(self string, incarnation uint64, cfg Config) (*Detector, error) {
	if !validID(self) {
		return nil, fmt.Errorf("%w: self %q", ErrInvalidID, self)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := cfg.Rand
	if rng == nil {
		h := fnv.New64a()
		h.Write([]byte(self))
		rng = rand.New(rand.NewPCG(h.Sum64(), incarnation))
	}
	d := &Detector{
		cfg:     cfg,
		self:    self,
		inc:     incarnation,
		rng:     rng,
		members: make(map[string]*member),
		relays:  make(map[uint16]*relay),
		seq:     uint16(rng.Uint32()),
	}
	d.queue.push(d.aliveSelf())
	return d, nil
}

// Self returns this node's ID.
func (d *Detector) Self() string { return d.self }

// Incarnation returns this node's current incarnation (raised by refutations).
func (d *Detector) Incarnation() uint64 { return d.inc }

// LocalHealth returns the Lifeguard local health score, 0 (healthy) to
// AwarenessMaxMultiplier-1. Probe interval and timeout are scaled by score+1.
func (d *Detector) LocalHealth() int { return d.health }

// Refutations counts how often this node had to refute a suspicion of itself.
func (d *Detector) Refutations() uint64 { return d.refutations }

// Left reports whether Leave was called.
func (d *Detector) Left() bool { return d.left }

// AddMember starts tracking id as alive (incarnation unknown until it
// announces itself). The node calls it for every admitted peer. Adding a
// known member changes nothing. Every addition re-announces this node's own
// incarnation so that new members learn it.
func (d *Detector) AddMember(id string, now time.Time) error {
	if !validID(id) || id == d.self {
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	if _, ok := d.members[id]; ok {
		return nil
	}
	d.members[id] = &member{Member: Member{ID: id, State: StateAlive, LastSeen: now, StateChangedAt: now}}
	i, _ := slices.BinarySearch(d.ids, id)
	d.ids = slices.Insert(d.ids, i, id)
	d.addToOrder(id)
	if !d.left {
		d.queue.push(d.aliveSelf())
	}
	return nil
}

// RemoveMember forgets id (the peer is no longer admitted). Messages about
// unknown members are ignored, so it will not come back by gossip.
func (d *Detector) RemoveMember(id string) {
	if _, ok := d.members[id]; !ok {
		return
	}
	delete(d.members, id)
	if i, ok := slices.BinarySearch(d.ids, id); ok {
		d.ids = slices.Delete(d.ids, i, i+1)
	}
	d.queue.remove(id)
}

// Status returns this node's view of id.
func (d *Detector) Status(id string) (Member, bool) {
	m, ok := d.members[id]
	if !ok {
		return Member{}, false
	}
	return m.Member, true
}

// Members returns every member except this node, sorted by ID.
func (d *Detector) Members() []Member {
	out := make([]Member, 0, len(d.ids))
	for _, id := range d.ids {
		out = append(out, d.members[id].Member)
	}
	return out
}

// Events returns and clears the state transitions since the last call (at
// most the newest 4096 are kept).
func (d *Detector) Events() []Event {
	ev := d.events
	d.events = nil
	return ev
}

// NextDeadline returns when Tick must be called next, and false when no
// timer is pending (only after Leave). It changes after every Tick, Handle,
// AddMember and Leave. Before the first Tick or Handle it is the zero time:
// tick now.
func (d *Detector) NextDeadline() (time.Time, bool) {
	if !d.started {
		return time.Time{}, true
	}
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if !d.left {
		consider(d.nextProbe)
		if p := d.probe; p != nil {
			if !p.acked && !p.indirect {
				consider(p.direct)
			}
			consider(p.end)
		}
		for _, id := range d.ids {
			m := d.members[id]
			if m.susp != nil {
				consider(m.susp.deadline())
			}
		}
		if d.cfg.ReconnectInterval > 0 {
			consider(d.nextReconnect)
		}
	}
	for _, r := range d.relays {
		consider(r.deadline)
	}
	if d.queue.len() > 0 {
		consider(d.nextGossip)
	}
	return next, !next.IsZero()
}

func (d *Detector) begin(now time.Time) {
	if d.started {
		return
	}
	d.started = true
	d.nextProbe = d.alignSlot(now)
	d.nextGossip = now
	d.nextReconnect = now.Add(d.cfg.ReconnectInterval)
}

// Tick advances timers: probes, indirect probes, suspicion timeouts, gossip
// and reconnect pings. Calling it early is harmless.
func (d *Detector) Tick(now time.Time) []Packet {
	d.begin(now)
	var out []Packet
	out = d.expireRelays(now, out)
	if !d.left {
		out = d.stepProbe(now, out)
		d.checkSuspicions(now)
		out = d.reconnect(now, out)
	}
	out = d.gossip(now, out)
	return out
}

// Handle processes one packet from the authenticated peer from and returns
// the replies. A malformed packet yields an error wrapping ErrMalformed and
// changes nothing. A peer that is not a member only gets its pings answered;
// changes about unknown members are ignored.
func (d *Detector) Handle(from string, payload []byte, now time.Time) ([]Packet, error) {
	msg, err := decode(payload)
	if err != nil {
		return nil, err
	}
	d.begin(now)
	sender := d.members[from]
	if sender == nil || d.left {
		if msg.typ == msgPing && from != d.self {
			return []Packet{d.packet(from, message{typ: msgAck, seq: msg.seq})}, nil
		}
		return nil, nil
	}
	sender.LastSeen = now
	accused := false // the sender holds a stale claim against this node
	for _, e := range msg.entries {
		if e.node == d.self && e.kind != entryAlive {
			accused = true
		}
		d.apply(e, now)
	}
	var out []Packet
	switch msg.typ {
	case msgPing:
		// Tell a sender we suspect or declared dead, so that it refutes, and
		// answer a stale accusation with our current incarnation even when
		// the refutation already left our queue.
		var extra []entry
		switch sender.State {
		case StateSuspect:
			extra = append(extra, entry{kind: entrySuspect, node: from, inc: sender.Incarnation, from: d.self})
		case StateDead:
			extra = append(extra, entry{kind: entryDead, node: from, inc: sender.Incarnation, from: d.self})
		}
		if accused {
			extra = append(extra, d.aliveSelf())
			accused = false
		}
		out = append(out, d.packet(from, message{typ: msgAck, seq: msg.seq}, extra...))
	case msgAck:
		out = d.onAck(from, msg.seq, now, out)
	case msgNack:
		if p := d.probe; p != nil && msg.seq == p.seq && slices.Contains(p.helpers, from) && !slices.Contains(p.nacks, from) {
			p.nacks = append(p.nacks, from)
		}
	case msgPingReq:
		out = d.onPingReq(from, msg, now, out)
	}
	if accused {
		out = append(out, d.packet(from, message{typ: msgGossip}, d.aliveSelf()))
	}
	return out, nil
}

// Leave marks this node as left and returns the announcement for every live
// member. Afterwards the detector stops probing, still answers pings (with
// the announcement) and gossips what is queued. The caller sends the packets,
// waits briefly, and stops.
func (d *Detector) Leave(now time.Time) []Packet {
	d.begin(now)
	if d.left {
		return nil
	}
	d.left = true
	d.probe = nil
	var out []Packet
	for _, id := range d.ids {
		if s := d.members[id].State; s == StateAlive || s == StateSuspect {
			out = append(out, d.packet(id, message{typ: msgGossip}))
		}
	}
	return out
}

func (d *Detector) aliveSelf() entry { return entry{kind: entryAlive, node: d.self, inc: d.inc} }

func (d *Detector) nextSeq() uint16 {
	d.seq++
	return d.seq
}

// liveCount is the number of alive and suspect members plus this node.
func (d *Detector) liveCount() int {
	n := 1
	for _, m := range d.members {
		if m.State == StateAlive || m.State == StateSuspect {
			n++
		}
	}
	return n
}

func (d *Detector) retransmitLimit() int {
	return d.cfg.RetransmitMult * int(math.Ceil(math.Log10(float64(len(d.members)+2))))
}

func (d *Detector) scale(t time.Duration) time.Duration { return t * time.Duration(d.health+1) }

func (d *Detector) applyHealth(delta int) {
	d.health = min(max(d.health+delta, 0), d.cfg.AwarenessMaxMultiplier-1)
}

// packet encodes m for to with the extra entries first, then (after Leave)
// the leave announcement, then as many queued changes as fit.
func (d *Detector) packet(to string, m message, extra ...entry) Packet {
	b := appendHeader(make([]byte, 0, 64), m)
	skip := "" // queued changes about a member in extra would be redundant
	for _, e := range extra {
		b = appendEntry(b, e)
		if e.node == d.self || skip == "" {
			skip = e.node
		}
	}
	n := len(extra)
	if d.left {
		b = appendEntry(b, entry{kind: entryLeft, node: d.self, inc: d.inc})
		n++
		skip = d.self
	}
	b = d.queue.take(b, d.cfg.MaxPacketSize-len(b), d.retransmitLimit(), maxEntries-n, skip)
	return Packet{To: to, Data: b}
}

func (d *Detector) setState(m *member, s State, now time.Time) {
	prev := m.State
	if prev == s {
		return
	}
	m.State = s
	m.StateChangedAt = now
	if s != StateSuspect {
		m.susp = nil
	}
	if (s == StateAlive || s == StateSuspect) && (prev == StateDead || prev == StateLeft) {
		d.addToOrder(m.ID)
	}
	if len(d.events) >= maxEvents {
		d.events = slices.Delete(d.events, 0, len(d.events)-maxEvents+1)
	}
	d.events = append(d.events, Event{Kind: eventKind(prev, s), ID: m.ID, Prev: prev, State: s, Incarnation: m.Incarnation, At: now})
}

// addToOrder inserts id at a random place in the rest of this probe round.
func (d *Detector) addToOrder(id string) {
	if slices.Contains(d.order[d.orderAt:], id) {
		return
	}
	i := d.orderAt + d.rng.IntN(len(d.order)-d.orderAt+1)
	d.order = slices.Insert(d.order, i, id)
}

// nextTarget returns the next alive or suspect member in probe order,
// reshuffling at the end of each round, or "" if there is none.
func (d *Detector) nextTarget() string {
	for pass := 0; pass < 2; pass++ {
		for d.orderAt < len(d.order) {
			id := d.order[d.orderAt]
			d.orderAt++
			if m, ok := d.members[id]; ok && (m.State == StateAlive || m.State == StateSuspect) {
				return id
			}
		}
		d.order = d.order[:0]
		for _, id := range d.ids {
			if s := d.members[id].State; s == StateAlive || s == StateSuspect {
				d.order = append(d.order, id)
			}
		}
		d.rng.Shuffle(len(d.order), func(i, j int) { d.order[i], d.order[j] = d.order[j], d.order[i] })
		d.orderAt = 0
	}
	return ""
}

// slotStart returns the slot boundary nearest to t.
func (d *Detector) slotStart(t time.Time) time.Time {
	iv := int64(d.cfg.ProbeInterval)
	r := t.Add(d.cfg.ProbeInterval/2).UnixNano() % iv
	if r < 0 {
		r += iv
	}
	return t.Add(d.cfg.ProbeInterval/2 - time.Duration(r))
}

// alignSlot returns the first probe slot boundary at or after t. With
// ShuffledProbes it returns t plus a random stagger below one interval.
func (d *Detector) alignSlot(t time.Time) time.Time {
	iv := int64(d.cfg.ProbeInterval)
	if d.cfg.ShuffledProbes {
		return t.Add(time.Duration(d.rng.Int64N(iv)))
	}
	ns := t.UnixNano()
	rem := ns % iv
	if rem < 0 {
		rem += iv
	}
	if rem == 0 {
		return t
	}
	return t.Add(time.Duration(iv - rem))
}

// slotTarget is the time-slotted probe schedule. Slots are ProbeInterval
// long and numbered by the clock (r = unix time / interval). In slot r the
// member at index i of the sorted live members (this node included) probes
// the one at i+1+(r mod (n-1)): a rotation, so when clocks and views agree
// every member is probed by exactly one other member per slot, and by each
// other member once every n-1 slots. With skewed clocks or diverging views
// it degrades to a random-looking schedule.
func (d *Detector) slotTarget(now time.Time) string {
	live := make([]string, 0, len(d.ids)+1)
	self := -1
	for _, id := range d.ids {
		if self < 0 && d.self < id {
			self = len(live)
			live = append(live, d.self)
		}
		if s := d.members[id].State; s == StateAlive || s == StateSuspect {
			live = append(live, id)
		}
	}
	if self < 0 {
		self = len(live)
		live = append(live, d.self)
	}
	n := len(live)
	if n < 2 {
		return ""
	}
	r := now.Add(d.cfg.ProbeInterval/2).UnixNano() / int64(d.cfg.ProbeInterval) // nearest slot
	if r < 0 {
		r = -r
	}
	return live[(self+1+int(r%int64(n-1)))%n]
}

// urgentTarget returns the oldest member suspected by another node that is
// still suspect, or "".
func (d *Detector) urgentTarget() string {
	for len(d.urgent) > 0 {
		id := d.urgent[0]
		d.urgent = d.urgent[1:]
		if m, ok := d.members[id]; ok && m.State == StateSuspect {
			return id
		}
	}
	return ""
}

// randomMembers picks up to k distinct members accepted by keep.
func (d *Detector) randomMembers(k int, keep func(*member) bool) []string {
	var c []string
	for _, id := range d.ids {
		if keep(d.members[id]) {
			c = append(c, id)
		}
	}
	for i := 0; i < k && i < len(c); i++ {
		j := i + d.rng.IntN(len(c)-i)
		c[i], c[j] = c[j], c[i]
	}
	return c[:min(k, len(c))]
}

func (d *Detector) stepProbe(now time.Time, out []Packet) []Packet {
	if p := d.probe; p != nil {
		if !p.acked && !p.indirect && !now.Before(p.direct) {
			p.indirect = true
			out = d.probeIndirect(p, out)
		}
		if !now.Before(p.end) {
			d.probe = nil
			d.finishProbe(p, now)
		}
	}
	if d.probe != nil || now.Before(d.nextProbe) {
		return out
	}
	target := d.urgentTarget()
	if target == "" && d.cfg.ShuffledProbes {
		target = d.nextTarget()
	} else if target == "" {
		target = d.slotTarget(now)
	}
	if target == "" {
		d.nextProbe = now.Add(d.cfg.ProbeInterval)
		return out
	}
	p := &probe{
		target: target,
		seq:    d.nextSeq(),
		direct: now.Add(d.scale(d.cfg.ProbeTimeout)),
		end:    now.Add(d.scale(d.cfg.ProbeInterval)),
	}
	d.probe = p
	if d.cfg.ShuffledProbes {
		d.nextProbe = p.end
	} else {
		// The next slot counts from the slot this probe belongs to, not from
		// now: a timer that fires a little late must not skip a slot.
		d.nextProbe = d.slotStart(now).Add(d.scale(d.cfg.ProbeInterval))
	}
	return append(out, d.ping(p.target, p.seq))
}

// ping is the direct ping of a probe. A suspect target also gets the
// suspicion, so that it can refute at once (Lifeguard's buddy system).
func (d *Detector) ping(target string, seq uint16) Packet {
	m := d.members[target]
	if m != nil && m.State == StateSuspect {
		return d.packet(target, message{typ: msgPing, seq: seq},
			entry{kind: entrySuspect, node: target, inc: m.Incarnation, from: d.self})
	}
	return d.packet(target, message{typ: msgPing, seq: seq})
}

// probeIndirect asks helpers to probe the target and pings it once more
// directly (a second chance against a lost packet).
func (d *Detector) probeIndirect(p *probe, out []Packet) []Packet {
	p.helpers = d.randomMembers(d.cfg.IndirectChecks, func(m *member) bool {
		return m.State == StateAlive && m.ID != p.target
	})
	for _, h := range p.helpers {
		out = append(out, d.packet(h, message{typ: msgPingReq, seq: p.seq, target: p.target}))
	}
	return append(out, d.ping(p.target, p.seq))
}

func (d *Detector) finishProbe(p *probe, now time.Time) {
	if p.acked {
		d.applyHealth(-1)
		return
	}
	// Lifeguard: helpers that did not even send a nack point at a problem on
	// our side rather than at the target, so health worsens first and
	// stretches the suspicion raised below. Without helpers (two members)
	// every failed probe counts, but only after the suspicion: such a
	// failure says nothing about which side is slow.
	suspect := func() {
		if m := d.members[p.target]; m != nil && (m.State == StateAlive || m.State == StateSuspect) {
			d.onSuspect(entry{kind: entrySuspect, node: p.target, inc: m.Incarnation, from: d.self}, now)
		}
	}
	if len(p.helpers) == 0 {
		suspect()
		d.applyHealth(1)
		return
	}
	d.applyHealth(len(p.helpers) - len(p.nacks))
	suspect()
}

func (d *Detector) onAck(from string, seq uint16, now time.Time, out []Packet) []Packet {
	if p := d.probe; p != nil && seq == p.seq && !p.acked && (from == p.target || slices.Contains(p.helpers, from)) {
		p.acked = true
		if m := d.members[p.target]; m != nil {
			m.LastSeen = now
		}
		return out
	}
	if r, ok := d.relays[seq]; ok && from == r.target {
		delete(d.relays, seq)
		out = append(out, d.packet(r.requester, message{typ: msgAck, seq: r.reqSeq}))
	}
	return out
}

func (d *Detector) onPingReq(from string, msg message, now time.Time, out []Packet) []Packet {
	t := d.members[msg.target]
	if t == nil || msg.target == from || len(d.relays) >= maxRelays {
		return out
	}
	seq := d.nextSeq()
	d.relays[seq] = &relay{requester: from, reqSeq: msg.seq, target: msg.target, deadline: now.Add(d.cfg.ProbeTimeout)}
	return append(out, d.ping(msg.target, seq))
}

// expireRelays sends a nack for every indirect probe whose target stayed
// silent, in sequence order.
func (d *Detector) expireRelays(now time.Time, out []Packet) []Packet {
	var expired []uint16
	for seq, r := range d.relays {
		if !now.Before(r.deadline) {
			expired = append(expired, seq)
		}
	}
	slices.Sort(expired)
	for _, seq := range expired {
		r := d.relays[seq]
		delete(d.relays, seq)
		if !d.left {
			out = append(out, d.packet(r.requester, message{typ: msgNack, seq: r.reqSeq}))
		}
	}
	return out
}

func (d *Detector) checkSuspicions(now time.Time) {
	for _, id := range d.ids {
		m := d.members[id]
		if m.susp != nil && !now.Before(m.susp.deadline()) {
			d.onDead(entry{kind: entryDead, node: id, inc: m.Incarnation, from: d.self}, now)
		}
	}
}

func (d *Detector) gossip(now time.Time, out []Packet) []Packet {
	if d.queue.len() == 0 || now.Before(d.nextGossip) {
		return out
	}
	d.nextGossip = now.Add(d.cfg.GossipInterval)
	for _, t := range d.randomMembers(d.cfg.GossipNodes, func(m *member) bool {
		return m.State == StateAlive || m.State == StateSuspect
	}) {
		if d.queue.len() == 0 {
			break
		}
		out = append(out, d.packet(t, message{typ: msgGossip}))
	}
	return out
}

// reconnect pings a random dead member with the claim that it is dead: if it
// is only cut off, it refutes and its ack carries the new incarnation.
func (d *Detector) reconnect(now time.Time, out []Packet) []Packet {
	if d.cfg.ReconnectInterval <= 0 || now.Before(d.nextReconnect) {
		return out
	}
	d.nextReconnect = now.Add(d.cfg.ReconnectInterval)
	dead := d.randomMembers(1, func(m *member) bool { return m.State == StateDead })
	if len(dead) == 0 {
		return out
	}
	m := d.members[dead[0]]
	return append(out, d.packet(m.ID, message{typ: msgPing, seq: d.nextSeq()},
		entry{kind: entryDead, node: m.ID, inc: m.Incarnation, from: d.self}))
}

// apply processes one gossiped change.
func (d *Detector) apply(e entry, now time.Time) {
	switch e.kind {
	case entryAlive:
		d.onAlive(e, now)
	case entrySuspect:
		d.onSuspect(e, now)
	case entryDead:
		d.onDead(e, now)
	case entryLeft:
		d.onLeft(e, now)
	}
}

// refute answers a claim about this node at incarnation accused by moving
// past it and announcing that this node is alive.
func (d *Detector) refute(accused uint64) {
	if d.left || accused < d.inc {
		return
	}
	d.inc = accused + 1
	d.refutations++
	d.applyHealth(1) // Lifeguard: having to refute hints at a problem here
	d.queue.push(d.aliveSelf())
}

func (d *Detector) onAlive(e entry, now time.Time) {
	if e.node == d.self {
		if e.inc > d.inc {
			d.refute(e.inc)
		}
		return
	}
	m := d.members[e.node]
	if m == nil || e.inc <= m.Incarnation {
		return
	}
	m.Incarnation = e.inc
	m.LastSeen = now
	d.setState(m, StateAlive, now)
	d.queue.push(e)
}

func (d *Detector) onSuspect(e entry, now time.Time) {
	if e.node == d.self {
		d.refute(e.inc)
		return
	}
	m := d.members[e.node]
	if m == nil || e.inc < m.Incarnation {
		return
	}
	if m.susp != nil {
		if d.confirm(m.susp, e.from) {
			d.queue.push(e)
		}
		return
	}
	if m.State != StateAlive {
		return
	}
	m.Incarnation = e.inc
	d.setState(m, StateSuspect, now)
	n := d.liveCount()
	k := d.cfg.SuspicionMult - 2
	if n-2 < k {
		k = 0
	}
	lo := d.scale(time.Duration(float64(d.cfg.SuspicionMult) * max(1, math.Log10(float64(n))) * float64(d.cfg.ProbeInterval)))
	hi := min(lo*time.Duration(d.cfg.SuspicionMaxTimeoutMult), d.cfg.SuspicionMaxTimeout)
	lo = min(lo, hi)
	m.susp = &suspicion{start: now, k: k, min: lo, max: hi, confirmed: []string{e.from}}
	d.queue.push(e)
	if e.from != d.self && len(d.urgent) < maxUrgent {
		// Probe it next: a dead member collects its confirmations within
		// about one interval, a live one hears of the suspicion sooner.
		d.urgent = append(d.urgent, e.node)
	}
}

// confirm counts an independent confirmation from a known accuser.
func (d *Detector) confirm(s *suspicion, from string) bool {
	if s.n >= s.k || slices.Contains(s.confirmed, from) {
		return false
	}
	if _, ok := d.members[from]; !ok && from != d.self {
		return false
	}
	s.confirmed = append(s.confirmed, from)
	s.n++
	return true
}

func (d *Detector) onDead(e entry, now time.Time) {
	if e.node == d.self {
		d.refute(e.inc)
		return
	}
	m := d.members[e.node]
	if m == nil || e.inc < m.Incarnation || m.State == StateDead || m.State == StateLeft {
		return
	}
	m.Incarnation = e.inc
	d.setState(m, StateDead, now)
	d.queue.push(e)
}

func (d *Detector) onLeft(e entry, now time.Time) {
	if e.node == d.self {
		d.refute(e.inc)
		return
	}
	m := d.members[e.node]
	if m == nil || e.inc < m.Incarnation || m.State == StateLeft {
		return
	}
	m.Incarnation = e.inc
	d.setState(m, StateLeft, now)
	d.queue.push(e)
}
