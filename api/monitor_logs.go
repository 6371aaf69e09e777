package api

import (
	"encoding/json"
	"time"
)

// LogEntry is one log line as the log search answers it (GET /v1/monitor/logs).
type LogEntry struct {
	Time       time.Time         `json:"time"`
	Node       string            `json:"node"`
	Instance   string            `json:"instance,omitempty"`
	Deployment string            `json:"deployment,omitempty"`
	Namespace  string            `json:"namespace,omitempty"`
	Stream     string            `json:"stream"` // stdout, stderr, node (the node's own log), api (submitted)
	Level      string            `json:"level,omitempty"`
	Message    string            `json:"message"`
	Fields     map[string]string `json:"fields,omitempty"`
}

// LogSubmit is one structured entry an instance or an admin submits
// (POST /v1/monitor/logs), as the seed's monitor.log("info", "User logged in", {user_id: 123}).
type LogSubmit struct {
	// Time defaults to now; a time more than 1 h in the past or 1 min in the future is
	// replaced by now.
	Time *time.Time `json:"time,omitempty"`
	// Level is debug, info (default), warn or error (warning, err, fatal... are accepted).
	Level   string `json:"level,omitempty"`
	Message string `json:"message"`
	// Fields are any JSON values; they are stored as text (strings as they are, other
	// values as JSON). At most 32, keys of letters, digits, '_', '-', '.'.
	Fields map[string]json.RawMessage `json:"fields,omitempty"`
	// Instance, Deployment and Namespace may be set by admin callers; for an instance
	// caller they are the caller's.
	Instance   string `json:"instance,omitempty"`
	Deployment string `json:"deployment,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
}

// LogSubmitRequest is the body of POST /v1/monitor/logs: one entry (the LogSubmit
// fields at the top level) or several in "entries" (at most 1000).
type LogSubmitRequest struct {
	LogSubmit
	Entries []LogSubmit `json:"entries,omitempty"`
}

// LogSubmitResult answers POST /v1/monitor/logs.
type LogSubmitResult struct {
	Accepted int `json:"accepted"`
}

// LogSearchResult answers GET /v1/monitor/logs: the newest matches over every alive
// node, newest first.
type LogSearchResult struct {
	Entries []LogEntry `json:"entries"`
	// Nodes are the nodes that answered; Warnings name those that did not and the
	// corrupt segments skipped.
	Nodes    []string `json:"nodes"`
	Warnings []string `json:"warnings,omitempty"`
}

// LogSearch selects a log search or follow.
type LogSearch struct {
	Query string        // the query language of docs/logs-traces.md; empty: everything
	Since time.Duration // entries newer than now-Since (0: no bound)
	Until time.Time     // entries not newer than this (zero: now)
	Limit int           // newest Limit (default 100, at most 10000)
	Local bool          // this node only
}
