package tsdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	ptsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
)

// Options configure a Store. Zero values take the documented defaults.
type Options struct {
	// Dir holds the blocks and the write-ahead log.
	Dir string
	// Retention is how long samples are kept (default 30 days).
	Retention time.Duration
	// MaxBytes bounds the blocks, WAL and head chunks on disk (0: no bound beyond
	// Retention); the oldest blocks are deleted first.
	MaxBytes int64
	// Node is the node label added to every series that has none.
	Node string
	Log  *slog.Logger
}

// DefaultRetention is the retention of a store whose Options name none.
const DefaultRetention = 30 * 24 * time.Hour

// Store is one node's time-series database.
type Store struct {
	db   *ptsdb.DB
	opts Options

	appended atomic.Uint64 // samples appended since open

	sampleMu sync.Mutex               // serialises Sample
	mu       sync.Mutex               // guards last (the sampler's previous series)
	last     map[string]labels.Labels // series of the previous sample, for stale markers
}

// Open opens (or creates) the store in opts.Dir.
func Open(opts Options) (*Store, error) {
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("tsdb: %w", err)
	}
	o := ptsdb.DefaultOptions()
	o.RetentionDuration = opts.Retention.Milliseconds()
	o.MaxBytes = opts.MaxBytes
	o.WALCompression = compression.Snappy
	// Sized for one node's few thousand series rather than a Prometheus server's millions:
	// Prometheus' defaults (16384 series stripes, a 4 MiB head-chunk write buffer, 128 MiB
	// WAL segments) cost about 10 MB of RSS per store before the first sample.
	o.StripeSize = 1 << 10
	o.HeadChunksWriteBufferSize = 256 << 10
	o.WALSegmentSize = 16 << 20
	// Blocks no longer than a tenth of the retention, so a short retention still drops data.
	if r := o.RetentionDuration / 10; r < o.MaxBlockDuration {
		o.MaxBlockDuration = max(r, o.MinBlockDuration)
	}
	db, err := ptsdb.Open(opts.Dir, opts.Log.With("component", "tsdb"), nil, o, nil)
	if err != nil {
		return nil, fmt.Errorf("tsdb: open %s: %w", opts.Dir, err)
	}
	return &Store{db: db, opts: opts, last: map[string]labels.Labels{}}, nil
}

// Close flushes and closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Retention is how long samples are kept.
func (s *Store) Retention() time.Duration { return s.opts.Retention }

// Querier reads [mint, maxt] (milliseconds).
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) { return s.db.Querier(mint, maxt) }

// Appended counts the samples appended since Open.
func (s *Store) Appended() uint64 { return s.appended.Load() }

// HeadSeries counts the series in the in-memory head block.
func (s *Store) HeadSeries() uint64 { return s.db.Head().NumSeries() }

// DiskBytes is the size of the store's directory.
func (s *Store) DiskBytes() int64 {
	var n int64
	_ = filepath.WalkDir(s.opts.Dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// OldestTime is the time of the oldest sample kept (zero when empty).
func (s *Store) OldestTime() time.Time {
	mint := int64(math.MaxInt64)
	for _, b := range s.db.Blocks() {
		mint = min(mint, b.Meta().MinTime)
	}
	if h := s.db.Head(); h.NumSeries() > 0 {
		mint = min(mint, h.MinTime())
	}
	if mint == math.MaxInt64 {
		return time.Time{}
	}
	return time.UnixMilli(mint)
}

// Sample gathers every gatherer and appends the samples at time at, one transaction.
// Series of the previous Sample that are gone get a stale marker, so queries stop seeing
// them at once instead of after the 5 minute lookback.
func (s *Store) Sample(ctx context.Context, at time.Time, gs ...prometheus.Gatherer) error {
	var fams []*dto.MetricFamily
	var errs []error
	for _, g := range gs {
		f, err := g.Gather()
		if err != nil {
			errs = append(errs, err) // a partial gather still has the good families
		}
		fams = append(fams, f...)
	}
	t := at.UnixMilli()
	// One sample at a time: its stale markers compare with the previous sample's series.
	s.sampleMu.Lock()
	defer s.sampleMu.Unlock()
	app := s.db.Appender(ctx)
	now := make(map[string]labels.Labels, len(s.last))
	n := 0
	add := func(l labels.Labels, v float64) {
		k := l.String()
		if _, dup := now[k]; dup {
			return
		}
		now[k] = l
		if _, err := app.Append(0, l, t, v); err == nil {
			n++
		}
	}
	for _, f := range fams {
		convert(f, s.opts.Node, add)
	}
	s.mu.Lock()
	for k, l := range s.last {
		if _, ok := now[k]; !ok {
			if _, err := app.Append(0, l, t, math.Float64frombits(value.StaleNaN)); err == nil {
				n++
			}
		}
	}
	s.last = now
	s.mu.Unlock()
	if err := app.Commit(); err != nil {
		return fmt.Errorf("tsdb: append: %w", err)
	}
	s.appended.Add(uint64(n))
	return errors.Join(errs...)
}

// Run samples gs every interval until ctx ends (the sampler; one goroutine, its caller's).
func (s *Store) Run(ctx context.Context, interval time.Duration, gs ...prometheus.Gatherer) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var warned bool
	for {
		if err := s.Sample(ctx, time.Now(), gs...); err != nil && !warned {
			s.opts.Log.Warn("metrics sample incomplete", "err", err)
			warned = true // once: the same collector fails every interval
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// convert turns a family into samples (histograms and summaries into their classic
// _bucket/_sum/_count and quantile series), adding node when a metric has none.
func convert(f *dto.MetricFamily, node string, add func(labels.Labels, float64)) {
	name := f.GetName()
	for _, m := range f.GetMetric() {
		b := labels.NewScratchBuilder(len(m.GetLabel()) + 3)
		base := func(metric string, extra ...string) labels.Labels {
			b.Reset()
			b.Add(labels.MetricName, metric)
			hasNode := false
			for _, lp := range m.GetLabel() {
				b.Add(lp.GetName(), lp.GetValue())
				hasNode = hasNode || lp.GetName() == "node"
			}
			if !hasNode && node != "" {
				b.Add("node", node)
			}
			for i := 0; i+1 < len(extra); i += 2 {
				b.Add(extra[i], extra[i+1])
			}
			b.Sort()
			return b.Labels()
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			add(base(name), m.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			add(base(name), m.GetGauge().GetValue())
		case dto.MetricType_UNTYPED:
			add(base(name), m.GetUntyped().GetValue())
		case dto.MetricType_SUMMARY:
			sm := m.GetSummary()
			for _, q := range sm.GetQuantile() {
				add(base(name, "quantile", formatFloat(q.GetQuantile())), q.GetValue())
			}
			add(base(name+"_sum"), sm.GetSampleSum())
			add(base(name+"_count"), float64(sm.GetSampleCount()))
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.GetHistogram()
			bs := h.GetBucket()
			sort.Slice(bs, func(i, j int) bool { return bs[i].GetUpperBound() < bs[j].GetUpperBound() })
			inf := false
			for _, bk := range bs {
				inf = inf || math.IsInf(bk.GetUpperBound(), 1)
				add(base(name+"_bucket", "le", formatFloat(bk.GetUpperBound())), float64(bk.GetCumulativeCount()))
			}
			if !inf {
				add(base(name+"_bucket", "le", "+Inf"), float64(h.GetSampleCount()))
			}
			add(base(name+"_sum"), h.GetSampleSum())
			add(base(name+"_count"), float64(h.GetSampleCount()))
		}
	}
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return fmt.Sprint(f)
}

// Compact writes the head's complete ranges into blocks (the store also does this on
// its own every minute).
func (s *Store) Compact(ctx context.Context) error { return s.db.Compact(ctx) }

// BlockBytes is the size of the persisted blocks (compressed chunks and index).
func (s *Store) BlockBytes() int64 {
	var n int64
	for _, b := range s.db.Blocks() {
		n += b.Size()
	}
	return n
}

// BlockSamples counts the samples in the persisted blocks.
func (s *Store) BlockSamples() uint64 {
	var n uint64
	for _, b := range s.db.Blocks() {
		n += b.Meta().Stats.NumSamples
	}
	return n
}
