package api

import "time"

// Alerting (docs/alerts.md): rules in PromQL evaluated by one alive node each, silences and
// notification channels, all replicated. Routes under /v1/monitor/.

// Alert rule kinds.
const (
	RuleThreshold = "threshold" // the expression's result is the set of alerts (Prometheus rules)
	RuleAnomaly   = "anomaly"   // a series that leaves its learned seasonal band alerts
)

// Alert states.
const (
	AlertInactive = "inactive"
	AlertPending  = "pending"
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// AlertRuleSpec is POST /v1/monitor/rules: an alert rule. Durations are Go or Prometheus
// durations ("90s", "5m", "1h30m", "1d").
type AlertRuleSpec struct {
	Name string `json:"name"`
	// Kind is threshold (default) or anomaly.
	Kind string `json:"kind,omitempty"`
	// Expr is a PromQL expression. For a threshold rule every element of its result is an
	// alert (e.g. `avg by (node) (constellation_node_cpu_percent) > 90`); the seed's
	// trailing `for 5m` is accepted and moves to For. For an anomaly rule it is the series
	// watched (e.g. `rate(http_requests_total[5m])`).
	Expr string `json:"expr"`
	// For is how long an alert stays pending before it fires (default 0: at once).
	For      string `json:"for,omitempty"`
	Severity string `json:"severity,omitempty"` // critical, warning (default), info
	// Message is the notification text, a template: {{ $value }}, {{ $labels.instance }},
	// and the seed's {{value}}, {{instance}}.
	Message     string            `json:"message,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Channels    []string          `json:"channels,omitempty"`
	// Interval between evaluations (default the node's, 15 s).
	Interval string `json:"interval,omitempty"`
	// Repeat re-sends a firing alert's notification this often (default never).
	Repeat  string       `json:"repeat,omitempty"`
	Anomaly *AnomalySpec `json:"anomaly,omitempty"`
}

// AnomalySpec are the parameters of an anomaly rule (defaults in docs/alerts.md).
type AnomalySpec struct {
	Season     string  `json:"season,omitempty"`      // period of the baseline (default 24h)
	Buckets    int     `json:"buckets,omitempty"`     // baseline slots per season (default 24: per hour of day)
	Window     string  `json:"window,omitempty"`      // history learned from (default 7d)
	Step       string  `json:"step,omitempty"`        // sample spacing of the history (default 5m)
	Threshold  float64 `json:"threshold,omitempty"`   // robust z-score that alerts (default 4)
	MinSamples int     `json:"min_samples,omitempty"` // history points needed before judging (default 48)
	Direction  string  `json:"direction,omitempty"`   // both (default), above, below
}

// AlertRuleInfo is a rule as GET /v1/monitor/rules answers it.
type AlertRuleInfo struct {
	AlertRuleSpec
	CreatedAt time.Time `json:"created_at"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	// Owner is the node that evaluates the rule now (rendezvous owner among alive nodes).
	Owner       string    `json:"owner,omitempty"`
	EvaluatedAt time.Time `json:"evaluated_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Pending     int       `json:"pending"`
	Firing      int       `json:"firing"`
}

// AlertInfo is one alert (GET /v1/monitor/alerts).
type AlertInfo struct {
	Rule        string            `json:"rule"`
	Fingerprint string            `json:"fingerprint"`
	State       string            `json:"state"`
	Severity    string            `json:"severity,omitempty"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Value       float64           `json:"value"`
	ActiveAt    time.Time         `json:"active_at"`
	FiredAt     time.Time         `json:"fired_at,omitzero"`
	ResolvedAt  time.Time         `json:"resolved_at,omitzero"`
	NotifiedAt  time.Time         `json:"notified_at,omitzero"`
	Silenced    bool              `json:"silenced,omitempty"`
	Owner       string            `json:"owner,omitempty"`
}

// SilenceSpec is POST /v1/monitor/silences. Matchers are label matchers
// (alertname=HighCPU, severity!=info, instance=~"web-.*", node!~"edge-.*"); every one must
// match an alert's labels for it to be silenced.
type SilenceSpec struct {
	Matchers []string `json:"matchers"`
	// Duration from now ("2h"), or EndsAt.
	Duration string    `json:"duration,omitempty"`
	EndsAt   time.Time `json:"ends_at,omitzero"`
	Comment  string    `json:"comment,omitempty"`
}

// SilenceInfo is a silence (GET /v1/monitor/silences).
type SilenceInfo struct {
	ID        string    `json:"id"`
	Matchers  []string  `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	Comment   string    `json:"comment,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
	Active    bool      `json:"active"`
}

// Channel types.
const (
	ChannelWebhook      = "webhook"
	ChannelSlack        = "slack"
	ChannelPagerDuty    = "pagerduty"
	ChannelEmail        = "email"
	ChannelAlertmanager = "alertmanager"
)

// ChannelSpec is POST /v1/monitor/channels: a notification channel. Secrets (Password,
// RoutingKey, a Slack URL's path) are replicated to members but never answered by reads.
type ChannelSpec struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// URL: webhook, slack and alertmanager targets; pagerduty's Events API v2 endpoint
	// (default https://events.pagerduty.com/v2/enqueue). http or https only.
	URL        string `json:"url,omitempty"`
	RoutingKey string `json:"routing_key,omitempty"` // pagerduty integration key
	// Email: SMTP server HOST:PORT, sender, recipients, credentials (AUTH PLAIN, only over
	// TLS) and StartTLS: required (default), opportunistic or none.
	SMTPHost           string   `json:"smtp_host,omitempty"`
	From               string   `json:"from,omitempty"`
	To                 []string `json:"to,omitempty"`
	Username           string   `json:"username,omitempty"`
	Password           string   `json:"password,omitempty"`
	StartTLS           string   `json:"starttls,omitempty"`
	InsecureSkipVerify bool     `json:"insecure_skip_verify,omitempty"`
}

// ChannelInfo is a channel as reads answer it: secrets are masked.
type ChannelInfo struct {
	ChannelSpec
	CreatedAt time.Time `json:"created_at"`
}

// ChannelAttempt is one delivery attempt (GET /v1/monitor/channels/{name}/history).
type ChannelAttempt struct {
	Channel    string    `json:"channel"`
	Node       string    `json:"node"`
	At         time.Time `json:"at"`
	Rule       string    `json:"rule,omitempty"`
	Status     string    `json:"status"` // firing, resolved or test
	Attempt    int       `json:"attempt"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
	DurationMs float64   `json:"duration_ms"`
}

// ChannelTestResult is POST /v1/monitor/channels/{name}/test.
type ChannelTestResult struct {
	Channel  string `json:"channel"`
	OK       bool   `json:"ok"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
}
