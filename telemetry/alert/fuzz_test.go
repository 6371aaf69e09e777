package alert

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

// FuzzRuleSpec: any API body is either refused with an error or yields a rule that
// encodes, decodes to the same record and evaluates without panicking.
func FuzzRuleSpec(f *testing.F) {
	for _, s := range []string{
		`{"name":"HighCPU","expr":"avg(cpu_percent) > 90 for 5m","severity":"critical","message":"CPU {{value}}% on {{instance}}"}`,
		`{"name":"a","expr":"sum by (node) (rate(x[5m])) > 1","for":"1d","labels":{"team":"{{ $labels.node }}"},"channels":["ops"]}`,
		`{"name":"t","kind":"anomaly","expr":"rate(req[5m])","anomaly":{"season":"1h","buckets":12,"window":"2d","step":"1m","threshold":3.5,"min_samples":10,"direction":"above"}}`,
		`{"name":"b","expr":"avg(x","message":"{{ if"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var spec api.AlertRuleSpec
		if json.Unmarshal(b, &spec) != nil {
			return
		}
		r, err := RuleFromSpec(spec, time.Unix(1, 0), "n")
		if err != nil {
			return
		}
		enc, err := state.Encode(r)
		if err != nil {
			return // too large to replicate: AddRule refuses it
		}
		var back RuleRecord
		if err := state.Decode(enc, &back); err != nil {
			t.Fatalf("decode of an encoded rule: %v", err)
		}
		enc2, _ := state.Encode(back)
		if string(enc) != string(enc2) {
			t.Fatal("rule record does not round-trip")
		}
		expand := func(text string, l map[string]string, v float64) string {
			return expandTemplate(context.Background(), text, l, v, time.Unix(1, 0), nil)
		}
		smp := []Sample{{Labels: map[string]string{"instance": "i", "node": "n"}, Value: 1}}
		s, _ := Step(StateRecord{}, Input{Rule: r, Samples: smp, Now: time.Unix(2, 0), Expand: expand})
		Step(s, Input{Rule: r, Now: time.Unix(3, 0), Expand: expand})
		_ = r.Info()
	})
}

// FuzzTemplate: a template either is refused at creation or expands without panicking.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"{{value}}", "{{ $labels.instance }}", "{{instance}} {{end}}", "{{ humanize $value }}", "{{ range $k, $v := $labels }}{{$k}}{{end}}", "{{- x -}}", "{{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkTemplate("t", s) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = expandTemplate(ctx, s, map[string]string{"instance": "web-1"}, 1.5, time.Unix(1, 0), nil)
	})
}

// FuzzRecords: replicated records from other nodes (untrusted) decode with limits or are
// refused, and a decoded state record can be stepped.
func FuzzRecords(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	for _, v := range []any{
		StateRecord{Rule: "r", Owner: "n", EvaluatedAt: now, Alerts: []AlertRecord{{Fingerprint: "f", Labels: map[string]string{"a": "b"}, State: "firing", ActiveAt: now, NotifiedAt: now}}},
		SilenceRecord{ID: "x", Matchers: []string{"a=b"}, StartsAt: now, EndsAt: now.Add(time.Hour)},
		ChannelRecord{Name: "c", Type: "webhook", URL: "http://h/"},
		HistoryRecord{Channel: "c", Node: "n", Attempts: []AttemptRecord{{At: now, Status: "firing", Attempt: 1}}},
		RuleRecord{Name: "r", Expr: "x > 1", Anomaly: &DefaultAnomaly},
	} {
		b, _ := state.Encode(v)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var st StateRecord
		if state.Decode(b, &st) == nil {
			r := RuleRecord{Name: "r", Severity: "warning"}
			Step(st, Input{Rule: r, Now: now})
			_ = Fingerprint(map[string]string{"a": st.Rule})
		}
		var sr SilenceRecord
		if state.Decode(b, &sr) == nil {
			_ = sr.Matches(map[string]string{"a": "b"})
			_ = sr.Info(now)
		}
		var cr ChannelRecord
		if state.Decode(b, &cr) == nil {
			_ = cr.Info()
		}
		var hr HistoryRecord
		_ = state.Decode(b, &hr)
		var rr RuleRecord
		if state.Decode(b, &rr) == nil {
			_ = rr.Info()
			if rr.Anomaly != nil {
				rr.Anomaly.Judge([]Point{{T: now, V: 1}}, Point{T: now.Add(time.Minute), V: 2})
			}
		}
	})
}
