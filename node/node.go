package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/p2p"
)

// Version is the constellation release this binary implements.
var Version = "0.0.4-dev"

var (
	// ErrNodeNotFound means no member of the cluster has the given name or ID.
	ErrNodeNotFound = errors.New("node: no such node")
	// ErrNodeUnavailable means the node is known but cannot be reached now.
	ErrNodeUnavailable = errors.New("node: node unavailable")
)

// detector is what the node needs from the failure detector (p2p/liveness).
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

// Node is one constellation node: replicated state, networking, failure detection, events
// and the local API, composed. New builds it, Start runs it, Close leaves the cluster.
type Node struct {
	cfg     Config
	log     *slog.Logger
	started time.Time

	lock   *dirLock
	store  *stateStore
	host   *p2p.Host
	det    detector
	events *eventBus
	api    *apiServer
	// instances runs this node's instances and serves the instance API (instances.go).
	instances *instanceManager
	// sched places deployments, holds reservations and enforces quotas (sched_loop.go).
	sched *scheduler

	// APIAddr is the bound TCP API address when APIListen is set.
	APIAddr string

	mu    sync.Mutex // guards the following fields
	doc   *crdt.Document
	clock *crdt.Clock
	// status is the last status published per peer ID (for event de-duplication).
	status map[string]string
	// names caches peer ID -> node name from records.
	names map[string]string
	// onChange, when set (OnStateChange), sees every key changed by a remote delta.
	onChange func(collection, key string)

	persistCh chan []byte
	dialNow   chan struct{} // capacity 1: a member was learned; dial it without waiting for the tick
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
	incarn    uint64
	clean     bool // shutdown flushed everything: the replica sequence may continue
}

// discoveryInterval spaces the DHT rendezvous lookups. Members learn each other's addresses
// from the membership records and dial them directly, so the DHT is a fallback for peers
// beyond them. One lookup moves about 70 KB per node in an idle 20-node cluster: at p2p's
// default of 30 s that was 2.2 KB/s per node, 30 times everything else an idle node sends
// (70 B/s); every 10 minutes it adds about 120 B/s.
const discoveryInterval = 10 * time.Minute

// New validates cfg, takes the data directory, loads the persisted state and builds the
// networking, but sends nothing until Start.
func New(cfg Config, log *slog.Logger) (n *Node, err error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	n = &Node{
		cfg: cfg, log: log, started: time.Now(), events: newEventBus(),
		status: map[string]string{}, names: map[string]string{},
		persistCh: make(chan []byte, 4096), done: make(chan struct{}), dialNow: make(chan struct{}, 1),
	}
	built := n // `return nil, err` clears n before this runs
	defer func() {
		if err != nil {
			built.releaseResources()
		}
	}()
	if n.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if n.store, err = openStore(filepath.Join(cfg.DataDir, "state.db"), cfg.Cluster); err != nil {
		return nil, err
	}

	listen, err := p2p.ParseBind(cfg.Bind)
	if err != nil {
		return nil, &ConfigError{"bind", cfg.Bind, err.Error()}
	}
	var advertise []ma.Multiaddr
	if cfg.Advertise != "" {
		if advertise, err = p2p.ParseBind(cfg.Advertise); err != nil {
			return nil, &ConfigError{"advertise", cfg.Advertise, err.Error()}
		}
	}
	var join []p2p.JoinAddr
	for _, j := range cfg.Join {
		ja, err := p2p.ParseJoin(j)
		if err != nil {
			return nil, err
		}
		join = append(join, ja)
	}
	n.host, err = p2p.New(p2p.Config{
		Cluster:             cfg.Cluster,
		ClusterKey:          cfg.ClusterKey,
		NodeName:            cfg.Node,
		Listen:              listen,
		Advertise:           advertise,
		Join:                join,
		MDNS:                !cfg.NoMDNS,
		IdentityFile:        filepath.Join(cfg.DataDir, "identity.key"),
		Logger:              log,
		GossipBatch:         cfg.GossipBatch,
		AntiEntropyInterval: cfg.AntiEntropyInterval,
		DiscoveryInterval:   discoveryInterval,
		OnPeerAdmitted:      n.onPeerAdmitted,
		OnPeerGone:          func(peer.ID) {},
		OnMessage:           n.onMessage,
	})
	if err != nil {
		return nil, err
	}

	epoch, fresh, err := n.store.replicaEpoch()
	if err != nil {
		return nil, err
	}
	if fresh {
		log.Debug("new replica epoch (first start or unclean stop)")
	}
	rid := crdt.ReplicaIDFromBytes(append([]byte(n.host.ID()), epoch...))
	n.clock = crdt.NewClock(rid, time.Now, 0)
	n.doc = crdt.NewDocument(rid, n.clock)
	loaded, err := n.store.load(func(b []byte) error {
		d, err := crdt.DecodeDelta(b, crdt.DefaultLimits)
		if err != nil {
			return err
		}
		_, err = n.doc.Join(d)
		var off *crdt.ClockOffsetError
		if errors.As(err, &off) {
			return nil // our own old clock was ahead; the entry is already reflected or stale
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if loaded > 0 {
		log.Info("resumed replicated state", "entries", loaded, "nodes", n.doc.Len(CollNodes))
	}
	n.incarn = uint64(time.Now().UnixMilli())
	n.det = newLivenessDetector(n, n.host, n.incarn, log)
	n.api = newAPIServer(n, log, cfg.APIToken)
	n.instances = newInstanceManager(n)
	n.instances.registerRoutes(n.api.route)
	n.instances.registerRoutes(func(p string, h http.HandlerFunc) { n.instances.fwdMux.HandleFunc(p, h) })
	n.sched = newScheduler(n)
	n.sched.registerRoutes(n.api.route)
	return n, nil
}

// Start joins the cluster and serves the local API.
func (n *Node) Start(ctx context.Context) error {
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.api.listenUnix(n.SocketPath()); err != nil {
		return err
	}
	if n.cfg.APIListen != "" {
		if n.api.token == "" {
			tok, err := loadOrCreateToken(filepath.Join(n.cfg.DataDir, "api.token"))
			if err != nil {
				return err
			}
			n.api.token = tok
		}
		addr, err := n.api.listenTCP(n.cfg.APIListen)
		if err != nil {
			return err
		}
		n.APIAddr = addr.String()
	}
	// The own record goes into the document before the host joins anyone, so the first
	// anti-entropy exchange (the bootstrap) already carries it to the peer we join.
	n.writeOwnRecord(false)
	if err := n.host.Start(ctx, replica{n}); err != nil {
		return err
	}
	n.host.HandlePackets("liveness", func(from peer.ID, b []byte) { n.det.HandlePacket(from.String(), b) })
	if err := n.det.start(n.ctx); err != nil {
		return err
	}
	if err := n.instances.start(); err != nil {
		return err
	}
	if err := n.sched.start(); err != nil {
		return err
	}
	n.mu.Lock()
	for _, k := range n.doc.Keys(CollNodes) {
		n.trackMemberLocked(k)
	}
	n.mu.Unlock()

	n.wg.Add(2)
	go n.persistLoop()
	go n.maintainLoop()
	n.log.Info("node started", "name", n.cfg.Node, "id", n.host.ID().String(), "cluster", n.cfg.Cluster,
		"addrs", strings.Join(n.fullAddrs(), " "), "api", n.SocketPath())
	return nil
}

// SocketPath is the local API's Unix socket.
func (n *Node) SocketPath() string { return filepath.Join(n.cfg.DataDir, "api.sock") }

// ID is this node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host exposes the networking layer (for tests and benchmarks).
func (n *Node) Host() *p2p.Host { return n.host }

// Done is closed when the node has stopped.
func (n *Node) Done() <-chan struct{} { return n.done }

// Close leaves the cluster gracefully: the node's record says `left`, peers are told, state
// is flushed to disk. Safe to call twice.
func (n *Node) Close() error { return n.shutdown(true) }

// Kill stops the node without leaving, as a crash would (peers will judge it dead). For tests.
func (n *Node) Kill() error { return n.shutdown(false) }

func (n *Node) shutdown(graceful bool) error {
	var err error
	n.closeOnce.Do(func() {
		if n.ctx != nil && graceful {
			n.writeOwnRecord(true)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = n.det.Leave(ctx)
			// Let the gossip batch holding the `left` record go out before the host closes.
			time.Sleep(2*n.cfg.GossipBatch + 10*time.Millisecond)
			cancel()
		}
		if n.sched != nil && n.ctx != nil {
			n.sched.close()
		}
		if n.instances != nil {
			n.instances.close()
		}
		if n.api != nil {
			n.api.close()
		}
		if n.cancel != nil {
			n.cancel()
		}
		close(n.done)
		n.wg.Wait()
		n.clean = graceful
		err = n.releaseResources()
	})
	return err
}

func (n *Node) releaseResources() error {
	var errs []error
	if n.det != nil {
		errs = append(errs, n.det.Close())
	}
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	if n.store != nil {
		n.mu.Lock()
		if n.doc != nil && n.ctx != nil {
			if b, err := crdt.EncodeDelta(n.doc.State()); err == nil {
				if err := n.store.snapshot(b); err == nil && n.clean {
					errs = append(errs, n.store.markClean())
				} else {
					errs = append(errs, err)
				}
			}
		}
		n.mu.Unlock()
		errs = append(errs, n.store.close())
	}
	n.lock.release()
	return errors.Join(errs...)
}

// ---- replicated state ----

// replica adapts the node's document to p2p.Replica.
type replica struct{ n *Node }

func (r replica) Version() []byte {
	r.n.mu.Lock()
	vv := r.n.doc.Version()
	r.n.mu.Unlock()
	b, err := crdt.EncodeVersion(vv)
	if err != nil {
		r.n.log.Error("encode version vector", "err", err)
	}
	return b
}

func (r replica) MissingFor(peerVersion []byte) ([]byte, error) {
	vv, err := crdt.DecodeVersion(peerVersion, crdt.DefaultLimits)
	if err != nil {
		return nil, err
	}
	r.n.mu.Lock()
	d := r.n.doc.DeltaFor(vv)
	r.n.mu.Unlock()
	if d == nil {
		return nil, nil
	}
	return crdt.EncodeDelta(d)
}

func (r replica) Apply(from peer.ID, data []byte) error {
	d, err := crdt.DecodeDelta(data, crdt.DefaultLimits)
	if err != nil {
		return fmt.Errorf("delta from %s: %w", from, err)
	}
	return r.n.join(d, data)
}

// join merges a remote delta, persists it and reacts to what changed.
func (n *Node) join(d *crdt.Delta, encoded []byte) error {
	n.mu.Lock()
	changes, err := n.doc.Join(d)
	if err == nil && len(changes) > 0 {
		n.reactLocked(changes)
		if n.onChange != nil {
			for _, c := range changes {
				n.onChange(c.Collection, c.Key)
			}
		}
	}
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		n.persist(encoded)
	}
	return nil
}

// mutate applies a local mutation's delta: persist and publish.
func (n *Node) publishLocked(d *crdt.Delta) {
	if d == nil {
		return
	}
	b, err := crdt.EncodeDelta(d)
	if err != nil {
		n.log.Error("encode delta", "err", err)
		return
	}
	n.persist(b)
	n.host.Publish(b)
}

func (n *Node) persist(b []byte) {
	select {
	case n.persistCh <- b:
	default:
		// The persister is far behind: write synchronously rather than drop.
		if err := n.store.appendDeltas([][]byte{b}); err != nil {
			n.log.Error("persist delta", "err", err)
		}
	}
}

// persistLoop batches deltas into one bbolt transaction and compacts the log periodically.
func (n *Node) persistLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.SnapshotInterval)
	defer t.Stop()
	flush := func(first []byte) {
		batch := [][]byte{first}
		for len(batch) < 1024 {
			select {
			case b := <-n.persistCh:
				batch = append(batch, b)
				continue
			default:
			}
			break
		}
		if err := n.store.appendDeltas(batch); err != nil {
			n.log.Error("persist deltas", "err", err)
		}
	}
	for {
		select {
		case <-n.ctx.Done():
			for {
				select {
				case b := <-n.persistCh:
					flush(b)
				default:
					return
				}
			}
		case b := <-n.persistCh:
			flush(b)
		case <-t.C:
			if n.store.logLen() == 0 {
				continue
			}
			n.mu.Lock()
			b, err := crdt.EncodeDelta(n.doc.State())
			n.mu.Unlock()
			if err == nil {
				err = n.store.snapshot(b)
			}
			if err != nil {
				n.log.Error("snapshot state", "err", err)
			}
		}
	}
}

// ---- membership ----

func (n *Node) ownRecord(left bool) NodeRecord {
	res := localResources(n.cfg.DataDir)
	return NodeRecord{
		Name:        n.cfg.Node,
		PeerID:      n.host.ID().String(),
		Addrs:       recordAddrs(n.host.Addrs()),
		Labels:      n.cfg.Labels,
		CPUCores:    res.CPUCores,
		RAMMB:       res.RAMMB,
		DiskMB:      res.DiskMB,
		Instances:   n.instances.instanceCount(),
		StartedAt:   n.started.UnixMilli(),
		Incarnation: n.incarn,
		Left:        left,
		Heartbeat:   time.Now().UnixMilli(),
		Version:     Version,
	}
}

func (n *Node) writeOwnRecord(left bool) {
	rec := n.ownRecord(left)
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, _, ok := n.doc.GetLWW(CollNodes, rec.PeerID); ok && !left {
		if o, err := decodeRecord(old); err == nil && sameRecord(o, rec) {
			return
		}
	}
	d, err := n.doc.PutLWW(CollNodes, rec.PeerID, encodeRecord(rec))
	if err != nil {
		n.log.Error("write own record", "err", err)
		return
	}
	n.publishLocked(d)
}

// sameRecord ignores the heartbeat so that an unchanged record is not rewritten.
func sameRecord(a, b NodeRecord) bool {
	a.Heartbeat, b.Heartbeat = 0, 0
	return string(encodeRecord(a)) == string(encodeRecord(b))
}

// maintainLoop refreshes the own record when addresses or resources change and at least
// every recordRefresh, and dials members learned from state that are not connected.
func (n *Node) maintainLoop() {
	defer n.wg.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	lastHeartbeat := time.Now()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.dialNow:
			n.dialKnownMembers()
			continue
		case <-t.C:
		}
		if time.Since(lastHeartbeat) > recordRefresh {
			lastHeartbeat = time.Now()
			rec := n.ownRecord(false)
			n.mu.Lock()
			if d, err := n.doc.PutLWW(CollNodes, rec.PeerID, encodeRecord(rec)); err == nil {
				n.publishLocked(d)
			}
			n.mu.Unlock()
		} else {
			n.writeOwnRecord(false)
		}
		n.dialKnownMembers()
	}
}

// recordRefresh bounds how stale a record's heartbeat may get; liveness itself comes from
// the failure detector's probes, so this can be long and cheap.
const recordRefresh = 5 * time.Minute

func (n *Node) dialKnownMembers() {
	admitted := map[peer.ID]bool{}
	for _, p := range n.host.Admitted() {
		admitted[p] = true
	}
	var todo []peer.AddrInfo
	n.mu.Lock()
	for _, k := range n.doc.Keys(CollNodes) {
		v, _, ok := n.doc.GetLWW(CollNodes, k)
		if !ok {
			continue
		}
		rec, err := decodeRecord(v)
		if err != nil || rec.Left {
			continue
		}
		id, err := peer.Decode(k)
		if err != nil || id == n.host.ID() || admitted[id] {
			continue
		}
		ai := peer.AddrInfo{ID: id}
		for _, a := range rec.Addrs {
			if m, err := ma.NewMultiaddr(a); err == nil {
				ai.Addrs = append(ai.Addrs, m)
			}
		}
		if len(ai.Addrs) > 0 {
			todo = append(todo, ai)
		}
	}
	n.mu.Unlock()
	// In parallel: one unreachable member must not delay the others by its timeout.
	var wg sync.WaitGroup
	for _, ai := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
			if err := n.host.Connect(ctx, ai); err != nil && n.ctx.Err() == nil {
				n.log.Debug("member from state not reachable", "peer", ai.ID, "err", err)
			}
			cancel()
		}()
	}
	wg.Wait()
}

// reactLocked handles changed keys of a join.
func (n *Node) reactLocked(changes []crdt.Change) {
	for _, c := range changes {
		if c.Collection == CollNodes {
			n.trackMemberLocked(c.Key)
		}
		if c.Collection == CollInstances {
			n.instances.onChangeLocked(c)
		}
		n.sched.onChangeLocked(c)
	}
}

// trackMemberLocked makes the detector watch a member learned from state, and re-derives
// its status (a record saying `left` turns into a node_leave event).
func (n *Node) trackMemberLocked(key string) {
	if key == n.host.ID().String() {
		return
	}
	v, _, ok := n.doc.GetLWW(CollNodes, key)
	if !ok {
		n.det.RemoveMember(key)
		return
	}
	rec, err := decodeRecord(v)
	if err != nil {
		n.log.Warn("undecodable membership record", "peer", key, "err", err)
		return
	}
	if _, known := n.names[key]; !known && !rec.Left {
		select { // a new member: connect to it now (it learns our record on admission)
		case n.dialNow <- struct{}{}:
		default:
		}
	}
	n.names[key] = rec.Name
	if id, err := peer.Decode(key); err == nil {
		var addrs []ma.Multiaddr
		for _, a := range rec.Addrs {
			if m, err := ma.NewMultiaddr(a); err == nil {
				addrs = append(addrs, m)
			}
		}
		n.host.AddAddrs(id, addrs)
	}
	// The detector watches admitted members only: a member learned from state is dialled
	// (above) and joins the detector on admission, so a first probe never has to wait for a
	// dial, handshake and admission within the probe timeout (false suspicions at join). A
	// member that disconnects later stays in the detector and is probed to dead.
	if rec.Left {
		n.det.RemoveMember(key)
	} else if id, err := peer.Decode(key); err == nil && n.host.IsAdmitted(id) {
		n.det.AddMember(key)
	}
	n.refreshStatusLocked(key, rec)
}

func (n *Node) onPeerAdmitted(p peer.ID) {
	n.det.AddMember(p.String())
}

// onDetectorEvent is called by the failure detector on every state change.
func (n *Node) onDetectorEvent(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v, _, ok := n.doc.GetLWW(CollNodes, id)
	if !ok {
		return // not a member yet: its record has not arrived
	}
	rec, err := decodeRecord(v)
	if err != nil {
		return
	}
	n.refreshStatusLocked(id, rec)
}

// statusOfLocked derives a member's status from its record and the detector.
func (n *Node) statusOfLocked(id string, rec NodeRecord) (string, time.Time) {
	if id == n.host.ID().String() {
		return StatusAlive, time.Now()
	}
	st, seen, ok := n.det.Member(id)
	if seen.IsZero() && rec.Heartbeat > 0 {
		seen = time.UnixMilli(rec.Heartbeat) // the detector forgot it (left): the record's last refresh
	}
	if rec.Left && (!ok || st != StatusAlive) {
		return StatusLeft, seen
	}
	if !ok {
		return StatusDead, seen
	}
	return st, seen
}

func (n *Node) refreshStatusLocked(id string, rec NodeRecord) {
	st, _ := n.statusOfLocked(id, rec)
	prev, seen := n.status[id]
	if seen && prev == st {
		return
	}
	n.status[id] = st
	var typ string
	switch st {
	case StatusAlive:
		if prev == StatusSuspect {
			typ = EventNodeAlive
		} else {
			typ = EventNodeJoin
		}
	case StatusSuspect:
		typ = EventNodeSuspect
	case StatusDead:
		if !seen {
			return // a member we have never seen alive: nothing happened
		}
		typ = EventNodeDead
	case StatusLeft:
		if !seen {
			return
		}
		typ = EventNodeLeave
	}
	n.log.Info("member "+st, "node", rec.Name, "id", id)
	n.events.publish(Event{Type: typ, Node: &EventNode{Name: rec.Name, ID: id, Status: st}})
}

// Nodes lists every member this node knows with its locally judged status.
func (n *Node) Nodes() []NodeInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodesLocked()
}

func (n *Node) nodesLocked() []NodeInfo {
	out := []NodeInfo{}
	self := n.host.ID().String()
	for _, k := range n.doc.Keys(CollNodes) {
		v, _, ok := n.doc.GetLWW(CollNodes, k)
		if !ok {
			continue
		}
		rec, err := decodeRecord(v)
		if err != nil {
			continue
		}
		st, seen := n.statusOfLocked(k, rec)
		addrs := rec.Addrs
		if addrs == nil {
			addrs = []string{}
		}
		labels := rec.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		out = append(out, NodeInfo{
			Name: rec.Name, ID: k, Status: st, Addresses: addrs, Labels: labels,
			Instances: rec.Instances, CPUTotal: rec.CPUCores, RAMTotalMB: rec.RAMMB, DiskTotalMB: rec.DiskMB,
			LastSeen: seen.UTC().Truncate(time.Millisecond), Self: k == self, Incarnation: rec.Incarnation,
			StartedAt: time.UnixMilli(rec.StartedAt).UTC(),
		})
	}
	sortNodes(out)
	return out
}

// Status describes this node.
func (n *Node) Status() StatusInfo {
	n.mu.Lock()
	nodes := n.nodesLocked()
	keys := 0
	for _, c := range []string{CollNodes} {
		keys += n.doc.Len(c)
	}
	n.mu.Unlock()
	alive := 0
	for _, x := range nodes {
		if x.Status == StatusAlive {
			alive++
		}
	}
	labels := n.cfg.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return StatusInfo{
		Name: n.cfg.Node, ID: n.host.ID().String(), Cluster: n.cfg.Cluster, Addresses: n.fullAddrs(),
		Labels: labels, NodesAlive: alive, NodesTotal: len(nodes), Admitted: len(n.host.Admitted()),
		Keyed: n.cfg.ClusterKey != "", Version: Version, UptimeS: time.Since(n.started).Seconds(),
		DataDir: n.cfg.DataDir, StateKeys: keys,
	}
}

func (n *Node) fullAddrs() []string { return addrStrings(n.host.Addrs()) }

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

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// ---- messages ----

// resolveNode finds a member by name or peer ID, preferring an alive one.
func (n *Node) resolveNode(nameOrID string) (peer.ID, string, error) {
	var best *NodeInfo
	for _, x := range n.Nodes() {
		x := x
		if x.Name != nameOrID && x.ID != nameOrID {
			continue
		}
		if best == nil || (x.Status == StatusAlive && best.Status != StatusAlive) {
			best = &x
		}
	}
	if best == nil {
		return "", "", fmt.Errorf("%w: %q is neither a node name nor a peer ID in 'constellation nodes'", ErrNodeNotFound, nameOrID)
	}
	if best.Status == StatusLeft || best.Status == StatusDead {
		return "", "", fmt.Errorf("%w: node %s is %s", ErrNodeUnavailable, best.Name, best.Status)
	}
	id, err := peer.Decode(best.ID)
	if err != nil {
		return "", "", fmt.Errorf("%w: bad peer ID %q", ErrNodeNotFound, best.ID)
	}
	return id, best.Name, nil
}

// wireMessage is the payload of a cluster message (type + JSON data).
type wireMessage struct {
	Data json.RawMessage `json:"d"`
}

// Send delivers a message event to one node (at least once; receivers de-duplicate by ID).
func (n *Node) Send(ctx context.Context, nameOrID, typ string, data json.RawMessage) (SendResult, error) {
	id, name, err := n.resolveNode(nameOrID)
	if err != nil {
		return SendResult{}, err
	}
	if id == n.host.ID() {
		mid := newMessageID()
		n.deliver(p2p.Message{ID: mid, Type: typ, From: id, Data: data, At: time.Now()})
		return SendResult{ID: mid, Nodes: []string{name}}, nil
	}
	mid, err := n.host.Send(ctx, id, typ, data)
	if err != nil {
		return SendResult{ID: mid}, fmt.Errorf("%w: send to %s: %v", ErrNodeUnavailable, name, err)
	}
	return SendResult{ID: mid, Nodes: []string{name}}, nil
}

// Broadcast delivers a message event to every admitted node and to this one.
func (n *Node) Broadcast(ctx context.Context, typ string, data json.RawMessage) (SendResult, error) {
	targets := n.host.Admitted()
	mid, err := n.host.Broadcast(ctx, typ, data)
	names := []string{n.cfg.Node}
	n.deliver(p2p.Message{ID: mid, Type: typ, From: n.host.ID(), Data: data, At: time.Now()})
	n.mu.Lock()
	for _, p := range targets {
		if nm, ok := n.names[p.String()]; ok {
			names = append(names, nm)
		} else {
			names = append(names, p.String())
		}
	}
	n.mu.Unlock()
	if err != nil {
		return SendResult{ID: mid, Nodes: names}, fmt.Errorf("%w: broadcast: %v", ErrNodeUnavailable, err)
	}
	return SendResult{ID: mid, Nodes: names}, nil
}

func (n *Node) onMessage(m p2p.Message) { n.deliver(m) }

func (n *Node) deliver(m p2p.Message) {
	data := json.RawMessage(m.Data)
	if !json.Valid(data) {
		b, _ := json.Marshal(string(m.Data))
		data = b
	}
	n.mu.Lock()
	fromName := n.names[m.From.String()]
	if m.From == n.host.ID() {
		fromName = n.cfg.Node
	}
	n.mu.Unlock()
	n.events.publish(Event{Type: EventMessage, Time: m.At.UTC(), Msg: &MessageEvent{
		ID: m.ID, Type: m.Type, From: m.From.String(), FromName: fromName, Data: data,
	}})
}

func newMessageID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func loadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		return strings.TrimSpace(string(b)), nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node: write API token: %w", err)
	}
	return tok, nil
}
