package metrics

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Kinds of custom metrics.
const (
	KindGauge     = "gauge"     // the value replaces the previous one
	KindCounter   = "counter"   // the value (>= 0) is added; the name gets _total
	KindHistogram = "histogram" // the value is one observation
)

// Limits of custom metrics.
const (
	// DefaultMaxSeries bounds the custom series of one instance (or of the node itself).
	DefaultMaxSeries = 1000
	MaxNameLen       = 128
	MaxTags          = 16
	MaxTagValueLen   = 256
)

// DefaultBuckets are the upper bounds of a custom histogram, chosen for durations in
// milliseconds and sizes alike (1 to 10,000).
var DefaultBuckets = []float64{1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

// ErrTooManySeries means an instance reached its number of custom series.
var ErrTooManySeries = errors.New("too many custom series")

// ErrBadMetric means a pushed metric is malformed (name, kind, value or tags).
var ErrBadMetric = errors.New("bad custom metric")

var (
	nameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// reserved labels are set by the node.
	reserved = []string{"node", "instance", "namespace", "deployment", "le", "job"}
)

// Sample is one pushed value.
type Sample struct {
	Name  string
	Kind  string
	Value float64
	Tags  map[string]string
}

// Custom holds the custom metrics pushed by instances (and by an admin for the node
// itself, instance ""), exposed on the node's registry as they are named, with labels
// instance, namespace and the sample's tags. It is a prometheus.Collector.
type Custom struct {
	// MaxSeries bounds each instance's series (0: DefaultMaxSeries).
	MaxSeries int
	// Alive, when set, is asked at each scrape; series of an instance it denies are dropped.
	Alive func(instance string) bool

	mu    sync.Mutex
	kinds map[string]string             // metric name -> kind (one kind per name on a node)
	by    map[string]map[string]*series // instance -> series key -> series
}

type series struct {
	name, kind, ns string
	labels         []string // sorted tag keys
	values         []string
	v              float64  // gauge value or counter total
	counts         []uint64 // histogram bucket counts (not cumulative)
	sum            float64  // histogram sum
	n              uint64   // histogram count
}

// NewCustom returns an empty store.
func NewCustom() *Custom {
	return &Custom{kinds: map[string]string{}, by: map[string]map[string]*series{}}
}

// validate checks s and returns the exposed name and the sorted tag keys.
func validate(s *Sample) (string, []string, error) {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrBadMetric, fmt.Sprintf(f, a...)) }
	if !nameRE.MatchString(s.Name) || len(s.Name) > MaxNameLen {
		return "", nil, bad("name %q: 1-%d letters, digits and '_', not starting with a digit (e.g. active_users)", s.Name, MaxNameLen)
	}
	if strings.HasPrefix(s.Name, "constellation_") || strings.HasPrefix(s.Name, "__") || strings.HasPrefix(s.Name, "go_") || strings.HasPrefix(s.Name, "process_") {
		return "", nil, bad("name %q: the prefixes constellation_, go_, process_ and __ are reserved for the node's own metrics", s.Name)
	}
	if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
		return "", nil, bad("value of %q must be a finite number", s.Name)
	}
	name := s.Name
	if s.Kind == "" {
		s.Kind = KindGauge
	}
	switch s.Kind {
	case KindGauge, KindHistogram:
	case KindCounter:
		if s.Value < 0 {
			return "", nil, bad("counter %q: a counter only goes up; the value %g is negative (use a gauge)", s.Name, s.Value)
		}
		if !strings.HasSuffix(name, "_total") {
			name += "_total"
		}
	default:
		return "", nil, bad("kind %q of %q: want gauge, counter or histogram", s.Kind, s.Name)
	}
	if len(s.Tags) > MaxTags {
		return "", nil, bad("%q has %d tags; at most %d", s.Name, len(s.Tags), MaxTags)
	}
	keys := make([]string, 0, len(s.Tags))
	for k, v := range s.Tags {
		if !nameRE.MatchString(k) || len(k) > MaxNameLen || strings.HasPrefix(k, "__") {
			return "", nil, bad("tag %q of %q: letters, digits and '_', not starting with a digit or __", k, s.Name)
		}
		if slices.Contains(reserved, k) {
			return "", nil, bad("tag %q of %q is set by the node; reserved: %s", k, s.Name, strings.Join(reserved, ", "))
		}
		if len(v) > MaxTagValueLen {
			return "", nil, bad("tag %q of %q: value longer than %d bytes", k, s.Name, MaxTagValueLen)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return name, keys, nil
}

// Push records samples of one instance (instance "" for the node itself) in namespace ns.
// All samples are checked first: a bad one or one past the series limit records none.
func (c *Custom) Push(instance, ns string, samples []Sample) error {
	type prepared struct {
		name, key string
		keys      []string
		s         *Sample
	}
	ps := make([]prepared, 0, len(samples))
	for i := range samples {
		name, keys, err := validate(&samples[i])
		if err != nil {
			return err
		}
		var b strings.Builder
		b.WriteString(name)
		for _, k := range keys {
			b.WriteString("\xff" + k + "\xfe" + samples[i].Tags[k])
		}
		ps = append(ps, prepared{name, b.String(), keys, &samples[i]})
	}
	limit := c.MaxSeries
	if limit <= 0 {
		limit = DefaultMaxSeries
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	have := c.by[instance]
	added := map[string]bool{}
	newKinds := map[string]string{}
	for _, p := range ps {
		k, ok := c.kinds[p.name]
		if !ok {
			k, ok = newKinds[p.name]
		}
		if ok && k != p.s.Kind {
			return fmt.Errorf("%w: %q is a %s on this node; it cannot also be a %s", ErrBadMetric, p.name, k, p.s.Kind)
		}
		newKinds[p.name] = p.s.Kind
		if _, ok := have[p.key]; !ok && !added[p.key] {
			added[p.key] = true
			if len(have)+len(added) > limit {
				who := "instance " + instance
				if instance == "" {
					who = "the node"
				}
				return fmt.Errorf("%w: %s has %d custom series and this push would add more: the limit is %d series per instance; nothing of the push was recorded (reuse tag values, or drop a high-cardinality tag such as a user or request ID)",
					ErrTooManySeries, who, len(have), limit)
			}
		}
	}
	if have == nil {
		have = map[string]*series{}
		c.by[instance] = have
	}
	for n, k := range newKinds {
		c.kinds[n] = k
	}
	for _, p := range ps {
		s := have[p.key]
		if s == nil {
			s = &series{name: p.name, kind: p.s.Kind, ns: ns, labels: p.keys}
			for _, k := range p.keys {
				s.values = append(s.values, p.s.Tags[k])
			}
			if s.kind == KindHistogram {
				s.counts = make([]uint64, len(DefaultBuckets))
			}
			have[p.key] = s
		}
		switch s.kind {
		case KindGauge:
			s.v = p.s.Value
		case KindCounter:
			s.v += p.s.Value
		case KindHistogram:
			if i := sort.SearchFloat64s(DefaultBuckets, p.s.Value); i < len(DefaultBuckets) {
				s.counts[i]++
			}
			s.sum += p.s.Value
			s.n++
		}
	}
	return nil
}

// Series counts the custom series of instance.
func (c *Custom) Series(instance string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.by[instance])
}

// Describe implements prometheus.Collector (unchecked: the series are not known ahead).
func (c *Custom) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *Custom) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for inst, ss := range c.by {
		if inst != "" && c.Alive != nil && !c.Alive(inst) {
			delete(c.by, inst)
			continue
		}
		for _, s := range ss {
			names := append([]string{"instance", "namespace"}, s.labels...)
			values := append([]string{inst, s.ns}, s.values...)
			d := prometheus.NewDesc(s.name, "Custom metric pushed by instances (POST /v1/monitor/metrics).", names, nil)
			switch s.kind {
			case KindGauge:
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, s.v, values...)
			case KindCounter:
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, s.v, values...)
			case KindHistogram:
				buckets := make(map[float64]uint64, len(DefaultBuckets))
				var cum uint64
				for i, ub := range DefaultBuckets {
					cum += s.counts[i]
					buckets[ub] = cum
				}
				ch <- prometheus.MustNewConstHistogram(d, s.n, s.sum, buckets, values...)
			}
		}
	}
}
