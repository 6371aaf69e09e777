package sched

import "math"

// Quota is a namespace's limits, in the seed plan's terms (set_quota and enable_sharing).
// Zero limits mean unlimited.
type Quota struct {
	MaxCPUCores  float64 // max_cpu_cores
	MaxRAMGB     float64 // max_ram_gb (GiB: 1 GB = 1024 MB here, as RAM is counted in MiB)
	MaxInstances int     // max_instances
	// AllowCPUBurst lets the namespace exceed MaxCPUCores up to MaxBurstPercent of it
	// (allow_cpu_burst): the seed's "use idle CPU from other teams".
	AllowCPUBurst bool
	// AllowRAMBorrow does the same for RAM (allow_ram_borrow).
	AllowRAMBorrow bool
	// MaxBurstPercent is the burst ceiling in percent of the base limit (max_burst_percent),
	// from 100 to 1000; 0 means 100 (no burst even when allowed).
	MaxBurstPercent int
}

// Validate reports whether the quota is usable (errors wrap ErrInvalid).
func (q Quota) Validate() error {
	switch {
	case q.MaxCPUCores < 0 || q.MaxRAMGB < 0 || q.MaxInstances < 0 ||
		math.IsNaN(q.MaxCPUCores) || math.IsNaN(q.MaxRAMGB) || math.IsInf(q.MaxCPUCores, 0) || math.IsInf(q.MaxRAMGB, 0):
		return invalidf("quota limits must be finite and non-negative")
	case q.MaxBurstPercent != 0 && (q.MaxBurstPercent < 100 || q.MaxBurstPercent > 1000):
		return invalidf("max_burst_percent %d outside 100-1000", q.MaxBurstPercent)
	}
	return nil
}

// Usage is what a namespace uses (or asks for): CPU in millicores, RAM in MiB, instances.
type Usage struct {
	CPUMilli  int64
	RAMMB     int64
	Instances int64
}

// UsageOf is the usage of n instances of r each.
func UsageOf(r Resources, n int) Usage {
	return Usage{CPUMilli: r.CPUMilli * int64(n), RAMMB: r.RAMMB * int64(n), Instances: int64(n)}
}

// Add returns u + o.
func (u Usage) Add(o Usage) Usage {
	return Usage{u.CPUMilli + o.CPUMilli, u.RAMMB + o.RAMMB, u.Instances + o.Instances}
}

// Limits returns the base limits and the limits including burst and borrow allowances, in
// Usage units; a zero field is unlimited. The bounded counters enforcing the quota across
// nodes are sized from the burst limits.
func (q Quota) Limits() (base, burst Usage) {
	base = Usage{
		CPUMilli:  CPUCores(q.MaxCPUCores),
		RAMMB:     int64(math.Round(q.MaxRAMGB * 1024)),
		Instances: int64(q.MaxInstances),
	}
	burst = base
	pct := int64(q.MaxBurstPercent)
	if pct == 0 {
		pct = 100
	}
	if q.AllowCPUBurst {
		burst.CPUMilli = base.CPUMilli * pct / 100
	}
	if q.AllowRAMBorrow {
		burst.RAMMB = base.RAMMB * pct / 100
	}
	return base, burst
}

// QuotaDecision says how much of an admitted request runs above the base quota. Instances
// admitted in burst should be the first preempted (give them a lower priority) and the
// caller may refuse burst when the cluster has no idle capacity.
type QuotaDecision struct {
	BurstCPUMilli int64 // CPU of the request above MaxCPUCores
	BorrowRAMMB   int64 // RAM of the request above MaxRAMGB
}

// InBurst reports whether any of the request runs above the base quota.
func (d QuotaDecision) InBurst() bool { return d.BurstCPUMilli > 0 || d.BorrowRAMMB > 0 }

// CheckQuota reports whether adding add to used stays within q for namespace ns. It checks
// instances, then CPU, then RAM, and returns a *QuotaError (errors.Is ErrQuota) for the first
// limit exceeded. It is a pure check of one view: enforcement under concurrency (two nodes
// admitting at once, partitions) is the bounded counter's job.
func CheckQuota(ns string, q Quota, used, add Usage) (QuotaDecision, error) {
	if err := q.Validate(); err != nil {
		return QuotaDecision{}, err
	}
	if add.CPUMilli < 0 || add.RAMMB < 0 || add.Instances < 0 {
		return QuotaDecision{}, invalidf("negative quota request")
	}
	base, burst := q.Limits()
	after := used.Add(add)
	if base.Instances > 0 && after.Instances > base.Instances {
		return QuotaDecision{}, &QuotaError{Namespace: ns, Dim: DimInstances, Limit: base.Instances, Used: used.Instances, Asked: add.Instances}
	}
	if base.CPUMilli > 0 && after.CPUMilli > burst.CPUMilli {
		return QuotaDecision{}, &QuotaError{Namespace: ns, Dim: DimCPU, Limit: burst.CPUMilli, Used: used.CPUMilli, Asked: add.CPUMilli, Burst: q.AllowCPUBurst && burst.CPUMilli > base.CPUMilli}
	}
	if base.RAMMB > 0 && after.RAMMB > burst.RAMMB {
		return QuotaDecision{}, &QuotaError{Namespace: ns, Dim: DimRAM, Limit: burst.RAMMB, Used: used.RAMMB, Asked: add.RAMMB, Burst: q.AllowRAMBorrow && burst.RAMMB > base.RAMMB}
	}
	var d QuotaDecision
	if base.CPUMilli > 0 {
		d.BurstCPUMilli = min(add.CPUMilli, max(0, after.CPUMilli-base.CPUMilli))
	}
	if base.RAMMB > 0 {
		d.BorrowRAMMB = min(add.RAMMB, max(0, after.RAMMB-base.RAMMB))
	}
	return d, nil
}

// MaxFit returns how many instances of r each fit in q on top of used, counting burst and
// borrow allowances (math.MaxInt when nothing limits them), so an owner can place what the
// quota allows and report the rest.
func MaxFit(q Quota, used Usage, r Resources) int {
	base, burst := q.Limits()
	n := int64(math.MaxInt)
	lim := func(limit, u, per int64) {
		if limit <= 0 || per <= 0 {
			return
		}
		n = min(n, max(0, (limit-u)/per))
	}
	if base.Instances > 0 {
		lim(base.Instances, used.Instances, 1)
	}
	if base.CPUMilli > 0 {
		lim(burst.CPUMilli, used.CPUMilli, r.CPUMilli)
	}
	if base.RAMMB > 0 {
		lim(burst.RAMMB, used.RAMMB, r.RAMMB)
	}
	return int(n)
}
