package alert

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/rads-lang/constellation/api"
)

// Replicated collections (LWW entries, records encoded with state.Encode).
const (
	CollRules    = "alert_rules"    // rule name -> RuleRecord (multi-writer intent)
	CollState    = "alert_state"    // rule name -> StateRecord (written by the rule's owner)
	CollSilences = "alert_silences" // silence ID -> SilenceRecord
	CollChannels = "alert_channels" // channel name -> ChannelRecord
	CollHistory  = "alert_history"  // channel name + "/" + node -> HistoryRecord (that node's attempts)
)

// Limits.
const (
	maxNameLen       = 128
	maxExprLen       = 8 << 10
	maxTemplateLen   = 4 << 10
	maxLabels        = 32
	maxAlertsPerRule = 500 // a rule whose result is larger keeps the first alerts (by fingerprint)
	maxMatchers      = 16
	maxHistory       = 50 // attempts kept per channel and node
)

// Errors the API classifies.
var (
	ErrRuleNotFound    = errors.New("alert rule not found")
	ErrSilenceNotFound = errors.New("silence not found")
	ErrChannelNotFound = errors.New("notification channel not found")
	ErrInvalid         = errors.New("invalid")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// RuleRecord is a rule as replicated.
type RuleRecord struct {
	Name        string            `cbor:"1,keyasint"`
	Kind        string            `cbor:"2,keyasint,omitempty"`
	Expr        string            `cbor:"3,keyasint"`
	For         time.Duration     `cbor:"4,keyasint,omitempty"`
	Severity    string            `cbor:"5,keyasint,omitempty"`
	Message     string            `cbor:"6,keyasint,omitempty"`
	Labels      map[string]string `cbor:"7,keyasint,omitempty"`
	Annotations map[string]string `cbor:"8,keyasint,omitempty"`
	Channels    []string          `cbor:"9,keyasint,omitempty"`
	Interval    time.Duration     `cbor:"10,keyasint,omitempty"`
	Repeat      time.Duration     `cbor:"11,keyasint,omitempty"`
	Anomaly     *AnomalyParams    `cbor:"12,keyasint,omitempty"`
	CreatedAt   time.Time         `cbor:"13,keyasint"`
	UpdatedBy   string            `cbor:"14,keyasint,omitempty"`
}

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:-]*$`)
	labelRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	seedForRE = regexp.MustCompile(`(?s)^(.*\S)\s+for\s+([0-9][0-9a-z]*)\s*$`)
	pql       = parser.NewParser(parser.Options{})
)

// ParseDuration accepts Go durations ("1h30m", "90s") and Prometheus ones ("1d", "2w").
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, fmt.Errorf("duration %q is negative", s)
		}
		return d, nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a duration such as 90s, 5m, 1h30m or 1d", s)
	}
	return time.Duration(d), nil
}

// ParseExpr parses a PromQL expression; a syntax error names its position (line:col).
func ParseExpr(expr string) (parser.Expr, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, invalidf("expr is required: a PromQL expression such as 'avg(constellation_node_cpu_percent) > 90'")
	}
	if len(expr) > maxExprLen {
		return nil, invalidf("expr of %d bytes exceeds %d", len(expr), maxExprLen)
	}
	e, err := pql.ParseExpr(expr)
	if err != nil {
		return nil, invalidf("expr %q: %v", expr, err)
	}
	return e, nil
}

// RuleFromSpec validates a spec and builds its record. It refuses an expression that does
// not parse (naming the position), a bad template, duration or anomaly parameter.
func RuleFromSpec(spec api.AlertRuleSpec, now time.Time, node string) (RuleRecord, error) {
	r := RuleRecord{Name: spec.Name, Kind: spec.Kind, Severity: spec.Severity, Message: spec.Message,
		Labels: spec.Labels, Annotations: spec.Annotations, Channels: spec.Channels, CreatedAt: now.UTC(), UpdatedBy: node}
	if !nameRE.MatchString(r.Name) || len(r.Name) > maxNameLen {
		return r, invalidf("rule name %q: want letters, digits, _ . : - (starting with a letter or _), at most %d bytes", r.Name, maxNameLen)
	}
	switch r.Kind {
	case "":
		r.Kind = api.RuleThreshold
	case api.RuleThreshold, api.RuleAnomaly:
	default:
		return r, invalidf("kind %q: want threshold or anomaly", r.Kind)
	}
	expr := strings.TrimSpace(spec.Expr)
	forStr := spec.For
	if m := seedForRE.FindStringSubmatch(expr); m != nil { // the seed's "avg(x) > 90 for 5m"
		if _, err := ParseDuration(m[2]); err == nil {
			if forStr != "" {
				return r, invalidf("expr ends with 'for %s' and for is %q too: give one", m[2], forStr)
			}
			expr, forStr = m[1], m[2]
		}
	}
	e, err := ParseExpr(expr)
	if err != nil {
		return r, err
	}
	if t := e.Type(); t != parser.ValueTypeVector && t != parser.ValueTypeScalar {
		return r, invalidf("expr %q is a %s: an alert needs an instant vector (a range vector needs a function such as rate())", expr, t)
	}
	r.Expr = expr
	for _, d := range []struct {
		name string
		s    string
		to   *time.Duration
	}{{"for", forStr, &r.For}, {"interval", spec.Interval, &r.Interval}, {"repeat", spec.Repeat, &r.Repeat}} {
		v, err := ParseDuration(d.s)
		if err != nil {
			return r, invalidf("%s: %v", d.name, err)
		}
		*d.to = v
	}
	if r.Interval != 0 && r.Interval < 100*time.Millisecond {
		return r, invalidf("interval %s is below the 100ms minimum", r.Interval)
	}
	switch r.Severity {
	case "":
		r.Severity = "warning"
	case "critical", "error", "warning", "info":
	default:
		return r, invalidf("severity %q: want critical, error, warning or info", r.Severity)
	}
	if len(r.Labels)+len(r.Annotations) > maxLabels {
		return r, invalidf("%d labels and annotations: at most %d", len(r.Labels)+len(r.Annotations), maxLabels)
	}
	for k, v := range r.Labels {
		if !labelRE.MatchString(k) {
			return r, invalidf("label name %q: want [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if k == "alertname" || k == "severity" {
			return r, invalidf("label %q is set by the rule itself (its name, its severity)", k)
		}
		if err := checkTemplate("label "+k, v); err != nil {
			return r, err
		}
	}
	for k, v := range r.Annotations {
		if !labelRE.MatchString(k) {
			return r, invalidf("annotation name %q: want [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if err := checkTemplate("annotation "+k, v); err != nil {
			return r, err
		}
	}
	if err := checkTemplate("message", r.Message); err != nil {
		return r, err
	}
	seen := map[string]bool{}
	for _, c := range r.Channels {
		if !nameRE.MatchString(c) {
			return r, invalidf("channel name %q: want letters, digits, _ . : -", c)
		}
		if seen[c] {
			return r, invalidf("channel %q listed twice", c)
		}
		seen[c] = true
	}
	sort.Strings(r.Channels)
	if r.Kind == api.RuleAnomaly {
		p, err := anomalyFromSpec(spec.Anomaly)
		if err != nil {
			return r, err
		}
		if _, ok := e.(*parser.MatrixSelector); ok || e.Type() != parser.ValueTypeVector {
			return r, invalidf("anomaly expr %q must be an instant vector (the watched series)", expr)
		}
		r.Anomaly = &p
	} else if spec.Anomaly != nil {
		return r, invalidf("anomaly parameters given for a %s rule: set kind to anomaly", r.Kind)
	}
	return r, nil
}

// Info converts a record to its API form.
func (r RuleRecord) Info() api.AlertRuleInfo {
	s := api.AlertRuleSpec{Name: r.Name, Kind: r.Kind, Expr: r.Expr, Severity: r.Severity, Message: r.Message,
		Labels: r.Labels, Annotations: r.Annotations, Channels: r.Channels}
	if r.For > 0 {
		s.For = r.For.String()
	}
	if r.Interval > 0 {
		s.Interval = r.Interval.String()
	}
	if r.Repeat > 0 {
		s.Repeat = r.Repeat.String()
	}
	if r.Anomaly != nil {
		s.Anomaly = r.Anomaly.Spec()
	}
	return api.AlertRuleInfo{AlertRuleSpec: s, CreatedAt: r.CreatedAt, UpdatedBy: r.UpdatedBy}
}
