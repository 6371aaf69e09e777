package sched

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Sentinel errors. Every error returned by this package matches one of them with errors.Is;
// the typed errors below carry the details (errors.As).
var (
	// ErrParse classifies a *ParseError: a constraint or affinity expression that does not parse.
	ErrParse = errors.New("sched: parse error")
	// ErrInvalid is returned for a Request, Node, Instance, Quota or Options that cannot be used
	// (empty IDs, negative resources, unknown strategy, duplicate IDs...).
	ErrInvalid = errors.New("sched: invalid argument")
	// ErrNoNodes is returned when the snapshot has no schedulable node at all.
	ErrNoNodes = errors.New("sched: no schedulable nodes")
	// ErrUnsatisfiable classifies a *PlacementError where constraints or hard (anti-)affinity
	// terms rule out every node, whatever the free resources.
	ErrUnsatisfiable = errors.New("sched: constraints unsatisfiable")
	// ErrInsufficient classifies a *PlacementError where some nodes satisfy the constraints but
	// none has the free resources (and preemption could not make room).
	ErrInsufficient = errors.New("sched: insufficient resources")
	// ErrQuota classifies a *QuotaError: the placement would exceed a namespace quota.
	ErrQuota = errors.New("sched: quota exceeded")
	// ErrNotFound is returned when a node or instance named in a call is not in the Cluster.
	ErrNotFound = errors.New("sched: not found")
)

// ParseError reports an expression that does not parse. errors.Is(err, ErrParse) is true.
type ParseError struct {
	Kind   string // "constraint" or "affinity"
	Expr   string // the input as given
	Reason string // what is wrong
}

func (e *ParseError) Error() string {
	forms := constraintForms
	if e.Kind == "affinity" {
		forms = termForms
	}
	return fmt.Sprintf("sched: bad %s %q: %s; accepted forms: %s", e.Kind, e.Expr, e.Reason, forms)
}

// Is makes errors.Is(err, ErrParse) true.
func (e *ParseError) Is(target error) bool { return target == ErrParse }

// Dimension names a resource a node can run out of, in the field names of the API.
type Dimension string

// Resource dimensions, as named in errors.
const (
	DimCPU       Dimension = "cpu_cores"
	DimRAM       Dimension = "ram_mb"
	DimDisk      Dimension = "disk_mb"
	DimInstances Dimension = "instances"
)

// Shortage summarises, for one resource dimension, the nodes that passed every other filter
// but lacked that resource.
type Shortage struct {
	Dim         Dimension
	Nodes       int    // nodes short of this dimension
	Asked       int64  // per instance (CPU in millicores, RAM and disk in MB, instances 1)
	LargestFree int64  // largest free amount among those nodes
	LargestNode string // node with that largest free amount
}

// PlacementError explains why an instance could not be placed. errors.Is matches
// ErrUnsatisfiable when no node passed the constraints and hard affinity terms, else
// ErrInsufficient. Placements made before the failure are still returned in the Plan.
type PlacementError struct {
	Deployment string
	Instance   string // the first instance that could not be placed
	Unplaced   int    // instances of the request left unplaced (this one and the rest)
	Nodes      int    // schedulable (not draining) nodes considered

	// Constraints lists, for each constraint or hard term that ruled out at least one node,
	// how many nodes it ruled out (each node is charged to the first filter it failed), in
	// the request's order: constraints, then hard affinity, then hard anti-affinity.
	Filtered []FilterCount
	// Shortages lists the resource dimensions that ruled out the remaining nodes, in the order
	// cpu, ram, disk, instances (each node charged to its first missing dimension).
	Shortages []Shortage
	// Preemptible reports whether preemption was tried (request priority high enough and
	// enabled) and found no victim set that makes room.
	PreemptTried bool
}

// FilterCount is how many nodes one filter expression ruled out.
type FilterCount struct {
	Expr  string
	Nodes int
}

func (e *PlacementError) Is(target error) bool {
	if len(e.Shortages) == 0 {
		return target == ErrUnsatisfiable
	}
	return target == ErrInsufficient
}

func (e *PlacementError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sched: cannot place %s", e.Instance)
	if e.Unplaced > 1 {
		fmt.Fprintf(&b, " (%d instances unplaced)", e.Unplaced)
	}
	b.WriteString(": ")
	if len(e.Shortages) == 0 {
		switch len(e.Filtered) {
		case 0:
			b.WriteString("no schedulable node")
		case 1:
			fmt.Fprintf(&b, "no node satisfies %s (%d nodes checked)", e.Filtered[0].Expr, e.Nodes)
		default:
			fs := append([]FilterCount(nil), e.Filtered...)
			sort.SliceStable(fs, func(i, j int) bool { return fs[i].Nodes > fs[j].Nodes })
			b.WriteString("no node satisfies all of ")
			for i, f := range fs {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%s (rules out %d)", f.Expr, f.Nodes)
			}
			fmt.Fprintf(&b, " (%d nodes checked)", e.Nodes)
		}
		return b.String()
	}
	for i, s := range e.Shortages {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "insufficient %s: asked %s, largest free %s on %s (%d nodes short)",
			s.Dim, formatAmount(s.Dim, s.Asked), formatAmount(s.Dim, s.LargestFree), s.LargestNode, s.Nodes)
	}
	for _, f := range e.Filtered {
		fmt.Fprintf(&b, "; %s ruled out %d nodes", f.Expr, f.Nodes)
	}
	if e.PreemptTried {
		b.WriteString("; no lower-priority instances to preempt make room")
	}
	return b.String()
}

func formatAmount(d Dimension, v int64) string {
	if d == DimCPU {
		return formatCores(v)
	}
	return fmt.Sprint(v)
}

// formatCores renders millicores as cores: 1500 -> "1.5", 250 -> "0.25".
func formatCores(milli int64) string {
	s := fmt.Sprintf("%d.%03d", milli/1000, abs64(milli%1000))
	if milli < 0 && milli > -1000 {
		s = "-" + s
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// QuotaError reports a placement that would exceed a namespace quota. errors.Is(err, ErrQuota)
// is true.
type QuotaError struct {
	Namespace string
	Dim       Dimension // cpu_cores, ram_mb or instances
	Limit     int64     // effective limit, including any allowed burst (CPU in millicores)
	Used      int64
	Asked     int64
	Burst     bool // the limit includes burst or borrow allowance
}

func (e *QuotaError) Error() string {
	lim := "quota"
	if e.Burst {
		lim = "quota with burst"
	}
	return fmt.Sprintf("sched: namespace %s: %s %s exceeded: asked %s, used %s of %s",
		e.Namespace, e.Dim, lim, formatAmount(e.Dim, e.Asked), formatAmount(e.Dim, e.Used), formatAmount(e.Dim, e.Limit))
}

// Is makes errors.Is(err, ErrQuota) true.
func (e *QuotaError) Is(target error) bool { return target == ErrQuota }

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
