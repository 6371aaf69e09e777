package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/sched"
)

// Namespace quotas are enforced with bounded counters (crdt KindBounded), one per
// namespace and dimension: the counter's value is what may still be admitted, its rights
// are escrowed on nodes. A target node admits a claim only after consuming (DecBounded)
// rights it holds itself, so the sum of admitted work never exceeds the limit, whatever
// other nodes do concurrently and across partitions. A node short of rights asks peers
// to transfer theirs (protocol sched/1.0.0, op "rights"); if none can, the claim is
// rejected with a quota error. Removing an instance creates the consumed rights again on
// the node that removes it (IncBounded).
//
// Limits change with `quota set`: the node that writes the quota mints the difference to
// the burst limit (recorded in the grow-only counter "<ns>/minted/<dim>"); a lower limit
// burns rights (counter "<ns>/burned/<dim>"), now where the writer holds them, later as
// instances are removed.

// Quota dimensions (counter key suffixes).
const (
	quotaCPU       = "cpu"       // millicores
	quotaRAM       = "ram"       // MiB
	quotaInstances = "instances" // count
)

var quotaDims = []string{quotaCPU, quotaRAM, quotaInstances}

// QuotaLimits are a namespace's limits as replicated (api.QuotaSpec).
type QuotaLimits struct {
	MaxCPUCores     float64 `cbor:"1,keyasint,omitempty"`
	MaxRAMGB        float64 `cbor:"2,keyasint,omitempty"`
	MaxInstances    int     `cbor:"3,keyasint,omitempty"`
	AllowCPUBurst   bool    `cbor:"4,keyasint,omitempty"`
	AllowRAMBorrow  bool    `cbor:"5,keyasint,omitempty"`
	MaxBurstPercent int     `cbor:"6,keyasint,omitempty"`
}

// QuotaRecord is a namespace's quota (collection "quotas").
type QuotaRecord struct {
	Namespace   string `cbor:"1,keyasint,omitempty"`
	QuotaLimits `cbor:"2,keyasint"`
	UpdatedAt   int64  `cbor:"3,keyasint,omitempty"`
	UpdatedBy   string `cbor:"4,keyasint,omitempty"`
}

// spec is the API form of the limits.
func (q QuotaLimits) spec() api.QuotaSpec { return api.QuotaSpec(q) }

func (q QuotaRecord) sched() sched.Quota {
	return sched.Quota{MaxCPUCores: q.MaxCPUCores, MaxRAMGB: q.MaxRAMGB, MaxInstances: q.MaxInstances,
		AllowCPUBurst: q.AllowCPUBurst, AllowRAMBorrow: q.AllowRAMBorrow, MaxBurstPercent: q.MaxBurstPercent}
}

// limits returns the enforced (burst) limit per dimension; 0 is unlimited.
func (q QuotaRecord) limits() map[string]int64 {
	_, burst := q.sched().Limits()
	return map[string]int64{quotaCPU: burst.CPUMilli, quotaRAM: burst.RAMMB, quotaInstances: burst.Instances}
}

func validateQuota(q *api.QuotaSpec) error {
	switch {
	case q.MaxCPUCores < 0 || q.MaxCPUCores > 1<<20 || math.IsNaN(q.MaxCPUCores):
		return httpapi.BadRequest(`invalid field "max_cpu_cores": %v; cores, e.g. 16 (0 = unlimited)`, q.MaxCPUCores)
	case q.MaxRAMGB < 0 || q.MaxRAMGB > 1<<30 || math.IsNaN(q.MaxRAMGB):
		return httpapi.BadRequest(`invalid field "max_ram_gb": %v; GiB, e.g. 64 (0 = unlimited)`, q.MaxRAMGB)
	case q.MaxInstances < 0 || q.MaxInstances > 1<<30:
		return httpapi.BadRequest(`invalid field "max_instances": %d; e.g. 50 (0 = unlimited)`, q.MaxInstances)
	case q.MaxBurstPercent != 0 && (q.MaxBurstPercent < 100 || q.MaxBurstPercent > 1000):
		return httpapi.BadRequest(`invalid field "max_burst_percent": %d; 100 to 1000, e.g. 150`, q.MaxBurstPercent)
	}
	if err := (QuotaRecord{QuotaLimits: QuotaLimits(*q)}).sched().Validate(); err != nil {
		return httpapi.BadRequest("invalid quota: %v", err)
	}
	return nil
}

func rightsKey(ns, dim string) string { return ns + "/" + dim }
func mintedKey(ns, dim string) string { return ns + "/minted/" + dim }
func burnedKey(ns, dim string) string { return ns + "/burned/" + dim }
func dimAmount(dim string, r sched.Resources) uint64 {
	switch dim {
	case quotaCPU:
		return uint64(max(0, r.CPUMilli))
	case quotaRAM:
		return uint64(max(0, r.RAMMB))
	}
	return 1
}

// setQuota writes a namespace's quota and mints or burns rights to match its limits.
func (s *Scheduler) setQuota(ns string, spec api.QuotaSpec) (QuotaRecord, error) {
	st := s.snapshot()
	rec := QuotaRecord{Namespace: ns, QuotaLimits: QuotaLimits(spec), UpdatedAt: st.now.UnixMilli(), UpdatedBy: st.self}
	used := s.buildCluster(st).nsUsage[ns]
	usedBy := map[string]int64{quotaCPU: used.CPUMilli, quotaRAM: used.RAMMB, quotaInstances: used.Instances}
	var w schedWrites
	w.put(CollQuotas, ns, rec)
	s.apply(&w)
	_ = s.st.Update(func(tx *state.Tx) error {
		s.mintQuota(tx, ns, rec, usedBy)
		return nil
	})
	return rec, nil
}

// mintQuota mints or burns rights so the counters hold the quota's limits.
func (s *Scheduler) mintQuota(tx *state.Tx, ns string, rec QuotaRecord, usedBy map[string]int64) {
	add := func(err error) {
		if err != nil {
			s.log.Warn("quota counters", "namespace", ns, "err", err)
		}
	}
	for dim, target := range rec.limits() {
		if target <= 0 {
			continue
		}
		minted := int64(tx.GCounter(CollQuotaRights, mintedKey(ns, dim)))
		burned := int64(tx.GCounter(CollQuotaRights, burnedKey(ns, dim)))
		eff := minted - burned
		switch {
		case minted == 0:
			// First limit: instances already placed count against it.
			if give := target - usedBy[dim]; give > 0 {
				add(tx.IncBounded(CollQuotaRights, rightsKey(ns, dim), uint64(give)))
			}
			add(tx.IncGCounter(CollQuotaRights, mintedKey(ns, dim), uint64(target)))
		case target > eff:
			add(tx.IncBounded(CollQuotaRights, rightsKey(ns, dim), uint64(target-eff)))
			add(tx.IncGCounter(CollQuotaRights, mintedKey(ns, dim), uint64(target-eff)))
		case target < eff:
			have := tx.LocalRights(CollQuotaRights, rightsKey(ns, dim))
			if k := min(have, uint64(eff-target)); k > 0 {
				add(tx.DecBounded(CollQuotaRights, rightsKey(ns, dim), k))
				add(tx.IncGCounter(CollQuotaRights, burnedKey(ns, dim), k))
			}
		}
	}
}

// quotaInfo reports a namespace's quota, usage and rights.
func (s *Scheduler) quotaInfo(st *schedState, ns string) (api.QuotaInfo, bool) {
	q, ok := st.quotas[ns]
	if !ok {
		return api.QuotaInfo{}, false
	}
	used := s.buildCluster(st).nsUsage[ns]
	lim := q.limits()
	info := api.QuotaInfo{Namespace: ns, QuotaSpec: q.spec(), UpdatedAt: q.UpdatedAt, UpdatedBy: q.UpdatedBy,
		UsedCPUCores: float64(used.CPUMilli) / 1000, UsedRAMGB: round(float64(used.RAMMB)/1024, 3), UsedInstances: int(used.Instances),
		LimitCPUCores: float64(lim[quotaCPU]) / 1000, LimitRAMGB: round(float64(lim[quotaRAM])/1024, 3), LimitInstances: int(lim[quotaInstances])}
	s.st.View(func(v *state.View) {
		info.GrantableCPUCores = float64(v.Bounded(CollQuotaRights, rightsKey(ns, quotaCPU))) / 1000
		info.GrantableRAMGB = round(float64(v.Bounded(CollQuotaRights, rightsKey(ns, quotaRAM)))/1024, 3)
		info.GrantableInstances = v.Bounded(CollQuotaRights, rightsKey(ns, quotaInstances))
		info.LocalCPUCores = float64(v.LocalRights(CollQuotaRights, rightsKey(ns, quotaCPU))) / 1000
		info.LocalRAMGB = round(float64(v.LocalRights(CollQuotaRights, rightsKey(ns, quotaRAM)))/1024, 3)
		info.LocalInstances = v.LocalRights(CollQuotaRights, rightsKey(ns, quotaInstances))
	})
	return info, true
}

// consumeQuota takes the rights for one instance of res in namespace ns on this node,
// asking peers for rights it lacks. It returns what was consumed (to give back on
// removal), or an error wrapping ErrQuotaExceeded.
func (s *Scheduler) consumeQuota(st *schedState, ns string, res sched.Resources) (map[string]uint64, error) {
	q, ok := st.quotas[ns]
	if !ok {
		return nil, nil
	}
	need := map[string]uint64{}
	for dim, lim := range q.limits() {
		if lim > 0 {
			if a := dimAmount(dim, res); a > 0 {
				need[dim] = a
			}
		}
	}
	if len(need) == 0 {
		return nil, nil
	}
	short := func() map[string]uint64 {
		out := map[string]uint64{}
		s.st.View(func(v *state.View) {
			for dim, a := range need {
				if have := v.LocalRights(CollQuotaRights, rightsKey(ns, dim)); have < a {
					out[dim] = a - have
				}
			}
		})
		return out
	}
	if miss := short(); len(miss) > 0 {
		s.requestRights(st, ns, miss)
	}
	done := map[string]uint64{}
	err := s.st.Update(func(tx *state.Tx) error {
		for _, dim := range quotaDims {
			a, ok := need[dim]
			if !ok {
				continue
			}
			if err := tx.DecBounded(CollQuotaRights, rightsKey(ns, dim), a); err != nil {
				for dd, aa := range done { // give back what this admission took
					_ = tx.IncBounded(CollQuotaRights, rightsKey(ns, dd), aa)
				}
				grantable := tx.Bounded(CollQuotaRights, rightsKey(ns, dim))
				return fmt.Errorf("%w: namespace %q: %s: asked %s, %s still grantable of a limit of %s (rights this node could reach: %s)",
					ErrQuotaExceeded, ns, dimName(dim), fmtDim(dim, int64(a)), fmtDim(dim, grantable), fmtDim(dim, q.limits()[dim]),
					fmtDim(dim, int64(tx.LocalRights(CollQuotaRights, rightsKey(ns, dim)))))
			}
			done[dim] = a
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return done, nil
}

func dimName(dim string) string {
	switch dim {
	case quotaCPU:
		return "max_cpu_cores"
	case quotaRAM:
		return "max_ram_gb"
	}
	return "max_instances"
}

func fmtDim(dim string, v int64) string {
	switch dim {
	case quotaCPU:
		return fmtNum(float64(v)/1000) + " cores"
	case quotaRAM:
		return fmtNum(round(float64(v)/1024, 3)) + " GB"
	}
	return fmt.Sprint(v)
}

// returnQuota gives consumed rights back (or burns them while the namespace holds more
// rights than its current limit).
func (s *Scheduler) returnQuota(ns string, consumed map[string]uint64) {
	if len(consumed) == 0 {
		return
	}
	_ = s.st.Update(func(tx *state.Tx) error {
		var lim map[string]int64
		if v, _, ok := tx.GetLWW(CollQuotas, ns); ok {
			if q, err := decodeRecord[QuotaRecord](v); err == nil {
				lim = q.limits()
			}
		}
		giveBack(tx, ns, consumed, lim)
		return nil
	})
}

// giveBack creates consumed rights again, burning what exceeds the current limit lim.
func giveBack(tx *state.Tx, ns string, consumed map[string]uint64, lim map[string]int64) {
	for _, dim := range quotaDims {
		a := consumed[dim]
		if a == 0 {
			continue
		}
		if l := lim[dim]; l > 0 {
			eff := int64(tx.GCounter(CollQuotaRights, mintedKey(ns, dim))) - int64(tx.GCounter(CollQuotaRights, burnedKey(ns, dim)))
			if over := eff - l; over > 0 {
				k := min(a, uint64(over))
				if tx.IncGCounter(CollQuotaRights, burnedKey(ns, dim), k) == nil {
					a -= k
				}
			}
		}
		if a > 0 {
			_ = tx.IncBounded(CollQuotaRights, rightsKey(ns, dim), a)
		}
	}
}

// requestRights asks reachable peers, in random order, to transfer the missing rights.
func (s *Scheduler) requestRights(st *schedState, ns string, miss map[string]uint64) {
	var peers []string
	for id, status := range st.status {
		if id != st.selfID && status == api.StatusAlive {
			peers = append(peers, id)
		}
	}
	s.mu.Lock()
	s.rng.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	s.mu.Unlock()
	self := uint64(s.st.ReplicaID())
	for _, p := range peers {
		if len(miss) == 0 {
			return
		}
		pid, err := peer.Decode(p)
		if err != nil {
			continue
		}
		for _, dim := range quotaDims {
			a, ok := miss[dim]
			if !ok {
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
			resp, err := s.call(ctx, pid, schedRequest{Op: "rights", Key: rightsKey(ns, dim), Amount: a, Replica: self})
			cancel()
			if err != nil {
				s.log.Debug("rights request", "peer", st.nameOf[p], "err", err)
				break // unreachable: next peer
			}
			if resp.Granted > 0 && len(resp.Delta) > 0 {
				if err := s.st.Apply(pid, resp.Delta); err != nil {
					s.log.Warn("rights transfer", "peer", st.nameOf[p], "err", err)
					continue
				}
				if resp.Granted >= a {
					delete(miss, dim)
				} else {
					miss[dim] = a - resp.Granted
				}
			}
		}
	}
}

// grantRights transfers up to amount of this node's rights on key to replica to.
func (s *Scheduler) grantRights(key string, amount uint64, to crdt.ReplicaID) (schedResponse, error) {
	if to == 0 {
		return schedResponse{}, errors.New("node: rights request without a replica")
	}
	var give uint64
	b, err := s.st.UpdateEncoded(func(tx *state.Tx) error {
		give = min(tx.LocalRights(CollQuotaRights, key), amount)
		if give == 0 || to == tx.ReplicaID() {
			give = 0
			return nil
		}
		return tx.TransferBounded(CollQuotaRights, key, to, give)
	})
	if err != nil || give == 0 {
		return schedResponse{}, err
	}
	return schedResponse{Granted: give, Delta: b}, nil
}
