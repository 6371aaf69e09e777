package sched

import (
	"math"
	"strconv"
	"strings"
)

// Resources is an amount of node resources. CPU is in millicores (1000 = one core, so
// cpu_percent 25 is 250 and cpu_cores 4 is 4000); RAM and disk are in MiB. Integers keep every
// computation exact, so two nodes computing the same plan on different CPUs agree.
type Resources struct {
	CPUMilli int64
	RAMMB    int64
	DiskMB   int64
}

// CPUPercent converts the API's cpu_percent (percent of one core) to millicores.
func CPUPercent(p float64) int64 { return int64(math.Round(p * 10)) }

// CPUCores converts the API's cpu_cores to millicores.
func CPUCores(c float64) int64 { return int64(math.Round(c * 1000)) }

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.CPUMilli + o.CPUMilli, r.RAMMB + o.RAMMB, r.DiskMB + o.DiskMB}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.CPUMilli - o.CPUMilli, r.RAMMB - o.RAMMB, r.DiskMB - o.DiskMB}
}

// Scale returns r * n.
func (r Resources) Scale(n int64) Resources {
	return Resources{r.CPUMilli * n, r.RAMMB * n, r.DiskMB * n}
}

// Fits reports whether r fits in free on every dimension.
func (r Resources) Fits(free Resources) bool {
	return r.CPUMilli <= free.CPUMilli && r.RAMMB <= free.RAMMB && r.DiskMB <= free.DiskMB
}

// IsZero reports whether every dimension is zero.
func (r Resources) IsZero() bool { return r == Resources{} }

func (r Resources) negative() bool { return r.CPUMilli < 0 || r.RAMMB < 0 || r.DiskMB < 0 }

// Priorities are integers from MinPriority to MaxPriority; higher wins. A placement may
// preempt instances whose priority is at least PreemptionGap lower than its own.
const (
	MinPriority     = 0
	MaxPriority     = 100
	PriorityLow     = 25
	PriorityNormal  = 50 // Request.Priority is used as given: 0 is the lowest
	PriorityHigh    = 75
	PreemptionGap   = 10
	DefaultPriority = PriorityNormal
)

// ParsePriority accepts "low" (25), "normal" (50), "high" (75), "critical" (100) or an
// integer from 0 to 100. The empty string is DefaultPriority.
func ParsePriority(s string) (int, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return DefaultPriority, nil
	case "low":
		return PriorityLow, nil
	case "normal", "medium":
		return PriorityNormal, nil
	case "high":
		return PriorityHigh, nil
	case "critical":
		return MaxPriority, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < MinPriority || n > MaxPriority {
		return 0, invalidf("priority %q: want low, normal, high, critical or an integer 0-100", s)
	}
	return n, nil
}
