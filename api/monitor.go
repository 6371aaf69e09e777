package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// MetricSample is one custom metric value pushed by an instance (POST /v1/monitor/metrics).
type MetricSample struct {
	// Name is the metric's name (letters, digits, '_'; constellation_, go_, process_ are
	// reserved). A counter's name gets _total when it lacks it.
	Name string `json:"name"`
	// Kind is gauge (the value replaces the last), counter (the value, >= 0, is added) or
	// histogram (the value is one observation). Default gauge.
	Kind  string  `json:"kind,omitempty"`
	Value float64 `json:"value"`
	// Tags become labels (at most 16; node, instance, namespace, deployment, le and job
	// are set by the node).
	Tags map[string]string `json:"tags,omitempty"`
}

// MetricsPushRequest is POST /v1/monitor/metrics. From inside an instance the instance is
// the caller; an admin names a local instance, or none for the node's own metrics.
type MetricsPushRequest struct {
	Instance string         `json:"instance,omitempty"`
	Metrics  []MetricSample `json:"metrics"`
}

// MetricsPushResult says how many samples were recorded and how many custom series the
// instance now has (of at most Limit).
type MetricsPushResult struct {
	Recorded int `json:"recorded"`
	Series   int `json:"series"`
	Limit    int `json:"limit"`
}

// MonitorQuery is POST /v1/monitor/query: PromQL (Query) or the structured form
// (Metric, Aggregation, GroupBy), over the whole cluster. With TimeRange (e.g. "1h") it
// is a range query ending at Time (default now) with Step (default TimeRange/60, at
// least 10s); without, an instant query at Time.
type MonitorQuery struct {
	Query       string   `json:"query,omitempty"`
	Metric      string   `json:"metric,omitempty"`
	Aggregation string   `json:"aggregation,omitempty"`
	GroupBy     []string `json:"group_by,omitempty"`
	TimeRange   string   `json:"time_range,omitempty"`
	Step        string   `json:"step,omitempty"`
	Time        string   `json:"time,omitempty"` // RFC 3339 or Unix seconds
}

// MonitorQueryResult is the answer to MonitorQuery.
type MonitorQueryResult struct {
	PromQL     string       `json:"promql"`
	ResultType string       `json:"result_type"` // vector, matrix, scalar or string
	Result     []PromSeries `json:"result"`
	// Warnings name the nodes that did not answer in time (their series are missing).
	Warnings []string `json:"warnings,omitempty"`
}

// PromResponse is the envelope of the Prometheus-compatible HTTP API (/api/v1/...).
type PromResponse struct {
	Status    string          `json:"status"` // success or error
	Data      json.RawMessage `json:"data,omitempty"`
	ErrorType string          `json:"errorType,omitempty"`
	Error     string          `json:"error,omitempty"`
	Warnings  []string        `json:"warnings,omitempty"`
}

// PromQueryData is the data of /api/v1/query and /api/v1/query_range.
type PromQueryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// PromSeries is one series of a result: Value for a vector, Values for a matrix.
type PromSeries struct {
	Metric map[string]string `json:"metric"`
	Value  *PromPoint        `json:"value,omitempty"`
	Values []PromPoint       `json:"values,omitempty"`
}

// PromPoint is [unix seconds, "value"] as Prometheus writes it.
type PromPoint struct {
	T float64
	V float64
}

// MarshalJSON writes [t, "v"].
func (p PromPoint) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("[%s,%q]", strconv.FormatFloat(p.T, 'f', -1, 64), strconv.FormatFloat(p.V, 'f', -1, 64))), nil
}

// UnmarshalJSON reads [t, "v"].
func (p *PromPoint) UnmarshalJSON(b []byte) error {
	var raw [2]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[0], &p.T); err != nil {
		return err
	}
	var s string
	if err := json.Unmarshal(raw[1], &s); err != nil {
		return err
	}
	v, err := strconv.ParseFloat(s, 64)
	p.V = v
	return err
}

// Cluster health of the dashboard.
const (
	HealthHealthy  = "healthy"
	HealthDegraded = "degraded"
	HealthCritical = "critical"
)

// Dashboard is GET /v1/monitor/dashboard (the seed's monitor.dashboard()).
type Dashboard struct {
	Health         string        `json:"health"` // healthy, degraded or critical (see docs/monitor.md)
	NodesTotal     int           `json:"nodes_total"`
	NodesHealthy   int           `json:"nodes_healthy"`
	InstancesTotal int           `json:"instances_total"`
	CPUPercent     float64       `json:"cpu_percent"`
	RAMPercent     float64       `json:"ram_percent"`
	NetworkInMbps  float64       `json:"network_in_mbps"`
	NetworkOutMbps float64       `json:"network_out_mbps"`
	Reasons        []string      `json:"reasons,omitempty"` // why the health is not healthy
	Checks         []HealthCheck `json:"checks,omitempty"`
	Warnings       []string      `json:"warnings,omitempty"`
}

// HealthCheckSpec is POST /v1/monitor/checks (the seed's monitor.health_check(name, ...)):
// a named check of kind http (GET Target, 2xx/3xx passes), tcp (Target HOST:PORT opens)
// or exec (Target run with sh -c on the node's host exits 0), for a node (default: the
// node asked) or an instance (probed by the node that runs it; http and tcp only).
type HealthCheckSpec struct {
	Name     string `json:"name"`
	Node     string `json:"node,omitempty"`
	Instance string `json:"instance,omitempty"`
	Kind     string `json:"kind"`
	Target   string `json:"target"`
	Interval string `json:"interval,omitempty"` // default 30s
	Timeout  string `json:"timeout,omitempty"`  // default 5s
}

// HealthCheck is a named check and its last result (Status "pending" before the first).
type HealthCheck struct {
	Name     string    `json:"name"`
	Node     string    `json:"node"` // the node that probes it
	Instance string    `json:"instance,omitempty"`
	Kind     string    `json:"kind,omitempty"`
	Target   string    `json:"target,omitempty"`
	Status   string    `json:"status"` // passing, failing or pending
	Output   string    `json:"output,omitempty"`
	Since    time.Time `json:"since,omitzero"` // when the status last changed
}
