package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/telemetry/metrics"
)

// Routes lists every route the service registers, with whether it reads or mutates
// (for the permission table).
var Routes = map[string]string{
	"GET /metrics":                     "read",
	"GET /api/v1/query":                "read",
	"POST /api/v1/query":               "read",
	"GET /api/v1/query_range":          "read",
	"POST /api/v1/query_range":         "read",
	"GET /api/v1/series":               "read",
	"POST /api/v1/series":              "read",
	"GET /api/v1/labels":               "read",
	"POST /api/v1/labels":              "read",
	"GET /api/v1/label/{name}/values":  "read",
	"GET /api/v1/status/buildinfo":     "read",
	"POST /v1/monitor/query":           "read",
	"GET /v1/monitor/dashboard":        "read",
	"POST /v1/monitor/metrics":         "mutate",
	"POST /v1/monitor/checks":          "mutate (admin only)",
	"GET /v1/monitor/checks":           "read",
	"DELETE /v1/monitor/checks/{name}": "mutate (admin only)",
	"GET /v1/debug/pprof/{node}":       "read (admin only)",
}

const maxFormBytes = 1 << 20

func (s *Service) registerRoutes(srv *httpapi.Server) {
	mh := s.metricsHandler()
	srv.Handle("GET /metrics", mh.ServeHTTP)
	for _, m := range []string{"GET", "POST"} {
		srv.Handle(m+" /api/v1/query", s.promQuery)
		srv.Handle(m+" /api/v1/query_range", s.promQueryRange)
		srv.Handle(m+" /api/v1/series", s.promSeries)
		srv.Handle(m+" /api/v1/labels", s.promLabels)
	}
	srv.Handle("GET /api/v1/label/{name}/values", s.promLabelValues)
	srv.Handle("GET /api/v1/status/buildinfo", func(w http.ResponseWriter, r *http.Request) {
		promOK(w, map[string]string{"version": "2.55.0", "application": "constellation"}, nil)
	})
	srv.Handle("POST /v1/monitor/query", s.handleQuery)
	srv.Handle("GET /v1/monitor/dashboard", s.handleDashboard)
	srv.Handle("POST /v1/monitor/metrics", s.handlePush)
	srv.Handle("GET /v1/debug/pprof/{node}", s.handlePprof)
	srv.Handle("POST /v1/monitor/checks", s.handleAddCheck)
	srv.Handle("GET /v1/monitor/checks", s.handleListChecks)
	srv.Handle("DELETE /v1/monitor/checks/{name}", s.handleRemoveCheck)
}

// ---- Prometheus-compatible API ----

func promOK(w http.ResponseWriter, data any, warnings []string) {
	b, err := json.Marshal(data)
	if err != nil {
		promErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, api.PromResponse{Status: "success", Data: b, Warnings: warnings})
}

func promErr(w http.ResponseWriter, err error) {
	status, _, msg := httpapi.Status(err)
	typ := "internal"
	switch {
	case status == http.StatusBadRequest:
		typ = "bad_data"
	case status == http.StatusServiceUnavailable:
		typ = "unavailable"
	case status == http.StatusUnprocessableEntity:
		typ = "execution"
	}
	httpapi.WriteJSON(w, status, api.PromResponse{Status: "error", ErrorType: typ, Error: msg})
}

func form(r *http.Request) error {
	r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("%w: form: %v", ErrBadQuery, err)
	}
	return nil
}

func (s *Service) promQuery(w http.ResponseWriter, r *http.Request) {
	if err := form(r); err != nil {
		promErr(w, err)
		return
	}
	ts, err := ParseTime(r.Form.Get("time"), time.Now())
	if err != nil {
		promErr(w, err)
		return
	}
	res, err := s.Instant(r.Context(), r.Form.Get("query"), ts)
	if err != nil {
		promErr(w, err)
		return
	}
	promOK(w, promData(res), res.Warnings)
}

func promData(res Result) api.PromQueryData {
	var raw []byte
	switch res.Type {
	case "scalar":
		raw, _ = json.Marshal(res.Series[0].Value)
	case "string":
		raw = []byte(`[0,""]`)
	default:
		raw, _ = json.Marshal(res.Series)
	}
	return api.PromQueryData{ResultType: res.Type, Result: raw}
}

func (s *Service) promQueryRange(w http.ResponseWriter, r *http.Request) {
	if err := form(r); err != nil {
		promErr(w, err)
		return
	}
	start, err := ParseTime(r.Form.Get("start"), time.Time{})
	if err == nil && start.IsZero() {
		err = fmt.Errorf("%w: start is required", ErrBadQuery)
	}
	if err != nil {
		promErr(w, err)
		return
	}
	end, err := ParseTime(r.Form.Get("end"), time.Now())
	if err != nil {
		promErr(w, err)
		return
	}
	step, err := ParseDuration(r.Form.Get("step"))
	if err != nil {
		promErr(w, err)
		return
	}
	res, err := s.Range(r.Context(), r.Form.Get("query"), start, end, step)
	if err != nil {
		promErr(w, err)
		return
	}
	promOK(w, promData(res), res.Warnings)
}

// timeRange reads start and end (default: the last hour).
func (s *Service) timeRange(r *http.Request) (int64, int64, error) {
	now := time.Now()
	start, err := ParseTime(r.Form.Get("start"), now.Add(-time.Hour))
	if err != nil {
		return 0, 0, err
	}
	end, err := ParseTime(r.Form.Get("end"), now)
	if err != nil {
		return 0, 0, err
	}
	if end.Before(start) {
		return 0, 0, fmt.Errorf("%w: end %s is before start %s", ErrBadQuery, end.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339))
	}
	return start.UnixMilli(), end.UnixMilli(), nil
}

func matchers(r *http.Request) ([][]*labels.Matcher, error) {
	var out [][]*labels.Matcher
	for _, m := range r.Form["match[]"] {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(m)
		if err != nil {
			return nil, fmt.Errorf("%w: match[] %q: %v", ErrBadQuery, m, err)
		}
		out = append(out, ms)
	}
	return out, nil
}

func (s *Service) promSeries(w http.ResponseWriter, r *http.Request) {
	if err := form(r); err != nil {
		promErr(w, err)
		return
	}
	mss, err := matchers(r)
	if err == nil && len(mss) == 0 {
		err = fmt.Errorf(`%w: at least one match[] selector is required, e.g. match[]=up or match[]={node="n1"}`, ErrBadQuery)
	}
	if err != nil {
		promErr(w, err)
		return
	}
	mint, maxt, err := s.timeRange(r)
	if err != nil {
		promErr(w, err)
		return
	}
	q, err := s.Queryable().Querier(mint, maxt)
	if err != nil {
		promErr(w, err)
		return
	}
	defer q.Close()
	seen := map[string]bool{}
	out := []map[string]string{}
	var warns []string
	for _, ms := range mss {
		set := q.Select(r.Context(), false, &storage.SelectHints{Start: mint, End: maxt, Func: "series"}, ms...)
		for set.Next() {
			l := set.At().Labels()
			if k := l.String(); !seen[k] {
				seen[k] = true
				out = append(out, labelMap(l))
			}
		}
		if err := set.Err(); err != nil {
			promErr(w, err)
			return
		}
		ws, _ := set.Warnings().AsStrings("", 0, 0)
		warns = append(warns, ws...)
	}
	promOK(w, out, warns)
}

func (s *Service) labelQuery(w http.ResponseWriter, r *http.Request, fn func(ctx context.Context, q storage.Querier, ms []*labels.Matcher) ([]string, []string, error)) {
	if err := form(r); err != nil {
		promErr(w, err)
		return
	}
	mss, err := matchers(r)
	if err != nil {
		promErr(w, err)
		return
	}
	mint, maxt, err := s.timeRange(r)
	if err != nil {
		promErr(w, err)
		return
	}
	q, err := s.Queryable().Querier(mint, maxt)
	if err != nil {
		promErr(w, err)
		return
	}
	defer q.Close()
	if len(mss) == 0 {
		mss = [][]*labels.Matcher{nil}
	}
	set := map[string]bool{}
	var warns []string
	for _, ms := range mss {
		names, ws, err := fn(r.Context(), q, ms)
		if err != nil {
			promErr(w, err)
			return
		}
		warns = append(warns, ws...)
		for _, n := range names {
			set[n] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	promOK(w, out, warns)
}

func (s *Service) promLabels(w http.ResponseWriter, r *http.Request) {
	s.labelQuery(w, r, func(ctx context.Context, q storage.Querier, ms []*labels.Matcher) ([]string, []string, error) {
		names, ws, err := q.LabelNames(ctx, nil, ms...)
		wss, _ := ws.AsStrings("", 0, 0)
		return names, wss, err
	})
}

func (s *Service) promLabelValues(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !model_LabelName(name) {
		promErr(w, fmt.Errorf("%w: label name %q: letters, digits and '_'", ErrBadQuery, name))
		return
	}
	s.labelQuery(w, r, func(ctx context.Context, q storage.Querier, ms []*labels.Matcher) ([]string, []string, error) {
		vals, ws, err := q.LabelValues(ctx, name, nil, ms...)
		wss, _ := ws.AsStrings("", 0, 0)
		return vals, wss, err
	})
}

func model_LabelName(s string) bool { return s != "" && identRE.MatchString(s) }

// ---- constellation routes ----

// handleQuery is POST /v1/monitor/query (PromQL or the structured form).
func (s *Service) handleQuery(w http.ResponseWriter, r *http.Request) {
	var req api.MonitorQuery
	if !httpapi.Decode(w, r, &req) {
		return
	}
	res, q, err := s.Query(r.Context(), req)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, api.MonitorQueryResult{PromQL: q, ResultType: res.Type, Result: res.Series, Warnings: res.Warnings})
}

// Query runs a MonitorQuery and returns the result and the PromQL it evaluated.
func (s *Service) Query(ctx context.Context, req api.MonitorQuery) (Result, string, error) {
	at, err := ParseTime(req.Time, time.Now())
	if err != nil {
		return Result{}, "", err
	}
	var rng, step time.Duration
	if req.TimeRange != "" {
		if rng, err = ParseDuration(req.TimeRange); err != nil {
			return Result{}, "", fmt.Errorf("%w (time_range)", err)
		}
	}
	if req.Step != "" {
		if step, err = ParseDuration(req.Step); err != nil {
			return Result{}, "", fmt.Errorf("%w (step)", err)
		}
	}
	q := req.Query
	switch {
	case q != "" && req.Metric != "":
		return Result{}, "", fmt.Errorf(`%w: give "query" (PromQL) or "metric" (the structured form), not both`, ErrBadQuery)
	case q == "" && req.Metric == "":
		return Result{}, "", fmt.Errorf(`%w: "query" (PromQL, e.g. avg by (node) (constellation_node_cpu_percent)) or "metric" is required`, ErrBadQuery)
	case q == "":
		if q, err = Structured(req.Metric, req.Aggregation, req.GroupBy, max(time.Minute, 4*s.cfg.Interval)); err != nil {
			return Result{}, "", err
		}
	case req.Aggregation != "" || len(req.GroupBy) > 0:
		return Result{}, "", fmt.Errorf(`%w: "aggregation" and "group_by" go with "metric", not with a PromQL "query"`, ErrBadQuery)
	}
	if rng == 0 {
		res, err := s.Instant(ctx, q, at)
		return res, q, err
	}
	if step == 0 {
		step = max(s.cfg.Interval, (rng / 60).Round(time.Second))
	}
	res, err := s.Range(ctx, q, at.Add(-rng), at, step)
	return res, q, err
}

// handlePush is POST /v1/monitor/metrics.
func (s *Service) handlePush(w http.ResponseWriter, r *http.Request) {
	var req api.MetricsPushRequest
	if !httpapi.Decode(w, r, &req) {
		return
	}
	inst, ns := req.Instance, ""
	if c, ok := s.callerOf(r.Context()); ok {
		if inst != "" && inst != c {
			httpapi.WriteErr(w, httpapi.Errorf(http.StatusForbidden, "forbidden", "instance %s may push only its own metrics, not %s's; leave \"instance\" empty", c, inst))
			return
		}
		inst = c
	}
	if inst != "" {
		var ok bool
		if s.cfg.LocalInstance == nil {
			ok = false
		} else {
			ns, ok = s.cfg.LocalInstance(inst)
		}
		if !ok {
			httpapi.WriteErr(w, httpapi.Errorf(http.StatusNotFound, "not_found", "instance %q does not run on node %s: push to the node it runs on (its loopback API does that)", inst, s.cfg.Name))
			return
		}
	}
	if len(req.Metrics) == 0 {
		httpapi.WriteErr(w, httpapi.BadRequest(`field "metrics" is required: [{"name": "active_users", "kind": "gauge", "value": 1234}]`))
		return
	}
	if len(req.Metrics) > 1000 {
		httpapi.WriteErr(w, httpapi.BadRequest(`field "metrics": %d samples in one push; at most 1000`, len(req.Metrics)))
		return
	}
	samples := make([]metrics.Sample, len(req.Metrics))
	for i, m := range req.Metrics {
		k := m.Kind
		if k == "" {
			k = metrics.KindGauge
		}
		samples[i] = metrics.Sample{Name: m.Name, Kind: k, Value: m.Value, Tags: m.Tags}
	}
	if err := s.custom.Push(inst, ns, samples); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	limit := s.cfg.MaxCustomSeries
	if limit <= 0 {
		limit = metrics.DefaultMaxSeries
	}
	httpapi.WriteJSON(w, http.StatusOK, api.MetricsPushResult{Recorded: len(samples), Series: s.custom.Series(inst), Limit: limit})
}

func (s *Service) callerOf(ctx context.Context) (string, bool) {
	if s.cfg.Caller == nil {
		return "", false
	}
	return s.cfg.Caller(ctx)
}
