package alert

import (
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/rads-lang/constellation/api"
)

// resolvedKeep is how long a resolved alert stays in the state record (visible with
// `monitor alerts --all`) after its resolution was notified.
const resolvedKeep = 15 * time.Minute

// AlertRecord is one alert of a rule, replicated inside its StateRecord.
type AlertRecord struct {
	Fingerprint string            `cbor:"1,keyasint"`
	Labels      map[string]string `cbor:"2,keyasint"`
	Annotations map[string]string `cbor:"3,keyasint,omitempty"`
	Value       float64           `cbor:"4,keyasint"`
	State       string            `cbor:"5,keyasint"`
	ActiveAt    time.Time         `cbor:"6,keyasint"`
	FiredAt     time.Time         `cbor:"7,keyasint,omitempty"`
	ResolvedAt  time.Time         `cbor:"8,keyasint,omitempty"`
	// NotifiedAt is the last firing notification (zero: none yet). It is written in the
	// same replicated record as the transition, before the delivery starts, so a new owner
	// never sends it again.
	NotifiedAt   time.Time `cbor:"9,keyasint,omitempty"`
	ResolvedSent bool      `cbor:"10,keyasint,omitempty"`
	Silenced     bool      `cbor:"11,keyasint,omitempty"`
}

// StateRecord is the replicated firing state of one rule, written by its evaluating owner.
type StateRecord struct {
	Rule        string        `cbor:"1,keyasint"`
	Owner       string        `cbor:"2,keyasint,omitempty"` // the node that wrote it
	EvaluatedAt time.Time     `cbor:"3,keyasint,omitempty"`
	LastError   string        `cbor:"4,keyasint,omitempty"`
	Alerts      []AlertRecord `cbor:"5,keyasint,omitempty"` // sorted by fingerprint
}

// Sample is one element of a rule's evaluation: an alert candidate.
type Sample struct {
	Labels map[string]string
	Value  float64
	// Extra annotations the evaluation adds (an anomaly rule's baseline and score).
	Extra map[string]string
}

// Notification is a message to send: one alert's firing or resolution.
type Notification struct {
	Rule     string
	Channels []string
	Status   string // firing or resolved
	Alert    AlertRecord
}

// Input is what one evaluation step sees. The functions are injected so the step is pure.
type Input struct {
	Rule    RuleRecord
	Samples []Sample
	Err     error // the evaluation failed: alerts stay as they are
	Now     time.Time
	// Silenced reports whether an alert with these labels is silenced now (may be nil).
	Silenced func(labels map[string]string) bool
	// Expand expands a template for one alert (may be nil: templates are left as they are).
	Expand func(text string, labels map[string]string, value float64) string
}

// Fingerprint identifies an alert by its labels.
func Fingerprint(l map[string]string) string {
	return fmt.Sprintf("%016x", labels.FromMap(l).Hash())
}

// alertLabels are a sample's labels without the metric name, plus the rule's labels, its
// name and severity.
func alertLabels(r RuleRecord, s Sample, expand func(string, map[string]string, float64) string) map[string]string {
	l := make(map[string]string, len(s.Labels)+len(r.Labels)+2)
	for k, v := range s.Labels {
		if k != labels.MetricName {
			l[k] = v
		}
	}
	for k, v := range r.Labels {
		if expand != nil {
			v = expand(v, s.Labels, s.Value)
		}
		l[k] = v
	}
	l[labels.AlertName] = r.Name
	l["severity"] = r.Severity
	return l
}

// Step advances a rule's alerts by one evaluation and returns the new state and the
// notifications to send. Semantics (Prometheus's, plus notification bookkeeping):
//
//   - a new element of the result is pending from now; it fires once it has been in every
//     evaluation for the rule's For (at once when For is 0);
//   - a pending alert missing from the result is dropped; a firing one is resolved;
//   - a firing alert is notified once (again every Repeat if set) unless silenced; a
//     resolved alert whose firing was notified gets one resolved notification;
//   - resolved alerts are kept resolvedKeep after their resolution, then dropped;
//   - an evaluation error changes no alert (the error is recorded).
func Step(prev StateRecord, in Input) (StateRecord, []Notification) {
	r := in.Rule
	next := StateRecord{Rule: r.Name, Owner: prev.Owner, EvaluatedAt: in.Now}
	old := map[string]AlertRecord{}
	for _, a := range prev.Alerts {
		old[a.Fingerprint] = a
	}
	cur := map[string]AlertRecord{}
	if in.Err != nil {
		next.LastError = in.Err.Error()
		cur = old
	} else {
		for _, s := range in.Samples {
			l := alertLabels(r, s, in.Expand)
			fp := Fingerprint(l)
			if _, dup := cur[fp]; dup {
				continue
			}
			if len(cur) >= maxAlertsPerRule {
				next.LastError = fmt.Sprintf("the result has more than %d elements: the others are ignored", maxAlertsPerRule)
				break
			}
			a, ok := old[fp]
			if !ok || a.State == api.AlertResolved {
				a = AlertRecord{Fingerprint: fp, Labels: l, State: api.AlertPending, ActiveAt: in.Now}
			}
			a.Value = s.Value
			a.Annotations = annotations(r, s, l, in.Expand)
			cur[fp] = a
		}
		for fp, a := range old {
			if _, ok := cur[fp]; ok {
				continue
			}
			switch a.State {
			case api.AlertFiring:
				a.State, a.ResolvedAt = api.AlertResolved, in.Now
				cur[fp] = a
			case api.AlertResolved:
				cur[fp] = a
			}
		}
	}
	var out []Notification
	fps := make([]string, 0, len(cur))
	for fp := range cur {
		fps = append(fps, fp)
	}
	sort.Strings(fps)
	for _, fp := range fps {
		a := cur[fp]
		a.Silenced = in.Silenced != nil && a.State != api.AlertResolved && in.Silenced(a.Labels)
		if a.State == api.AlertPending && in.Now.Sub(a.ActiveAt) >= r.For {
			a.State, a.FiredAt = api.AlertFiring, in.Now
		}
		switch a.State {
		case api.AlertFiring:
			due := a.NotifiedAt.IsZero() || (r.Repeat > 0 && in.Now.Sub(a.NotifiedAt) >= r.Repeat)
			if due && !a.Silenced {
				a.NotifiedAt = in.Now
				out = append(out, Notification{Rule: r.Name, Channels: r.Channels, Status: api.AlertFiring, Alert: a})
			}
		case api.AlertResolved:
			if !a.NotifiedAt.IsZero() && !a.ResolvedSent {
				a.ResolvedSent = true
				out = append(out, Notification{Rule: r.Name, Channels: r.Channels, Status: api.AlertResolved, Alert: a})
			}
			if in.Now.Sub(a.ResolvedAt) >= resolvedKeep {
				continue
			}
		}
		next.Alerts = append(next.Alerts, a)
	}
	return next, out
}

// annotations are the rule's annotations and message expanded for one alert.
func annotations(r RuleRecord, s Sample, l map[string]string, expand func(string, map[string]string, float64) string) map[string]string {
	if len(r.Annotations) == 0 && r.Message == "" && len(s.Extra) == 0 {
		return nil
	}
	out := make(map[string]string, len(r.Annotations)+len(s.Extra)+1)
	maps.Copy(out, s.Extra)
	ex := func(t string) string {
		if expand == nil {
			return t
		}
		return expand(t, l, s.Value)
	}
	for k, v := range r.Annotations {
		out[k] = ex(v)
	}
	if r.Message != "" {
		out["message"] = ex(r.Message)
	}
	return out
}
