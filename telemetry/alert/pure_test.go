package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

func mustRule(t *testing.T, spec api.AlertRuleSpec) RuleRecord {
	t.Helper()
	r, err := RuleFromSpec(spec, time.Unix(0, 0), "n")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStepLifecycle walks the state machine: pending for the For duration, firing and
// notified once, repeated every Repeat, a pending alert that disappears is dropped, a
// firing one resolves and is notified once, then forgotten after resolvedKeep; an
// evaluation error keeps the alerts.
func TestStepLifecycle(t *testing.T) {
	r := mustRule(t, api.AlertRuleSpec{Name: "HighCPU", Expr: "cpu > 90", For: "1m", Repeat: "1h", Channels: []string{"ops"}, Message: "{{value}} on {{instance}}"})
	t0 := time.Unix(1_700_000_000, 0)
	smp := []Sample{{Labels: map[string]string{"__name__": "cpu", "instance": "a"}, Value: 95}}
	expand := func(text string, l map[string]string, v float64) string {
		return expandTemplate(context.Background(), text, l, v, t0, nil)
	}
	step := func(prev StateRecord, at time.Duration, s []Sample, err error) (StateRecord, []Notification) {
		return Step(prev, Input{Rule: r, Samples: s, Err: err, Now: t0.Add(at), Expand: expand})
	}
	s, n := step(StateRecord{}, 0, smp, nil)
	if len(n) != 0 || len(s.Alerts) != 1 || s.Alerts[0].State != api.AlertPending {
		t.Fatalf("t=0: %+v %+v", s, n)
	}
	a := s.Alerts[0]
	if a.Labels["alertname"] != "HighCPU" || a.Labels["severity"] != "warning" || a.Labels["__name__"] != "" || a.Annotations["message"] != "95 on a" {
		t.Fatalf("alert %+v", a)
	}
	s, n = step(s, 59*time.Second, smp, nil)
	if len(n) != 0 || s.Alerts[0].State != api.AlertPending {
		t.Fatalf("t=59s: %+v %+v", s, n)
	}
	s, n = step(s, 60*time.Second, smp, nil)
	if len(n) != 1 || n[0].Status != api.AlertFiring || s.Alerts[0].State != api.AlertFiring || n[0].Channels[0] != "ops" {
		t.Fatalf("t=60s: %+v %+v", s, n)
	}
	s, n = step(s, 2*time.Minute, nil, errors.New("query failed"))
	if len(n) != 0 || len(s.Alerts) != 1 || s.LastError != "query failed" {
		t.Fatalf("error: %+v %+v", s, n)
	}
	s, n = step(s, 30*time.Minute, smp, nil)
	if len(n) != 0 {
		t.Fatalf("notified again before the repeat interval: %+v", n)
	}
	s, n = step(s, 61*time.Minute, smp, nil)
	if len(n) != 1 {
		t.Fatalf("repeat: %+v", n)
	}
	s, n = step(s, 62*time.Minute, nil, nil)
	if len(n) != 1 || n[0].Status != api.AlertResolved || s.Alerts[0].State != api.AlertResolved {
		t.Fatalf("resolve: %+v %+v", s, n)
	}
	s, n = step(s, 63*time.Minute, nil, nil)
	if len(n) != 0 || len(s.Alerts) != 1 {
		t.Fatalf("after the resolution: %+v %+v", s, n)
	}
	s, _ = step(s, 62*time.Minute+resolvedKeep, nil, nil)
	if len(s.Alerts) != 0 {
		t.Fatalf("resolved alert kept: %+v", s)
	}
	// A pending alert that disappears is dropped without a word.
	s, _ = step(StateRecord{}, 0, smp, nil)
	s, n = step(s, 10*time.Second, nil, nil)
	if len(s.Alerts) != 0 || len(n) != 0 {
		t.Fatalf("pending gone: %+v %+v", s, n)
	}
}

// TestStepSilence: a silenced firing alert is not notified; when the silence ends it is; a
// resolution is sent only for a notified alert.
func TestStepSilence(t *testing.T) {
	r := mustRule(t, api.AlertRuleSpec{Name: "Disk", Expr: "disk > 1", Channels: []string{"ops"}})
	t0 := time.Unix(1_700_000_000, 0)
	sil, err := SilenceFromSpec(api.SilenceSpec{Matchers: []string{"alertname=Disk", `node=~"edge-.*"`}, Duration: "1h"}, t0, "n")
	if err != nil {
		t.Fatal(err)
	}
	smp := []Sample{{Labels: map[string]string{"node": "edge-1"}, Value: 2}, {Labels: map[string]string{"node": "core-1"}, Value: 2}}
	in := func(at time.Duration, s []Sample) Input {
		now := t0.Add(at)
		return Input{Rule: r, Samples: s, Now: now, Silenced: silencer([]SilenceRecord{sil}, now)}
	}
	s, n := Step(StateRecord{}, in(0, smp))
	if len(n) != 1 || n[0].Alert.Labels["node"] != "core-1" {
		t.Fatalf("want only core-1 notified: %+v", n)
	}
	silenced := 0
	for _, a := range s.Alerts {
		if a.Silenced {
			silenced++
		}
	}
	if silenced != 1 {
		t.Fatalf("silenced alerts %d, want 1: %+v", silenced, s.Alerts)
	}
	s, n = Step(s, in(30*time.Minute, smp))
	if len(n) != 0 {
		t.Fatalf("notified during the silence: %+v", n)
	}
	s, n = Step(s, in(61*time.Minute, smp))
	if len(n) != 1 || n[0].Alert.Labels["node"] != "edge-1" {
		t.Fatalf("after the silence: %+v", n)
	}
	_, n = Step(s, in(62*time.Minute, nil))
	if len(n) != 2 {
		t.Fatalf("resolutions: %+v", n)
	}
	// Silenced throughout: no resolution either.
	s, _ = Step(StateRecord{}, in(0, smp[:1]))
	_, n = Step(s, in(time.Minute, nil))
	if len(n) != 0 {
		t.Fatalf("resolution of a never-notified alert: %+v", n)
	}
}

// TestRuleParseErrors: a rule that does not parse is refused at creation with the position.
func TestRuleParseErrors(t *testing.T) {
	for _, c := range []struct {
		spec api.AlertRuleSpec
		want string
	}{
		{api.AlertRuleSpec{Name: "a", Expr: "avg(cpu_percent > 90"}, "1:21: parse error"},
		{api.AlertRuleSpec{Name: "a", Expr: "sum(rate(x[5m])) by (node) >"}, "1:29: parse error"},
		{api.AlertRuleSpec{Name: "a", Expr: "x[5m]"}, "range vector"},
		{api.AlertRuleSpec{Name: "a", Expr: `"text"`}, "string"},
		{api.AlertRuleSpec{Name: "a", Expr: ""}, "expr is required"},
		{api.AlertRuleSpec{Name: "bad name", Expr: "x"}, "rule name"},
		{api.AlertRuleSpec{Name: "a", Expr: "x", For: "5 minutes"}, "for: duration"},
		{api.AlertRuleSpec{Name: "a", Expr: "x", Severity: "urgent"}, "severity"},
		{api.AlertRuleSpec{Name: "a", Expr: "x", Message: "{{ $value "}, "message:"},
		{api.AlertRuleSpec{Name: "a", Expr: "x", Message: "{{ nosuchfunc 1 }}"}, "nosuchfunc"},
		{api.AlertRuleSpec{Name: "a", Expr: "x", Labels: map[string]string{"alertname": "b"}}, "set by the rule"},
		{api.AlertRuleSpec{Name: "a", Expr: "x > 1 for 5m", For: "1m"}, "give one"},
		{api.AlertRuleSpec{Name: "a", Expr: "x", Kind: "magic"}, "kind"},
		{api.AlertRuleSpec{Name: "a", Expr: "x", Anomaly: &api.AnomalySpec{}}, "set kind to anomaly"},
		{api.AlertRuleSpec{Name: "a", Expr: "x", Kind: "anomaly", Anomaly: &api.AnomalySpec{Threshold: -1}}, "threshold"},
		{api.AlertRuleSpec{Name: "a", Expr: "x", Kind: "anomaly", Anomaly: &api.AnomalySpec{Window: "7d", Step: "1s"}}, "raise the step"},
	} {
		_, err := RuleFromSpec(c.spec, time.Now(), "n")
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want one containing %q", c.spec, err, c.want)
		}
	}
	// The seed's condition form: "for" moves out of the expression.
	r := mustRule(t, api.AlertRuleSpec{Name: "high_cpu", Expr: "avg(cpu_percent) > 90 for 5m", Severity: "critical"})
	if r.Expr != "avg(cpu_percent) > 90" || r.For != 5*time.Minute {
		t.Fatalf("seed form: %+v", r)
	}
	r = mustRule(t, api.AlertRuleSpec{Name: "b", Expr: "up == 0", For: "1d"})
	if r.For != 24*time.Hour {
		t.Fatalf("1d: %v", r.For)
	}
}

// TestTemplates: Prometheus forms and the seed's short forms.
func TestTemplates(t *testing.T) {
	l := map[string]string{"instance": "web-1", "node": "n1"}
	for in, want := range map[string]string{
		"CPU {{ $value }}% on {{ $labels.instance }}":      "CPU 91.5% on web-1",
		"Cluster CPU usage critical: {{value}}%":           "Cluster CPU usage critical: 91.5%",
		"Instance {{instance}} restarting on {{ node }}":   "Instance web-1 restarting on n1",
		"{{ if gt $value 90.0 }}hot{{ else }}ok{{ end }}":  "hot",
		"{{ $value | humanize }} {{ missing }}|":           "91.5 |",
		"{{ printf \"%.0f\" $value }} {{- \" x\" }} plain": "92 x plain",
	} {
		if err := checkTemplate("t", in); err != nil {
			t.Errorf("%q refused: %v", in, err)
			continue
		}
		if got := expandTemplate(context.Background(), in, l, 91.5, time.Now(), nil); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}

func TestSilenceSpec(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		spec api.SilenceSpec
		want string
	}{
		{api.SilenceSpec{Duration: "1h"}, "at least one matcher"},
		{api.SilenceSpec{Matchers: []string{"alertname"}, Duration: "1h"}, "want name=value"},
		{api.SilenceSpec{Matchers: []string{"a=~("}, Duration: "1h"}, "matcher"},
		{api.SilenceSpec{Matchers: []string{"a=b"}}, "needs a duration"},
		{api.SilenceSpec{Matchers: []string{"a=b"}, Duration: "-1h"}, "positive"},
		{api.SilenceSpec{Matchers: []string{"a=b"}, EndsAt: now.Add(-time.Hour)}, "not in the future"},
	} {
		if _, err := SilenceFromSpec(c.spec, now, "n"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
	s, err := SilenceFromSpec(api.SilenceSpec{Matchers: []string{"alertname=HighCPU", "severity!=info", `instance=~"web-.*"`, "node!~edge.*"}, Duration: "2h"}, now, "n")
	if err != nil {
		t.Fatal(err)
	}
	match := map[string]string{"alertname": "HighCPU", "severity": "critical", "instance": "web-3", "node": "core"}
	if !s.Matches(match) || !s.Active(now.Add(time.Hour)) || s.Active(now.Add(3*time.Hour)) {
		t.Fatal("silence should match for 2h")
	}
	match["node"] = "edge-2"
	if s.Matches(match) {
		t.Fatal("node!~edge.* matched edge-2")
	}
}

func TestChannelSpec(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		spec api.ChannelSpec
		want string
	}{
		{api.ChannelSpec{Name: "a", Type: "webhook", URL: "ftp://example.com/x"}, `scheme must be http or https, not "ftp"`},
		{api.ChannelSpec{Name: "a", Type: "webhook", URL: "example.com/hook"}, "scheme must be http or https"},
		{api.ChannelSpec{Name: "a", Type: "slack"}, "needs a url"},
		{api.ChannelSpec{Name: "a", Type: "pagerduty"}, "routing_key"},
		{api.ChannelSpec{Name: "a", Type: "email", SMTPHost: "mail.example.com", From: "a@b.c", To: []string{"d@e.f"}}, "HOST:PORT"},
		{api.ChannelSpec{Name: "a", Type: "email", SMTPHost: "h:25", From: "nobody", To: []string{"d@e.f"}}, "from"},
		{api.ChannelSpec{Name: "a", Type: "email", SMTPHost: "h:25", From: "a@b.c"}, "recipients"},
		{api.ChannelSpec{Name: "a", Type: "email", SMTPHost: "h:25", From: "a@b.c", To: []string{"d@e.f"}, StartTLS: "maybe"}, "starttls"},
		{api.ChannelSpec{Name: "a", Type: "webhook", URL: "http://h/", SMTPHost: "h:25"}, "smtp settings"},
		{api.ChannelSpec{Name: "a", Type: "sms"}, "channel type"},
	} {
		if _, err := ChannelFromSpec(c.spec, now); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
	// Secrets never leave through reads.
	for _, spec := range []api.ChannelSpec{
		{Name: "pd", Type: "pagerduty", RoutingKey: "R0UT1NGKEY"},
		{Name: "sl", Type: "slack", URL: "https://hooks.slack.com/services/T000/B000/XXXSECRET"},
		{Name: "em", Type: "email", SMTPHost: "h:587", From: "a@b.c", To: []string{"d@e.f"}, Username: "u", Password: "P4SSW0RD"},
		{Name: "wh", Type: "webhook", URL: "https://user:PW@example.com/hook?token=T0KEN"},
	} {
		r, err := ChannelFromSpec(spec, now)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(r.Info())
		for _, secret := range []string{"R0UT1NGKEY", "XXXSECRET", "P4SSW0RD", "PW@", "T0KEN"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s: list shows the secret %s: %s", spec.Name, secret, b)
			}
		}
	}
}

// TestPayloads: the channel payloads follow their services' formats.
func TestPayloads(t *testing.T) {
	a := AlertRecord{Fingerprint: "00000000000000ab", Labels: map[string]string{"alertname": "HighCPU", "severity": "critical", "instance": "web-1"},
		Annotations: map[string]string{"message": "CPU 95"}, Value: 95, ActiveAt: time.Unix(100, 0), FiredAt: time.Unix(160, 0), ResolvedAt: time.Unix(400, 0)}
	rc := ChannelRecord{Name: "pd", Type: "pagerduty", RoutingKey: "rk"}
	dec := func(typ, status string) map[string]any {
		b, err := payload(typ, rc, message{Node: "n1", Rule: "HighCPU", Status: status, Alert: a})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	pd := dec("pagerduty", "firing")
	p := pd["payload"].(map[string]any)
	if pd["event_action"] != "trigger" || pd["routing_key"] != "rk" || pd["dedup_key"] != "HighCPU/00000000000000ab" ||
		p["summary"] != "CPU 95" || p["source"] != "web-1" || p["severity"] != "critical" {
		t.Fatalf("pagerduty trigger %v", pd)
	}
	pr := dec("pagerduty", "resolved")
	if pr["event_action"] != "resolve" || pr["dedup_key"] != pd["dedup_key"] || pr["payload"] != nil {
		t.Fatalf("pagerduty resolve %v", pr)
	}
	sl := dec("slack", "firing")
	if !strings.Contains(sl["text"].(string), "[FIRING] HighCPU (critical): CPU 95") || len(sl["attachments"].([]any)) != 1 {
		t.Fatalf("slack %v", sl)
	}
	am := dec("alertmanager", "resolved")
	al := am["alerts"].([]any)[0].(map[string]any)
	if am["version"] != "4" || am["status"] != "resolved" || al["endsAt"] != "1970-01-01T00:06:40Z" || al["startsAt"] != "1970-01-01T00:01:40Z" ||
		al["labels"].(map[string]any)["alertname"] != "HighCPU" || am["receiver"] != "pd" {
		t.Fatalf("alertmanager %v", am)
	}
}

// TestFitRecord: a state too large to replicate keeps the firing alerts that fit and
// drops the notifications of the others.
func TestFitRecord(t *testing.T) {
	big := strings.Repeat("x", 3000)
	var st StateRecord
	var notes []Notification
	for i := range 200 {
		a := AlertRecord{Fingerprint: fmt.Sprintf("%04d", i), State: api.AlertPending, Annotations: map[string]string{"message": big}}
		if i%2 == 0 {
			a.State = api.AlertFiring
			notes = append(notes, Notification{Alert: a})
		}
		st.Alerts = append(st.Alerts, a)
	}
	out, kept := fitRecord(st, notes)
	if _, err := state.Encode(out); err != nil || len(out.Alerts) == 0 || len(out.Alerts) >= 200 || out.LastError == "" {
		t.Fatalf("kept %d alerts (%v), error %q", len(out.Alerts), err, out.LastError)
	}
	for _, a := range out.Alerts {
		if a.State != api.AlertFiring {
			t.Fatalf("kept a pending alert while firing ones were dropped")
		}
	}
	if len(kept) != len(out.Alerts) {
		t.Fatalf("%d notifications for %d kept alerts", len(kept), len(out.Alerts))
	}
}
