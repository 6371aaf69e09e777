package tsdb

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Node: "n1", Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// read returns name's samples on node n1 in [mint, maxt].
func read(t *testing.T, s *Store, name string, mint, maxt int64) map[string][]float64 {
	t.Helper()
	q, err := s.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name),
		labels.MustNewMatcher(labels.MatchEqual, "node", "n1"))
	out := map[string][]float64{}
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			_, v := it.At()
			out[set.At().Labels().String()] = append(out[set.At().Labels().String()], v)
		}
	}
	if set.Err() != nil {
		t.Fatal(set.Err())
	}
	return out
}

// TestSampleReopenStale: gathered samples (gauge, histogram) are stored with the node
// label, survive a reopen, and a series that disappears gets a stale marker.
func TestSampleReopenStale(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "x_value"}, []string{"instance"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "y_seconds", Buckets: []float64{1, 2}})
	reg.MustRegister(g, h)
	g.WithLabelValues("a").Set(1)
	g.WithLabelValues("b").Set(2)
	h.Observe(1.5)
	t0 := time.UnixMilli(1_800_000_000_000)
	if err := s.Sample(context.Background(), t0, reg); err != nil {
		t.Fatal(err)
	}
	g.DeleteLabelValues("b")
	g.WithLabelValues("a").Set(3)
	if err := s.Sample(context.Background(), t0.Add(10*time.Second), reg); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	got := read(t, s, "x_value", t0.UnixMilli(), t0.UnixMilli()+20_000)
	a := got[`{__name__="x_value", instance="a", node="n1"}`]
	b := got[`{__name__="x_value", instance="b", node="n1"}`]
	if len(a) != 2 || a[0] != 1 || a[1] != 3 {
		t.Fatalf("series a after reopen: %v (all: %v)", a, got)
	}
	if len(b) != 2 || b[0] != 2 || !value.IsStaleNaN(b[1]) {
		t.Fatalf("series b: %v, want 2 then a stale marker", b)
	}
	bk := read(t, s, "y_seconds_bucket", t0.UnixMilli(), t0.UnixMilli())
	if len(bk) != 3 || bk[`{__name__="y_seconds_bucket", le="2", node="n1"}`][0] != 1 || bk[`{__name__="y_seconds_bucket", le="+Inf", node="n1"}`][0] != 1 {
		t.Fatalf("histogram buckets: %v", bk)
	}
	if s.OldestTime().UnixMilli() != t0.UnixMilli() {
		t.Fatalf("oldest %v, want %v", s.OldestTime(), t0)
	}
}

// TestServeCollect: a remote answer streamed in batches rebuilds the same series.
func TestServeCollect(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	t0 := time.UnixMilli(1_800_000_000_000)
	const n = MaxBatchSamples + 10 // more than one batch
	app := s.db.Appender(context.Background())
	lset := labels.FromStrings("__name__", "z", "node", "n1")
	for i := range n {
		if _, err := app.Append(0, lset, t0.UnixMilli()+int64(i)*1000, float64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	req := NewRequest(OpSelect, t0.UnixMilli(), t0.UnixMilli()+n*1000, nil, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "z")})
	b, _ := Encode(req)
	r, ms, err := DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := s.Querier(r.Mint, r.Maxt)
	defer q.Close()
	col := &Collector{}
	frames := 0
	if err := Serve(context.Background(), q, r, ms, func(x Batch) error {
		frames++
		fb, err := Encode(x)
		if err != nil {
			return err
		}
		y, err := DecodeBatch(fb)
		if err != nil {
			return err
		}
		return col.Add(y)
	}); err != nil {
		t.Fatal(err)
	}
	if frames < 2 {
		t.Fatalf("%d frames, want the answer split", frames)
	}
	set := col.SeriesSet()
	var series []storage.Series
	for set.Next() {
		series = append(series, set.At())
	}
	if len(series) != 1 {
		t.Fatalf("%d series", len(series))
	}
	it := series[0].Iterator(nil)
	i := 0
	for it.Next() == chunkenc.ValFloat {
		ts, v := it.At()
		if ts != t0.UnixMilli()+int64(i)*1000 || v != float64(i) || math.IsNaN(v) {
			t.Fatalf("sample %d: %d %g", i, ts, v)
		}
		i++
	}
	if i != n {
		t.Fatalf("%d samples, want %d", i, n)
	}
}
