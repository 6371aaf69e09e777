package locks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/internal/httpapi"
)

// Config configures the lock service. Zero values take the documented defaults.
type Config struct {
	// Self is this node's peer ID: its Raft server ID and address.
	Self string
	// Dir holds the Raft log, stable store (raft.db) and snapshots (<data-dir>/locks).
	// Empty: in memory (tests).
	Dir string
	// LockDelay is how long a path stays unavailable after its lease expired (Consul's
	// lock-delay; default 1s; negative: none).
	LockDelay time.Duration
	// StableAfter: a member alive this long may vote and may bootstrap (default 3s).
	StableAfter time.Duration
	// Grace: a voter dead longer than this is replaced (default 30s).
	Grace time.Duration
	// Joining: the node was told peers to join, so it never bootstraps a group before it
	// has seen another member (the cluster's first node, started without --join, does).
	Joining bool
	// Voters forces the voter count (default 0: 3, or 5 with at least 7 stable members).
	Voters int
	// Nonvoters is how many standbys follow the log besides the voters (default 2;
	// negative: none). Other members forward their requests.
	Nonvoters int
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout tune Raft (defaults 500ms,
	// 500ms, 250ms: failover well under the 3 s goal on a LAN).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// Tick is the leader's loop period: expiries, voter changes (default 20ms).
	Tick time.Duration
	// Metrics receives the constellation_locks_* collectors (nil: a private registry).
	Metrics prometheus.Registerer
	// Now is the clock (default time.Now); only the leader reads it, to stamp entries.
	Now func() time.Time

	// stores, when set (tests), replace the stores Dir would hold, so a "killed" node
	// restarts on what it had persisted.
	stores *memStores
}

// memStores are in-memory Raft stores that outlive a Service (tests' restarts).
type memStores struct {
	mem   *raft.InmemStore
	snaps *raft.InmemSnapshotStore
}

func (c *Config) defaults() {
	if c.LockDelay == 0 {
		c.LockDelay = time.Second
	}
	if c.LockDelay < 0 {
		c.LockDelay = 0
	}
	if c.StableAfter == 0 {
		c.StableAfter = 3 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = 30 * time.Second
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 500 * time.Millisecond
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = 500 * time.Millisecond
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = c.HeartbeatTimeout / 2
	}
	if c.Nonvoters == 0 {
		c.Nonvoters = 2
	}
	if c.Nonvoters < 0 {
		c.Nonvoters = 0
	}
	if c.Tick == 0 {
		c.Tick = 20 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
}

// Members is what the service needs of cluster membership.
type Members interface {
	LockMembers() []Member
}

// Network carries the Raft RPCs and the forward protocol between members.
type Network interface {
	// Raft is the Raft transport (its LocalAddr is Self).
	Raft() raft.Transport
	// Call sends a request to member to and returns its answer.
	Call(ctx context.Context, to string, req *Request) (*Response, error)
	// Serve sets the handler of requests from other members.
	Serve(h func(ctx context.Context, req *Request) *Response)
}

// Service is the lock service of one node: its Raft server (voter, non-voter, or not yet
// in the group), the leader's loop (expiries, voter management) and the forwarding of
// requests to the leader.
type Service struct {
	cfg     Config
	net     Network
	members Members
	log     *slog.Logger

	fsm   *fsm
	raft  *raft.Raft
	store io.Closer // the bolt store (nil in memory)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// gate orders Raft calls before Shutdown: a future handed to Raft as it shuts down
	// may never be answered, so Close waits for the calls in flight (each ends by commit,
	// leadership loss or timeout) and later calls see closed.
	gate   sync.RWMutex
	closed bool

	// ready is the term in which this leader's opLeader entry was applied (0: not ready).
	ready atomic.Uint64
	// hint is the leader another member last named (plain clients know no leader).
	hint    atomic.Pointer[string]
	started time.Time
	m       *metrics
}

// New opens the Raft stores and starts the Raft server. A node with no Raft state waits
// for the bootstrap rule (Start) or for the leader to add it.
func New(ctx context.Context, cfg Config, network Network, members Members, log *slog.Logger) (*Service, error) {
	cfg.defaults()
	if cfg.Self == "" {
		return nil, errors.New("locks: Config.Self is empty; give the node's peer ID")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Service{cfg: cfg, net: network, members: members, log: log, fsm: newFSM(), started: cfg.Now()}
	s.ctx, s.cancel = context.WithCancel(ctx)
	var err error
	if s.m, err = newMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Self)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = 5 * time.Millisecond
	rc.SnapshotThreshold = 4096
	rc.SnapshotInterval = 30 * time.Second
	rc.TrailingLogs = 4096
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: slogWriter{log}})
	var logs raft.LogStore
	var stable raft.StableStore
	var snaps raft.SnapshotStore
	if cfg.stores != nil {
		logs, stable, snaps = cfg.stores.mem, cfg.stores.mem, cfg.stores.snaps
	} else if cfg.Dir == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("locks: data dir: %w", err)
		}
		bs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
		if err != nil {
			return nil, fmt.Errorf("locks: raft store %s: %w", filepath.Join(cfg.Dir, "raft.db"), err)
		}
		s.store = bs
		logs, stable = bs, bs
		if snaps, err = raft.NewFileSnapshotStore(cfg.Dir, 2, slogWriter{log}); err != nil {
			bs.Close()
			return nil, fmt.Errorf("locks: snapshot store: %w", err)
		}
	}
	if s.raft, err = raft.NewRaft(rc, s.fsm, logs, stable, snaps, network.Raft()); err != nil {
		if s.store != nil {
			s.store.Close()
		}
		return nil, fmt.Errorf("locks: raft: %w", err)
	}
	network.Serve(s.serve)
	return s, nil
}

// Start runs the node's loop: bootstrap, and as leader expiries and voter changes.
func (s *Service) Start() {
	s.wg.Add(1)
	go s.loop()
}

// Close stops the loop and the Raft server and closes the stores. The network is the
// caller's.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	s.gate.Lock()
	s.closed = true
	s.gate.Unlock()
	err := s.raft.Shutdown().Error()
	if s.store != nil {
		err = errors.Join(err, s.store.Close())
	}
	return err
}

// slogWriter passes Raft's log lines to slog.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	// hclog's line: "<time> [LEVEL] name: message: key=value ..."
	line := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if i := strings.Index(line, "["); i >= 0 {
		if j := strings.Index(line[i:], "]"); j > 0 {
			switch line[i+1 : i+j] {
			case "ERROR":
				level = slog.LevelError
			case "INFO", "DEBUG", "TRACE":
				level = slog.LevelInfo
			}
			line = strings.TrimSpace(line[i+j+1:])
		}
	}
	w.log.Log(context.Background(), level, line, "svc", "locks-raft")
	return len(p), nil
}

// ---- the loop ----

func (s *Service) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	var lastBoot, lastPlan time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := s.cfg.Now()
		if s.raft.State() != raft.Leader {
			s.ready.Store(0)
			s.m.leader.Set(0)
			if now.Sub(lastBoot) >= 250*time.Millisecond {
				lastBoot = now
				s.maybeBootstrap(now)
			}
			continue
		}
		term := s.raft.CurrentTerm()
		if s.ready.Load() != term {
			// A new leader: every lease lasts at least its TTL from now (Chubby).
			if _, err := s.apply(command{Op: opLeader}); err != nil {
				continue
			}
			s.ready.Store(term)
			s.m.leader.Set(1)
			s.log.Info("lock service leader", "term", term)
		}
		for _, c := range s.fsm.expired(s.cfg.Now().UnixNano()) {
			if _, err := s.apply(c); err != nil {
				break
			}
			s.m.expired.Inc()
		}
		if now.Sub(lastPlan) >= 200*time.Millisecond {
			lastPlan = now
			s.manageVoters(now)
		}
	}
}

// hasConfig reports whether this node belongs to a Raft configuration.
func (s *Service) servers() []raft.Server {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	return f.Configuration().Servers
}

// maybeBootstrap applies the bootstrap rule: a node in no configuration bootstraps the
// group as its single voter only when it has been up StableAfter, it has the lowest peer ID
// among every member it knows of (alive or not; members that left excepted), and every one
// of those members answers that it belongs to no group and knows no leader. A member it
// cannot reach might belong to a group it cannot see, so it waits; a node told to join
// (Joining) also waits until it knows another member. Otherwise a leader adds it.
func (s *Service) maybeBootstrap(now time.Time) {
	if len(s.servers()) > 0 || now.Sub(s.started) < s.cfg.StableAfter || s.leaderHint() != "" {
		return
	}
	var others []string
	for _, m := range s.members.LockMembers() {
		if m.ID == s.cfg.Self || m.Left {
			continue
		}
		if m.ID < s.cfg.Self || !m.Alive {
			return // a member with a lower ID bootstraps, or one we cannot ask
		}
		others = append(others, m.ID)
	}
	if s.cfg.Joining && len(others) == 0 {
		return // told to join: wait to see the cluster first
	}
	for _, id := range others {
		ctx, cancel := context.WithTimeout(s.ctx, time.Second)
		resp, err := s.net.Call(ctx, id, &Request{Op: opStatus})
		cancel()
		if err != nil || resp.Status == nil {
			return // cannot tell: wait
		}
		if resp.Status.Leader != "" || len(resp.Status.Voters) > 0 {
			s.setHint(resp.Status.Leader)
			return // a group exists: its leader adds us, or we forward to it
		}
	}
	cfg := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(s.cfg.Self), Address: raft.ServerAddress(s.cfg.Self)}}}
	if err := s.raft.BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		s.log.Warn("lock group bootstrap", "err", err)
		return
	}
	s.log.Info("lock group bootstrapped as its first voter", "members_seen", len(others)+1)
}

// manageVoters makes the one membership change Plan asks for.
func (s *Service) manageVoters(now time.Time) {
	var servers []Server
	for _, sv := range s.servers() {
		servers = append(servers, Server{ID: string(sv.ID), Voter: sv.Suffrage == raft.Voter})
	}
	ch := Plan(servers, s.members.LockMembers(), s.cfg.Self, now,
		PlanParams{StableAfter: s.cfg.StableAfter, Grace: s.cfg.Grace, Voters: s.cfg.Voters, Nonvoters: s.cfg.Nonvoters})
	if ch.Kind == NoChange {
		return
	}
	id, addr := raft.ServerID(ch.ID), raft.ServerAddress(ch.ID)
	var f raft.IndexFuture
	switch ch.Kind {
	case AddVoter:
		f = s.raft.AddVoter(id, addr, 0, 5*time.Second)
	case AddNonvoter:
		f = s.raft.AddNonvoter(id, addr, 0, 5*time.Second)
	case DemoteVoter:
		f = s.raft.DemoteVoter(id, 0, 5*time.Second)
	case RemoveServer:
		f = s.raft.RemoveServer(id, 0, 5*time.Second)
	}
	if err := f.Error(); err != nil {
		s.log.Warn("lock group membership change", "change", ch.Kind.String(), "server", ch.ID, "reason", ch.Reason, "err", err)
		return
	}
	s.m.changes.Inc()
	s.log.Info("lock group membership change", "change", ch.Kind.String(), "server", ch.ID, "reason", ch.Reason)
}

// ---- applying and forwarding ----

// applyTimeout bounds one log entry's commit.
const applyTimeout = 3 * time.Second

// apply commits c through Raft as the leader, stamped with the leader's clock.
func (s *Service) apply(c command) (result, error) {
	if !s.enter() {
		return result{}, ErrClosed
	}
	defer s.gate.RUnlock()
	c.Now = s.cfg.Now().UnixNano()
	c.Delay = int64(s.cfg.LockDelay)
	b, err := encMode.Marshal(&c)
	if err != nil {
		return result{}, err
	}
	f := s.raft.Apply(b, applyTimeout)
	if err := f.Error(); err != nil {
		return result{}, s.unavailableErr(err)
	}
	r, _ := f.Response().(result)
	return r, nil
}

// enter takes the gate for a Raft call; false after Close (then nothing is held).
func (s *Service) enter() bool {
	s.gate.RLock()
	if s.closed {
		s.gate.RUnlock()
		return false
	}
	return true
}

// unavailableErr explains why the group cannot commit now.
func (s *Service) unavailableErr(cause error) error {
	var down []string
	alive := map[string]bool{}
	for _, m := range s.members.LockMembers() {
		alive[m.ID] = m.Alive
	}
	voters := 0
	for _, sv := range s.servers() {
		if sv.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(sv.ID) != s.cfg.Self && !alive[string(sv.ID)] {
			down = append(down, string(sv.ID))
		}
	}
	why := "no leader with a quorum"
	if cause != nil {
		why = cause.Error()
	}
	if voters == 0 {
		return unavailable("%s; this node is not in the lock group yet (it waits for the leader to add it)", why)
	}
	if len(down) > 0 {
		return unavailable("%s; voters unreachable: %s (%d of %d; a majority must answer)", why, strings.Join(down, ", "), len(down), voters)
	}
	return unavailable("%s (%d voters)", why, voters)
}

// isLeader reports whether this node leads and its takeover entry is applied.
func (s *Service) isLeader() bool {
	return s.raft.State() == raft.Leader && s.ready.Load() == s.raft.CurrentTerm()
}

// leaderHint is the leader another member named ("" when none).
func (s *Service) leaderHint() string {
	if p := s.hint.Load(); p != nil {
		return *p
	}
	return ""
}

func (s *Service) setHint(id string) {
	if id != s.cfg.Self {
		s.hint.Store(&id)
	}
}

// serve handles a request from another member; every answer names the leader this node
// knows, which plain clients remember.
func (s *Service) serve(ctx context.Context, req *Request) *Response {
	resp := s.serveReq(ctx, req)
	if resp.Leader == "" {
		resp.Leader = s.leader()
	}
	return resp
}

func (s *Service) serveReq(ctx context.Context, req *Request) *Response {
	if err := req.check(); err != nil {
		return &Response{Err: toWireErr(err)}
	}
	if req.Op == opStatus {
		st := s.Status()
		return &Response{Status: &st}
	}
	if s.isLeader() {
		return s.local(ctx, req)
	}
	leader := s.leader()
	if leader == "" || leader == s.cfg.Self || req.Hops > 0 {
		return &Response{Err: toWireErr(s.unavailableErr(errors.New("not the leader")))}
	}
	fwd := *req
	fwd.Hops++
	resp, err := s.net.Call(ctx, leader, &fwd)
	if err != nil {
		return &Response{Err: toWireErr(s.unavailableErr(fmt.Errorf("leader %s: %v", leader, err)))}
	}
	return resp
}

// local executes a request on the leader.
func (s *Service) local(ctx context.Context, req *Request) *Response {
	switch req.Op {
	case opGet, opList:
		if err := s.readIndex(ctx); err != nil {
			return &Response{Err: toWireErr(err)}
		}
		if req.Op == opList {
			return &Response{Leases: s.fsm.leases()}
		}
		v, rev, ok := s.fsm.get(req.Path)
		return &Response{Value: v, Rev: rev, Found: ok}
	}
	if req.Op == opAcquire {
		// A lock held by another holder (or in its lock-delay) is refused without a log
		// entry: waiting acquires poll, and each entry costs an fsync on a majority. The
		// check may see a slightly old state; it only refuses, the FSM alone grants.
		if e := s.fsm.refuseAcquire(req.Path, req.Holder, s.cfg.Now().UnixNano()); e != nil {
			return &Response{Err: toWireErr(e.toError(req.Path))}
		}
	}
	c := command{Op: req.Op, Path: req.Path, Holder: req.Holder, TTL: req.TTL, Token: req.Token,
		ExpectRev: req.ExpectRev, Value: req.Value}
	r, err := s.apply(c)
	if err != nil {
		return &Response{Err: toWireErr(err)}
	}
	if r.Err != nil {
		return &Response{Err: toWireErr(r.Err.toError(req.Path))}
	}
	out := &Response{Rev: r.Rev}
	if req.Op == opAcquire || req.Op == opRenew {
		l := r.Lease
		out.Lease = &l
	}
	return out
}

// readIndex makes a read linearizable: remember the commit index, confirm leadership
// with a quorum, then wait for the FSM to apply up to the remembered index.
func (s *Service) readIndex(ctx context.Context) error {
	if !s.enter() {
		return ErrClosed
	}
	defer s.gate.RUnlock()
	idx := s.raft.CommitIndex()
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return s.unavailableErr(err)
	}
	for s.raft.AppliedIndex() < idx {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// leader is the leader this node knows ("" when none).
func (s *Service) leader() string {
	_, id := s.raft.LeaderWithID()
	return string(id)
}

// retryable reports whether a request may be sent again (no leader yet, leadership moving).
func retryable(err error) bool { return IsCode(err, "unavailable") }

// do sends a request to the leader (itself, the leader it knows, else through any alive
// member), retrying while the group elects a leader, until ctx ends.
func (s *Service) do(ctx context.Context, req *Request) (*Response, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	var last error
	backoff := 10 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if s.ctx.Err() != nil {
			return nil, ErrClosed
		}
		resp, err := s.once(ctx, req, attempt)
		if err == nil && resp.Err != nil {
			err = resp.Err.err()
		}
		if err == nil {
			return resp, nil
		}
		if !retryable(err) {
			return nil, err
		}
		last = err
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return nil, last
			}
			return nil, ctx.Err()
		case <-s.ctx.Done():
			return nil, ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

func (s *Service) once(ctx context.Context, req *Request, attempt int) (*Response, error) {
	if s.isLeader() {
		return s.local(ctx, req), nil
	}
	to := s.leader()
	if to == s.cfg.Self {
		return nil, s.unavailableErr(errors.New("leader taking over"))
	}
	if to == "" && attempt%2 == 0 && len(s.servers()) == 0 {
		to = s.leaderHint() // a plain client: the leader another member named
	}
	if to == "" {
		// Not in the group (or no leader known): ask an alive member, which forwards once.
		var ids []string
		for _, m := range s.members.LockMembers() {
			if m.Alive && m.ID != s.cfg.Self {
				ids = append(ids, m.ID)
			}
		}
		if len(ids) == 0 {
			return nil, s.unavailableErr(nil)
		}
		sort.Strings(ids)
		to = ids[(attempt+rand.IntN(len(ids)))%len(ids)]
	}
	cctx, cancel := context.WithTimeout(ctx, applyTimeout+time.Second)
	defer cancel()
	if to == s.leader() {
		// A call to a leader that died may hang until its timeout: give it up as soon as
		// Raft sees another leader (or none), and send it again there.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-cctx.Done():
					return
				case <-t.C:
					if s.leader() != to {
						cancel()
						return
					}
				}
			}
		}()
	}
	resp, err := s.net.Call(cctx, to, req)
	if err == nil && resp.Leader != "" {
		s.setHint(resp.Leader)
	}
	if err != nil {
		if to == s.leaderHint() {
			s.setHint("")
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.unavailableErr(fmt.Errorf("member %s: %v", to, err))
	}
	return resp, nil
}

// ---- the API ----

// Acquire grants path's lock to holder for ttl. With wait it retries while the lock is
// held (or in its lock-delay) until ctx ends (then a 408 "timeout" naming the holder);
// without, a held lock answers 409 "held".
func (s *Service) Acquire(ctx context.Context, path, holder string, ttl time.Duration, wait bool) (Lease, error) {
	start := time.Now()
	defer func() { s.m.acquire.Observe(time.Since(start).Seconds()) }()
	req := &Request{Op: opAcquire, Path: path, Holder: holder, TTL: int64(ttl)}
	for {
		resp, err := s.do(ctx, req)
		if err == nil {
			if resp.Lease == nil {
				return Lease{}, errors.New("locks: acquire answered without a lease")
			}
			s.m.granted.Inc()
			return *resp.Lease, nil
		}
		if !wait || !IsCode(err, "held") {
			return Lease{}, err
		}
		select {
		case <-ctx.Done():
			return Lease{}, &httpapi.Error{Status: http.StatusRequestTimeout, Code: "timeout",
				Msg: fmt.Sprintf("locks: gave up waiting for %s: %v", path, err)}
		case <-time.After(25*time.Millisecond + rand.N(25*time.Millisecond)):
		}
	}
}

// Renew extends the lease of the lock path held with token by its TTL.
func (s *Service) Renew(ctx context.Context, path string, token uint64) (Lease, error) {
	resp, err := s.do(ctx, &Request{Op: opRenew, Path: path, Token: token})
	if err != nil {
		return Lease{}, err
	}
	if resp.Lease == nil {
		return Lease{}, errors.New("locks: renew answered without a lease")
	}
	return *resp.Lease, nil
}

// Release frees the lock path held with token (no lock-delay follows a release).
func (s *Service) Release(ctx context.Context, path string, token uint64) error {
	_, err := s.do(ctx, &Request{Op: opRelease, Path: path, Token: token})
	return err
}

// CAS sets key's value when its revision is expectRev (0: the key must not exist) and
// token (0: unfenced) is at least the highest token seen for key; it returns the new
// revision (cluster-wide, strictly increasing).
func (s *Service) CAS(ctx context.Context, key string, expectRev uint64, value []byte, token uint64) (uint64, error) {
	resp, err := s.do(ctx, &Request{Op: opCAS, Path: key, ExpectRev: expectRev, Value: value, Token: token})
	if err != nil {
		return 0, err
	}
	return resp.Rev, nil
}

// Get reads key linearizably (through the leader's read index); rev 0: no such key.
func (s *Service) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	resp, err := s.do(ctx, &Request{Op: opGet, Path: key})
	if err != nil {
		return nil, 0, err
	}
	return resp.Value, resp.Rev, nil
}

// List returns the held locks (a linearizable read), by path.
func (s *Service) List(ctx context.Context) ([]Lease, error) {
	resp, err := s.do(ctx, &Request{Op: opList})
	if err != nil {
		return nil, err
	}
	if resp.Leases == nil {
		return []Lease{}, nil
	}
	return resp.Leases, nil
}

// Status is the group as this node sees it (not forwarded).
func (s *Service) Status() Status {
	st := Status{Self: s.cfg.Self, State: strings.ToLower(s.raft.State().String()), Leader: s.leader(),
		Term: s.raft.CurrentTerm(), LastIndex: s.raft.LastIndex(), Applied: s.raft.AppliedIndex(),
		Voters: []string{}, Nonvoters: []string{}}
	servers := s.servers()
	if len(servers) == 0 {
		st.State = "none"
	}
	for _, sv := range servers {
		if sv.Suffrage == raft.Voter {
			st.Voters = append(st.Voters, string(sv.ID))
		} else {
			st.Nonvoters = append(st.Nonvoters, string(sv.ID))
		}
	}
	sort.Strings(st.Voters)
	sort.Strings(st.Nonvoters)
	s.fsm.mu.RLock()
	st.Locks, st.LastToken = len(s.fsm.s.Locks), s.fsm.s.LastToken
	s.fsm.mu.RUnlock()
	return st
}
