package alert

import (
	"math"
	"strconv"
	"time"

	"github.com/rads-lang/constellation/api"
)

// Anomaly detection (docs/alerts.md, "Anomaly rules"). For each series of the rule's
// expression the history over Window, sampled every Step, is split by phase into Buckets
// slots of one Season (24 slots of a 24 h season: per hour of day). The baseline of a slot
// is the median of the history's values in that slot; a residual is a value minus its
// slot's baseline. The latest value's robust z-score is
//
//	z = 0.6745 * (r - median(residuals)) / MAD(residuals)
//
// (Iglewicz and Hoaglin's modified z-score; MAD is the median absolute deviation). The
// series is anomalous when |z| exceeds Threshold (or z > Threshold for "above", z <
// -Threshold for "below"). Medians make both the baseline and the band insensitive to
// past anomalies in the window. A series with fewer than MinSamples history points, or
// whose latest value's slot has no history, is not judged.

// AnomalyParams are an anomaly rule's parameters (replicated in its RuleRecord).
type AnomalyParams struct {
	Season     time.Duration `cbor:"1,keyasint"`
	Buckets    int           `cbor:"2,keyasint"`
	Window     time.Duration `cbor:"3,keyasint"`
	Step       time.Duration `cbor:"4,keyasint"`
	Threshold  float64       `cbor:"5,keyasint"`
	MinSamples int           `cbor:"6,keyasint"`
	Direction  string        `cbor:"7,keyasint,omitempty"`
}

// DefaultAnomaly are the defaults: an hour-of-day baseline learned over a week of 5-minute
// samples, alerting beyond a robust z-score of 4 once 48 points (4 h) are known.
var DefaultAnomaly = AnomalyParams{Season: 24 * time.Hour, Buckets: 24, Window: 7 * 24 * time.Hour,
	Step: 5 * time.Minute, Threshold: 4, MinSamples: 48, Direction: "both"}

const maxAnomalyPoints = 20000 // Window/Step bound: one range query per evaluation

func anomalyFromSpec(s *api.AnomalySpec) (AnomalyParams, error) {
	p := DefaultAnomaly
	if s == nil {
		return p, nil
	}
	for _, d := range []struct {
		name, s string
		to      *time.Duration
	}{{"season", s.Season, &p.Season}, {"window", s.Window, &p.Window}, {"step", s.Step, &p.Step}} {
		if d.s == "" {
			continue
		}
		v, err := ParseDuration(d.s)
		if err != nil || v <= 0 {
			return p, invalidf("anomaly %s %q: want a positive duration such as 24h", d.name, d.s)
		}
		*d.to = v
	}
	if s.Buckets != 0 {
		p.Buckets = s.Buckets
	}
	if s.Threshold != 0 {
		p.Threshold = s.Threshold
	}
	if s.MinSamples != 0 {
		p.MinSamples = s.MinSamples
	}
	if s.Direction != "" {
		p.Direction = s.Direction
	}
	switch {
	case p.Buckets < 1 || p.Buckets > 10000:
		return p, invalidf("anomaly buckets %d: want 1 to 10000 slots per season", p.Buckets)
	case p.Threshold <= 0 || math.IsNaN(p.Threshold) || math.IsInf(p.Threshold, 0):
		return p, invalidf("anomaly threshold %v: want a positive z-score such as 4", p.Threshold)
	case p.MinSamples < 3:
		return p, invalidf("anomaly min_samples %d: want at least 3", p.MinSamples)
	case p.Direction != "both" && p.Direction != "above" && p.Direction != "below":
		return p, invalidf("anomaly direction %q: want both, above or below", p.Direction)
	case p.Window < p.Step*time.Duration(p.MinSamples):
		return p, invalidf("anomaly window %s holds fewer than min_samples (%d) steps of %s", p.Window, p.MinSamples, p.Step)
	case p.Window/p.Step > maxAnomalyPoints:
		return p, invalidf("anomaly window %s / step %s is over %d points: raise the step", p.Window, p.Step, maxAnomalyPoints)
	}
	return p, nil
}

// Spec is the API form.
func (p AnomalyParams) Spec() *api.AnomalySpec {
	return &api.AnomalySpec{Season: p.Season.String(), Buckets: p.Buckets, Window: p.Window.String(),
		Step: p.Step.String(), Threshold: p.Threshold, MinSamples: p.MinSamples, Direction: p.Direction}
}

// Point is one sample of a series.
type Point struct {
	T time.Time
	V float64
}

// Verdict is the judgement of a series' latest value.
type Verdict struct {
	Judged    bool    // enough history to judge
	Anomalous bool    // outside the band
	Baseline  float64 // the slot's median
	Score     float64 // robust z-score of the residual
	Lower     float64 // band: baseline + median residual -/+ Threshold * MAD / 0.6745
	Upper     float64
}

func (p AnomalyParams) bucket(t time.Time) int {
	season := p.Season.Nanoseconds()
	ph := t.UnixNano() % season
	if ph < 0 {
		ph += season
	}
	b := int(float64(ph) / float64(season) * float64(p.Buckets))
	return min(max(b, 0), p.Buckets-1)
}

// median of xs (reordered in place), by quickselect.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	hi := selectK(xs, n/2)
	if n%2 == 1 {
		return hi
	}
	lo := xs[0] // after selectK, xs[:n/2] hold the n/2 smallest values
	for _, x := range xs[1 : n/2] {
		lo = max(lo, x)
	}
	return (lo + hi) / 2
}

// selectK reorders xs so that xs[k] is the k-th smallest, smaller ones before it.
func selectK(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		p := xs[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for xs[i] < p {
				i++
			}
			for xs[j] > p {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}

// Judge scores cur against history (points before it, any order). It is pure.
func (p AnomalyParams) Judge(history []Point, cur Point) Verdict {
	var v Verdict
	if p.Season <= 0 || p.Buckets < 1 || p.Buckets > 10000 || p.MinSamples < 1 { // a remote record is untrusted
		return v
	}
	slots := make([][]float64, p.Buckets)
	n := 0
	for _, h := range history {
		if math.IsNaN(h.V) || math.IsInf(h.V, 0) || !h.T.Before(cur.T) {
			continue
		}
		b := p.bucket(h.T)
		slots[b] = append(slots[b], h.V)
		n++
	}
	cb := p.bucket(cur.T)
	if n < p.MinSamples || len(slots[cb]) == 0 || math.IsNaN(cur.V) {
		return v
	}
	base := make([]float64, p.Buckets)
	for i, s := range slots {
		if len(s) > 0 {
			base[i] = median(s)
		}
	}
	res := make([]float64, 0, n)
	for i, s := range slots {
		for _, x := range s {
			res = append(res, x-base[i])
		}
	}
	mr := median(res)
	dev := make([]float64, len(res))
	for i, r := range res {
		dev[i] = math.Abs(r - mr)
	}
	mad := median(dev)
	if floor := 1e-9 * math.Max(1, math.Abs(base[cb])); mad < floor {
		mad = floor // a flat history: any real change is an anomaly
	}
	v.Judged = true
	v.Baseline = base[cb]
	v.Score = 0.6745 * (cur.V - base[cb] - mr) / mad
	width := p.Threshold * mad / 0.6745
	v.Lower, v.Upper = base[cb]+mr-width, base[cb]+mr+width
	switch p.Direction {
	case "above":
		v.Anomalous = v.Score > p.Threshold
	case "below":
		v.Anomalous = v.Score < -p.Threshold
	default:
		v.Anomalous = math.Abs(v.Score) > p.Threshold
	}
	return v
}

// anomalyExtra are the annotations an anomalous sample carries.
func anomalyExtra(v Verdict) map[string]string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	return map[string]string{"baseline": f(v.Baseline), "score": f(v.Score), "band": "[" + f(v.Lower) + ", " + f(v.Upper) + "]"}
}
