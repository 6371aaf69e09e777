package alert

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/rads-lang/constellation/api"
)

// synthetic is a daily-seasonal series (50 + 20 sin(2π hour/24) + N(0, σ=2)) every 5 min
// for days days, with anomalies of ±(lo..hi)σ injected at n random points of the last 3
// days.
func synthetic(seed uint64, days, n int, lo, hi float64) (pts []Point, anomalous map[int]bool) {
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	step := 5 * time.Minute
	total := days * 288
	anomalous = map[int]bool{}
	for len(anomalous) < n {
		anomalous[total-judged+rng.IntN(judged)] = true
	}
	for i := range total {
		ts := start.Add(time.Duration(i) * step)
		h := float64(ts.Hour()) + float64(ts.Minute())/60
		v := 50 + 20*math.Sin(2*math.Pi*h/24) + rng.NormFloat64()*2
		if anomalous[i] {
			mag := (lo + rng.Float64()*(hi-lo)) * 2
			if rng.IntN(2) == 0 {
				mag = -mag
			}
			v += mag
		}
		pts = append(pts, Point{T: ts, V: v})
	}
	return pts, anomalous
}

const judged = 3 * 288 // points judged: the last 3 days

// TestAnomalyPrecisionRecall judges every point of the last 3 days of three synthetic
// series (each against the 7 days before it, with the default parameters) and reports
// precision and recall, for clear anomalies (8-15σ, asserted) and subtle ones (4-8σ,
// reported).
func TestAnomalyPrecisionRecall(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		minP   float64
		minR   float64
	}{{8, 15, 0.9, 0.9}, {4, 8, 0.8, 0.7}} {
		precision, recall := precisionRecall(t, c.lo, c.hi)
		if precision < c.minP || recall < c.minR {
			t.Fatalf("%v-%vσ: precision %.3f recall %.3f, want >= %.2f and %.2f", c.lo, c.hi, precision, recall, c.minP, c.minR)
		}
	}
}

func precisionRecall(t *testing.T, lo, hi float64) (precision, recall float64) {
	p := DefaultAnomaly
	var tp, fp, fn int
	for seed := uint64(1); seed <= 3; seed++ {
		pts, truth := synthetic(seed, 10, 25, lo, hi)
		per := int(p.Window / p.Step)
		for i := len(pts) - judged; i < len(pts); i++ {
			v := p.Judge(pts[i-per:i], pts[i])
			if !v.Judged {
				t.Fatalf("point %d not judged", i)
			}
			switch {
			case v.Anomalous && truth[i]:
				tp++
			case v.Anomalous:
				fp++
			case truth[i]:
				fn++
			}
		}
	}
	precision = float64(tp) / float64(tp+fp)
	recall = float64(tp) / float64(tp+fn)
	t.Logf("anomaly detection, 3 synthetic series (3 days judged each, 75 injected anomalies of %v-%v sigma, threshold %.1f, hour-of-day season, 7d window): tp=%d fp=%d fn=%d precision=%.3f recall=%.3f",
		lo, hi, p.Threshold, tp, fp, fn, precision, recall)
	return precision, recall
}

func TestAnomalyJudge(t *testing.T) {
	p := DefaultAnomaly
	// Too little history: no judgement.
	pts, _ := synthetic(9, 1, 1, 8, 15)
	if v := p.Judge(pts[:10], pts[10]); v.Judged {
		t.Fatal("judged with 10 points of history")
	}
	// Direction.
	up := p
	up.Direction = "below"
	pts, _ = synthetic(5, 3, 1, 8, 15)
	spike := Point{T: pts[len(pts)-1].T.Add(p.Step), V: 500}
	if v := up.Judge(pts, spike); !v.Judged || v.Anomalous || v.Score < up.Threshold {
		t.Fatalf("a spike up with direction below: %+v", v)
	}
}

// TestAnomalyRule: an anomaly rule evaluated through the service over a TSDB fires for the
// series whose latest value left its band, with the band in its annotations.
func TestAnomalyRule(t *testing.T) {
	db := newTestDB(t)
	pts, _ := synthetic(7, 3, 0, 0, 0)
	end := pts[len(pts)-1].T
	app := db.db.Appender(context.Background())
	la := labels.FromStrings("__name__", "req_rate", "instance", "a")
	lb := labels.FromStrings("__name__", "req_rate", "instance", "b")
	for i, p := range pts {
		va := p.V
		if i == len(pts)-1 {
			va += 60 // the anomaly
		}
		if _, err := app.Append(0, la, p.T.UnixMilli(), va); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Append(0, lb, p.T.UnixMilli(), p.V); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 1)
	s := newTestNodes(t, c, newMembers("n1"), newClock(end.Add(time.Second)), db.q, "n1")[0].svc
	if _, err := s.AddRule(api.AlertRuleSpec{Name: "Traffic", Kind: "anomaly", Expr: "req_rate",
		Message: "{{instance}} at {{ $value | printf \"%.0f\" }}", Anomaly: &api.AnomalySpec{Window: "2d", MinSamples: 100}}); err != nil {
		t.Fatal(err)
	}
	s.Tick()
	got := s.Alerts(false)
	if len(got) != 1 || got[0].Labels["instance"] != "a" || got[0].State != api.AlertFiring {
		t.Fatalf("alerts %+v", got)
	}
	score, _ := strconv.ParseFloat(got[0].Annotations["score"], 64)
	if score < 4 || got[0].Annotations["band"] == "" || got[0].Annotations["message"] == "" {
		t.Fatalf("annotations %v", got[0].Annotations)
	}
}

func TestMedian(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 1; n < 60; n++ {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(rng.IntN(10)) // duplicates on purpose
		}
		sorted := append([]float64(nil), xs...)
		slices.Sort(sorted)
		want := sorted[n/2]
		if n%2 == 0 {
			want = (sorted[n/2-1] + sorted[n/2]) / 2
		}
		if got := median(xs); got != want {
			t.Fatalf("n=%d: median %v, want %v (%v)", n, got, want, sorted)
		}
	}
}
