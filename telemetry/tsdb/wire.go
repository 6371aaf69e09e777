package tsdb

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/fxamacker/cbor/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// Operations of a Request.
const (
	OpSelect      = 1
	OpLabelNames  = 2
	OpLabelValues = 3
)

// Limits of the query protocol.
const (
	MaxMatchers      = 64
	MaxMatcherLen    = 4096
	MaxBatchSamples  = 50_000  // samples in one answer frame (about 800 KB)
	MaxAnswerSamples = 5000000 // samples one node sends for one request (PromQL's default max)
	MaxAnswerSeries  = 200_000
	MaxNames         = 100_000
	maxLabelPairs    = 128
)

// ErrTooLarge means an answer would exceed MaxAnswerSamples or MaxAnswerSeries.
var ErrTooLarge = errors.New("query touches too much data")

// Request asks a node's store for series or label names/values in [Mint, Maxt].
type Request struct {
	Op       int       `cbor:"1,keyasint"`
	Mint     int64     `cbor:"2,keyasint"`
	Maxt     int64     `cbor:"3,keyasint"`
	Matchers []Matcher `cbor:"4,keyasint,omitempty"`
	Name     string    `cbor:"5,keyasint,omitempty"` // OpLabelValues
	Step     int64     `cbor:"6,keyasint,omitempty"`
	Func     string    `cbor:"7,keyasint,omitempty"`
	Limit    int       `cbor:"8,keyasint,omitempty"`
}

// Matcher is a label matcher (labels.MatchType: = != =~ !~ as 0..3).
type Matcher struct {
	Type  int    `cbor:"1,keyasint"`
	Name  string `cbor:"2,keyasint"`
	Value string `cbor:"3,keyasint"`
}

// Batch is one answer frame: series, or names, and on the last one Done (and Err when
// the request failed on that node).
type Batch struct {
	Series   []Series `cbor:"1,keyasint,omitempty"`
	Names    []string `cbor:"2,keyasint,omitempty"`
	Warnings []string `cbor:"3,keyasint,omitempty"`
	Err      string   `cbor:"4,keyasint,omitempty"`
	Done     bool     `cbor:"5,keyasint,omitempty"`
}

// Series is one series' labels (name, value, name, value, ...) and float samples.
// A series larger than a batch is sent in several parts with the same labels.
type Series struct {
	Labels []string  `cbor:"1,keyasint"`
	T      []int64   `cbor:"2,keyasint,omitempty"`
	V      []float64 `cbor:"3,keyasint,omitempty"`
}

var (
	enc = mustEnc()
	dec = mustDec()
)

func mustEnc() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return em
}

func mustDec() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden, TagsMd: cbor.TagsForbidden,
		MaxNestedLevels: 8, MaxArrayElements: 1 << 20, MaxMapPairs: 64,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}

// Encode encodes a Request or a Batch.
func Encode(v any) ([]byte, error) { return enc.Marshal(v) }

// DecodeRequest decodes and checks a request.
func DecodeRequest(b []byte) (Request, []*labels.Matcher, error) {
	var r Request
	if err := dec.Unmarshal(b, &r); err != nil {
		return r, nil, fmt.Errorf("tsdb: bad request: %w", err)
	}
	if r.Op < OpSelect || r.Op > OpLabelValues {
		return r, nil, fmt.Errorf("tsdb: bad request: unknown op %d", r.Op)
	}
	if r.Maxt < r.Mint {
		return r, nil, fmt.Errorf("tsdb: bad request: maxt %d before mint %d", r.Maxt, r.Mint)
	}
	if len(r.Matchers) > MaxMatchers {
		return r, nil, fmt.Errorf("tsdb: bad request: %d matchers, at most %d", len(r.Matchers), MaxMatchers)
	}
	ms := make([]*labels.Matcher, 0, len(r.Matchers))
	for _, m := range r.Matchers {
		if m.Type < 0 || m.Type > int(labels.MatchNotRegexp) || len(m.Name) > MaxMatcherLen || len(m.Value) > MaxMatcherLen {
			return r, nil, fmt.Errorf("tsdb: bad request: matcher %q type %d", m.Name, m.Type)
		}
		lm, err := labels.NewMatcher(labels.MatchType(m.Type), m.Name, m.Value)
		if err != nil {
			return r, nil, fmt.Errorf("tsdb: bad request: matcher %s: %w", m.Name, err)
		}
		ms = append(ms, lm)
	}
	return r, ms, nil
}

// NewRequest builds a request from PromQL's select arguments.
func NewRequest(op int, mint, maxt int64, hints *storage.SelectHints, ms []*labels.Matcher) Request {
	r := Request{Op: op, Mint: mint, Maxt: maxt}
	if hints != nil {
		r.Mint, r.Maxt, r.Step, r.Func, r.Limit = max(mint, hints.Start), min(maxt, hints.End), hints.Step, hints.Func, hints.Limit
		if r.Maxt < r.Mint { // hints outside the querier's range
			r.Mint, r.Maxt = mint, maxt
		}
	}
	for _, m := range ms {
		r.Matchers = append(r.Matchers, Matcher{Type: int(m.Type), Name: m.Name, Value: m.Value})
	}
	return r
}

// DecodeBatch decodes one answer frame and checks its series.
func DecodeBatch(b []byte) (Batch, error) {
	var x Batch
	if err := dec.Unmarshal(b, &x); err != nil {
		return x, fmt.Errorf("tsdb: bad answer: %w", err)
	}
	for _, s := range x.Series {
		if len(s.Labels)%2 != 0 || len(s.Labels) > 2*maxLabelPairs || len(s.T) != len(s.V) {
			return x, errors.New("tsdb: bad answer: malformed series")
		}
	}
	return x, nil
}

// Serve answers r from q, calling send for each batch (the last has Done).
func Serve(ctx context.Context, q storage.Querier, r Request, ms []*labels.Matcher, send func(Batch) error) error {
	switch r.Op {
	case OpLabelNames, OpLabelValues:
		var names []string
		var ws annotations.Annotations
		var err error
		if r.Op == OpLabelNames {
			names, ws, err = q.LabelNames(ctx, &storage.LabelHints{Limit: r.Limit}, ms...)
		} else {
			names, ws, err = q.LabelValues(ctx, r.Name, &storage.LabelHints{Limit: r.Limit}, ms...)
		}
		if err != nil {
			return send(Batch{Err: err.Error(), Done: true})
		}
		if len(names) > MaxNames {
			names = names[:MaxNames]
		}
		return send(Batch{Names: names, Warnings: warnings(ws), Done: true})
	}
	hints := &storage.SelectHints{Start: r.Mint, End: r.Maxt, Step: r.Step, Func: r.Func, Limit: r.Limit}
	set := q.Select(ctx, false, hints, ms...)
	var b Batch
	inBatch, total, nseries := 0, 0, 0
	flush := func() error {
		err := send(b)
		b, inBatch = Batch{}, 0
		return err
	}
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		nseries++
		if nseries > MaxAnswerSeries {
			return send(Batch{Err: fmt.Sprintf("%v: more than %d series on one node; narrow the selector", ErrTooLarge, MaxAnswerSeries), Done: true})
		}
		var ls []string
		s.Labels().Range(func(l labels.Label) { ls = append(ls, l.Name, l.Value) })
		cur := Series{Labels: ls}
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				continue // the sampler stores floats only
			}
			t, v := it.At()
			cur.T, cur.V = append(cur.T, t), append(cur.V, v)
			inBatch++
			total++
			if total > MaxAnswerSamples {
				return send(Batch{Err: fmt.Sprintf("%v: more than %d samples on one node; use a larger step or a shorter range", ErrTooLarge, MaxAnswerSamples), Done: true})
			}
			if inBatch >= MaxBatchSamples {
				b.Series = append(b.Series, cur)
				cur = Series{Labels: ls}
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return send(Batch{Err: err.Error(), Done: true})
		}
		if len(cur.T) > 0 {
			b.Series = append(b.Series, cur)
		}
		if len(b.Series) >= 1000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := set.Err(); err != nil {
		return send(Batch{Err: err.Error(), Done: true})
	}
	b.Warnings, b.Done = warnings(set.Warnings()), true
	return send(b)
}

func warnings(ws annotations.Annotations) []string {
	var out []string
	for _, w := range ws.AsErrors() {
		out = append(out, w.Error())
	}
	return out
}

// Collector assembles the batches of one answer into a sorted SeriesSet.
type Collector struct {
	by       map[string]*listSeries
	Names    []string
	Warnings []string
	samples  int
}

// Add takes one batch; it fails on an answer larger than the limits.
func (c *Collector) Add(b Batch) error {
	if b.Err != "" {
		return errors.New(b.Err)
	}
	if c.by == nil {
		c.by = map[string]*listSeries{}
	}
	c.Names = append(c.Names, b.Names...)
	if len(c.Names) > MaxNames {
		return fmt.Errorf("%w: more than %d names", ErrTooLarge, MaxNames)
	}
	c.Warnings = append(c.Warnings, b.Warnings...)
	for _, s := range b.Series {
		c.samples += len(s.T)
		if c.samples > MaxAnswerSamples || len(c.by) > MaxAnswerSeries {
			return fmt.Errorf("%w: the answer exceeds %d samples or %d series", ErrTooLarge, MaxAnswerSamples, MaxAnswerSeries)
		}
		key := fmt.Sprint(s.Labels)
		ls := c.by[key]
		if ls == nil {
			lb := labels.NewScratchBuilder(len(s.Labels) / 2)
			for i := 0; i < len(s.Labels); i += 2 {
				lb.Add(s.Labels[i], s.Labels[i+1])
			}
			lb.Sort()
			ls = &listSeries{lset: lb.Labels()}
			c.by[key] = ls
		}
		for i := range s.T {
			ls.samples = append(ls.samples, fSample{s.T[i], s.V[i]})
		}
	}
	return nil
}

// SeriesSet returns the collected series sorted by labels, samples by time.
func (c *Collector) SeriesSet() storage.SeriesSet {
	out := make([]*listSeries, 0, len(c.by))
	for _, s := range c.by {
		sort.SliceStable(s.samples, func(i, j int) bool { return s.samples[i].t < s.samples[j].t })
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].lset, out[j].lset) < 0 })
	var ws annotations.Annotations
	for _, w := range c.Warnings {
		ws.Add(errors.New(w))
	}
	return &sliceSet{series: out, i: -1, ws: ws}
}

type listSeries struct {
	lset    labels.Labels
	samples []fSample
}

type sliceSet struct {
	series []*listSeries
	i      int
	ws     annotations.Annotations
}

func (s *sliceSet) Next() bool {
	s.i++
	return s.i < len(s.series)
}

func (s *sliceSet) At() storage.Series {
	ls := s.series[s.i]
	ss := make([]chunks.Sample, len(ls.samples))
	for i := range ls.samples {
		ss[i] = ls.samples[i]
	}
	return storage.NewListSeries(ls.lset, ss)
}

func (s *sliceSet) Err() error                        { return nil }
func (s *sliceSet) Warnings() annotations.Annotations { return s.ws }

// fSample is a float sample (chunks.Sample).
type fSample struct {
	t int64
	f float64
}

func (s fSample) T() int64                      { return s.t }
func (s fSample) ST() int64                     { return 0 }
func (s fSample) F() float64                    { return s.f }
func (s fSample) H() *histogram.Histogram       { return nil }
func (s fSample) FH() *histogram.FloatHistogram { return nil }
func (s fSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fSample) Copy() chunks.Sample           { return s }
