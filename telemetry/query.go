package telemetry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/rads-lang/constellation/api"
)

// Result is one evaluated query: the value and the warnings (nodes left out).
type Result struct {
	Type     string // vector, matrix, scalar or string
	Series   []api.PromSeries
	Warnings []string
}

// maxPoints bounds the points of a range query per series (Prometheus' own limit).
const maxPoints = 11000

// checkRange refuses a range that starts before the local store's retention.
func (s *Service) checkRange(start time.Time) error {
	if s.store == nil {
		return nil
	}
	ret := s.store.Retention()
	if age := time.Since(start); age > ret+time.Minute {
		return fmt.Errorf("%w: the range starts %s ago, beyond the metrics retention of %s (--metrics-retention); ask for at most %s",
			ErrBeyondRetention, fmtDur(age), fmtDur(ret), fmtDur(ret))
	}
	return nil
}

func fmtDur(d time.Duration) string {
	return model.Duration(d.Round(time.Second)).String()
}

// Instant evaluates q at ts over the whole cluster.
func (s *Service) Instant(ctx context.Context, q string, ts time.Time) (Result, error) {
	qry, err := s.engine.NewInstantQuery(ctx, s.Queryable(), nil, q, ts)
	if err != nil {
		return Result{}, queryErr(err)
	}
	defer qry.Close()
	return convertResult(qry.Exec(ctx))
}

// Range evaluates q over [start, end] every step over the whole cluster.
func (s *Service) Range(ctx context.Context, q string, start, end time.Time, step time.Duration) (Result, error) {
	if step <= 0 {
		return Result{}, fmt.Errorf("%w: step must be positive, e.g. 1m", ErrBadQuery)
	}
	if end.Before(start) {
		return Result{}, fmt.Errorf("%w: end %s is before start %s", ErrBadQuery, end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	if n := end.Sub(start) / step; n > maxPoints {
		return Result{}, fmt.Errorf("%w: %d points per series is more than %d; use a larger step (at least %s)",
			ErrBadQuery, n, maxPoints, fmtDur(end.Sub(start)/maxPoints+time.Second))
	}
	if err := s.checkRange(start); err != nil {
		return Result{}, err
	}
	qry, err := s.engine.NewRangeQuery(ctx, s.Queryable(), nil, q, start, end, step)
	if err != nil {
		return Result{}, queryErr(err)
	}
	defer qry.Close()
	return convertResult(qry.Exec(ctx))
}

// queryErr marks a parse error (its message names the line:column position) as bad input.
func queryErr(err error) error {
	var pe parser.ParseErrors
	var one *parser.ParseErr
	if errors.As(err, &pe) || errors.As(err, &one) {
		return fmt.Errorf("%w: PromQL: %v", ErrBadQuery, err)
	}
	return err
}

func convertResult(res *promql.Result) (Result, error) {
	if res.Err != nil {
		var pe promql.ErrQueryCanceled
		if errors.As(res.Err, &pe) {
			return Result{}, res.Err
		}
		var tl promql.ErrTooManySamples
		if errors.As(res.Err, &tl) {
			return Result{}, fmt.Errorf("%w: %v", ErrBadQuery, res.Err)
		}
		return Result{}, res.Err
	}
	out := Result{Series: []api.PromSeries{}}
	out.Warnings, _ = res.Warnings.AsStrings("", 0, 0)
	switch v := res.Value.(type) {
	case promql.Vector:
		out.Type = "vector"
		for _, smp := range v {
			p := api.PromPoint{T: float64(smp.T) / 1000, V: smp.F}
			out.Series = append(out.Series, api.PromSeries{Metric: labelMap(smp.Metric), Value: &p})
		}
	case promql.Matrix:
		out.Type = "matrix"
		for _, ser := range v {
			ps := make([]api.PromPoint, 0, len(ser.Floats))
			for _, f := range ser.Floats {
				ps = append(ps, api.PromPoint{T: float64(f.T) / 1000, V: f.F})
			}
			out.Series = append(out.Series, api.PromSeries{Metric: labelMap(ser.Metric), Values: ps})
		}
	case promql.Scalar:
		out.Type = "scalar"
		p := api.PromPoint{T: float64(v.T) / 1000, V: v.V}
		out.Series = append(out.Series, api.PromSeries{Metric: map[string]string{}, Value: &p})
	case promql.String:
		out.Type = "string"
	default:
		return Result{}, fmt.Errorf("unexpected result %T", res.Value)
	}
	return out, nil
}

func labelMap(l labels.Labels) map[string]string {
	m := map[string]string{}
	l.Range(func(x labels.Label) { m[x.Name] = x.Value })
	return m
}

// ParseTime reads an RFC 3339 time or Unix seconds ("" is def).
func ParseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: time %q: want RFC 3339 (2026-01-02T15:04:05Z) or Unix seconds", ErrBadQuery, s)
}

// ParseDuration reads a Prometheus duration (1h, 30m, 1d, 1h30m) or seconds (60, 0.5).
func ParseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 && f < 1e9 {
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := model.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: duration %q: want a positive duration like 30s, 5m, 1h, 7d", ErrBadQuery, s)
	}
	return time.Duration(d), nil
}

// Aggregations of the structured query form.
var aggregations = []string{"avg", "sum", "min", "max", "count", "stddev", "stdvar", "p50", "p90", "p95", "p99"}

var identRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// Structured translates the seed's form (metric, aggregation, group_by) to PromQL:
// a counter (name ending in _total) is taken as its per-second rate over rateWindow;
// aggregation avg|sum|min|max|count|stddev|stdvar applies by the group_by labels, pN is
// the Nth percentile across the series (quantile); no aggregation keeps every series.
func Structured(metric, aggregation string, groupBy []string, rateWindow time.Duration) (string, error) {
	if !identRE.MatchString(metric) {
		return "", fmt.Errorf("%w: metric %q: a metric name like constellation_node_cpu_percent", ErrBadQuery, metric)
	}
	expr := metric
	if strings.HasSuffix(metric, "_total") {
		expr = fmt.Sprintf("rate(%s[%s])", metric, model.Duration(rateWindow))
	}
	for _, g := range groupBy {
		if !identRE.MatchString(g) || strings.Contains(g, ":") {
			return "", fmt.Errorf("%w: group_by label %q: letters, digits and '_'", ErrBadQuery, g)
		}
	}
	if aggregation == "" {
		if len(groupBy) > 0 {
			return "", fmt.Errorf("%w: group_by needs an aggregation (%s)", ErrBadQuery, strings.Join(aggregations, ", "))
		}
		return expr, nil
	}
	if !slices.Contains(aggregations, aggregation) {
		return "", fmt.Errorf("%w: aggregation %q: want one of %s", ErrBadQuery, aggregation, strings.Join(aggregations, ", "))
	}
	by := ""
	if len(groupBy) > 0 {
		by = " by (" + strings.Join(groupBy, ", ") + ")"
	}
	if strings.HasPrefix(aggregation, "p") {
		q, _ := strconv.Atoi(aggregation[1:])
		return fmt.Sprintf("quantile%s (%s, %s)", by, strconv.FormatFloat(float64(q)/100, 'f', -1, 64), expr), nil
	}
	return fmt.Sprintf("%s%s (%s)", aggregation, by, expr), nil
}
