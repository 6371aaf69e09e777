package api

import "time"

// Span is one span of a trace (GET /v1/monitor/traces/{trace}, POST /v1/monitor/spans).
type Span struct {
	TraceID  string    `json:"trace_id"` // 32 lower-case hex digits
	SpanID   string    `json:"span_id"`  // 16 lower-case hex digits
	ParentID string    `json:"parent_span_id,omitempty"`
	Service  string    `json:"service,omitempty"`
	Name     string    `json:"name"` // the operation
	Kind     string    `json:"kind,omitempty"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	// DurationMs is End - Start in milliseconds (answers; on submit, End may be left out
	// and DurationMs given instead).
	DurationMs float64           `json:"duration_ms"`
	Status     string            `json:"status,omitempty"` // unset, ok, error
	StatusMsg  string            `json:"status_message,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Node       string            `json:"node,omitempty"`
	Instance   string            `json:"instance,omitempty"`
}

// SpanSubmitRequest is the body of POST /v1/monitor/spans (at most 1000 spans).
type SpanSubmitRequest struct {
	Spans []Span `json:"spans"`
}

// SpanSubmitResult answers POST /v1/monitor/spans.
type SpanSubmitResult struct {
	Accepted int `json:"accepted"`
}

// TraceSummary is one trace of GET /v1/monitor/traces.
type TraceSummary struct {
	TraceID    string    `json:"trace_id"`
	Service    string    `json:"service"`   // the root span's (else the earliest span's)
	Operation  string    `json:"operation"` // likewise
	Start      time.Time `json:"start"`
	DurationMs float64   `json:"duration_ms"` // first start to last end
	Spans      int       `json:"spans"`
	Nodes      []string  `json:"nodes"`
	Status     string    `json:"status"` // error when a span failed, else ok or unset
}

// TraceList answers GET /v1/monitor/traces, newest first.
type TraceList struct {
	Traces   []TraceSummary `json:"traces"`
	Nodes    []string       `json:"nodes"`
	Warnings []string       `json:"warnings,omitempty"`
}

// Trace answers GET /v1/monitor/traces/{trace}: its spans over every node, by start.
type Trace struct {
	TraceID  string   `json:"trace_id"`
	Spans    []Span   `json:"spans"`
	Nodes    []string `json:"nodes"`
	Warnings []string `json:"warnings,omitempty"`
}

// TraceSearch selects traces: a trace is listed when one of its spans matches.
type TraceSearch struct {
	Service     string
	Operation   string
	MinDuration time.Duration
	Status      string // unset, ok, error
	Since       time.Duration
	Limit       int // traces (default 20, at most 1000)
	Local       bool
}
