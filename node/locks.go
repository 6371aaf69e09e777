package node

import (
	"log/slog"
	"path/filepath"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/locks"
)

// nodeLocks is the lock service and its network.
type nodeLocks struct {
	svc *locks.Service
	net *locks.P2PNetwork
}

// buildLocks builds the lock service (<data-dir>/locks), registers /v1/locks and starts
// its loop; it closes when the node's ctx ends (before the host closes).
func (n *Node) buildLocks(log *slog.Logger) error {
	c := n.cfg.Locks
	if err := c.validate(); err != nil {
		return err
	}
	log = log.With("svc", "locks")
	nw, err := locks.NewP2PNetwork(n.host, log)
	if err != nil {
		return err
	}
	svc, err := locks.New(n.ctx, locks.Config{
		Self: n.host.ID().String(), Dir: filepath.Join(n.cfg.DataDir, "locks"), LockDelay: c.LockDelay,
		StableAfter: c.StableAfter, Grace: c.Grace, Voters: c.Voters, Joining: len(n.cfg.Join) > 0,
		Metrics: n.registry,
	}, nw, lockMembers{n}, log)
	if err != nil {
		nw.Close()
		return err
	}
	svc.Register(n.api)
	svc.Start()
	n.locks = nodeLocks{svc: svc, net: nw}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		<-n.ctx.Done()
		if err := svc.Close(); err != nil {
			n.log.Warn("lock service close", "err", err)
		}
		nw.Close()
	}()
	return nil
}

// lockMembers gives the lock service the membership view.
type lockMembers struct{ n *Node }

func (m lockMembers) LockMembers() []locks.Member {
	nodes := m.n.members.Nodes()
	out := make([]locks.Member, 0, len(nodes))
	for _, nd := range nodes {
		zone := nd.Labels["zone"]
		if zone == "" {
			zone = nd.Labels["region"]
		}
		mem := locks.Member{ID: nd.ID, Zone: zone, Alive: nd.Status == api.StatusAlive, Left: nd.Status == api.StatusLeft}
		if mem.Alive {
			mem.Since = nd.StartedAt
		} else {
			mem.Since = nd.LastSeen
		}
		if mem.Since.IsZero() {
			mem.Since = time.Now()
		}
		out = append(out, mem)
	}
	return out
}

// Locks is the node's lock service (tests and benchmarks; users go through /v1/locks).
func (n *Node) Locks() *locks.Service { return n.locks.svc }
