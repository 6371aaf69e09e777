package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/p2p"
)

type benchHost struct{}

func (benchHost) ID() peer.ID { return peer.ID("bench-self") }
func (benchHost) NewService(string, p2p.ServiceConfig, p2p.Handler) (*p2p.Service, error) {
	return nil, errors.New("no network in benchmarks")
}

type benchMembers []api.NodeInfo

func (m benchMembers) Nodes() []api.NodeInfo { return m }
func (m benchMembers) Settled() bool         { return true }

type nopPub struct{}

func (nopPub) Publish([]byte) {}

// BenchmarkSnapshot measures one scheduling pass's snapshot of the replicated state with
// 10,000 deployment instances (records, claims, 100 deployments, 20 nodes): the whole
// snapshot, and how long it holds the document lock (every other feature waits that long).
// Before the state package, the snapshot decoded every record under the lock: the lock was
// held for the whole snapshot time.
func BenchmarkSnapshot(b *testing.B) {
	st, err := state.Open(state.Options{Path: filepath.Join(b.TempDir(), "state.db"), Cluster: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Load([]byte("bench"), nopPub{}); err != nil {
		b.Fatal(err)
	}
	st.Start()
	defer st.Close(true)
	var nodes benchMembers
	for i := range 20 {
		nodes = append(nodes, api.NodeInfo{Name: fmt.Sprintf("n%d", i), ID: fmt.Sprintf("id-n%d", i), Status: api.StatusAlive})
	}
	const deps, per = 100, 100
	err = st.Update(func(tx *state.Tx) error {
		for d := range deps {
			name := fmt.Sprintf("dep%d", d)
			rec, _ := state.Encode(DeploymentRecord{Spec: Spec{Name: name, Instances: per, CPUPercent: 10, RAMMB: 64}})
			if err := tx.Put(CollDeployments, name, rec); err != nil {
				return err
			}
			for i := range per {
				inst := instanceName(name, i)
				nd := nodes[(d*per+i)%len(nodes)]
				c, _ := state.Encode(ClaimRecord{Instance: inst, Deployment: name, Slot: i, Node: nd.Name, NodeID: nd.ID, ClaimID: "1-x", CPUMilli: 100, RAMMB: 64})
				if err := tx.Put(CollClaims, inst, c); err != nil {
					return err
				}
				r, err := instances.EncodeRecord(instances.Record{Name: inst, ID: "x", Node: nd.Name, NodeID: nd.ID, Status: api.InstanceRunning,
					CPUPercent: 10, RAMMB: 64, Command: []string{"sleep", "1000"}, CreatedAt: time.Now()})
				if err != nil {
					return err
				}
				if err := tx.Put(instances.Coll, inst, r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(context.Background(), Config{Name: "n0", DataDir: b.TempDir()}, benchHost{}, st, nodes, nil, httpapi.New(log, nil), log)
	b.ResetTimer()
	var locked time.Duration
	for range b.N {
		snap := s.snapshot()
		if len(snap.claims) != deps*per || len(snap.insts) != deps*per {
			b.Fatalf("snapshot has %d claims, %d instances", len(snap.claims), len(snap.insts))
		}
		// The lock-held part of a snapshot: copying the raw values.
		t0 := time.Now()
		st.View(func(v *state.View) {
			for _, coll := range schedColls {
				for _, k := range v.Keys(coll) {
					_, _, _ = v.GetLWW(coll, k)
				}
			}
		})
		locked += time.Since(t0)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds()-locked.Microseconds())/float64(b.N)/1000, "ms/snapshot")
	b.ReportMetric(float64(locked.Microseconds())/float64(b.N)/1000, "ms-locked/snapshot")
}
