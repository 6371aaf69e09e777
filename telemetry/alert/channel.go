package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

// ChannelRecord is a notification channel as replicated. Its credentials (password,
// routing key, a URL carrying a secret) are sealed with the cluster's secrets key when the
// node has one (Sealed); every read masks them.
type ChannelRecord struct {
	Name               string    `cbor:"1,keyasint"`
	Type               string    `cbor:"2,keyasint"`
	URL                string    `cbor:"3,keyasint,omitempty"`
	RoutingKey         string    `cbor:"4,keyasint,omitempty"`
	SMTPHost           string    `cbor:"5,keyasint,omitempty"`
	From               string    `cbor:"6,keyasint,omitempty"`
	To                 []string  `cbor:"7,keyasint,omitempty"`
	Username           string    `cbor:"8,keyasint,omitempty"`
	Password           string    `cbor:"9,keyasint,omitempty"`
	StartTLS           string    `cbor:"10,keyasint,omitempty"`
	InsecureSkipVerify bool      `cbor:"11,keyasint,omitempty"`
	CreatedAt          time.Time `cbor:"12,keyasint"`
	// Sealed holds URL, RoutingKey and Password encrypted (channelSecrets) when the node
	// has a Sealer; the clear fields then hold their masked forms only.
	Sealed []byte `cbor:"13,keyasint,omitempty"`
}

// channelSecrets is what Sealed holds.
type channelSecrets struct {
	URL        string `cbor:"1,keyasint,omitempty"`
	RoutingKey string `cbor:"2,keyasint,omitempty"`
	Password   string `cbor:"3,keyasint,omitempty"`
}

// sealPurpose binds a channel's sealed credentials to its name.
func sealPurpose(name string) string { return "alert channel " + name }

// seal moves the credentials into Sealed and leaves their masked forms in the clear fields.
func (r ChannelRecord) seal(sl Sealer) (ChannelRecord, error) {
	if sl == nil || (r.RoutingKey == "" && r.Password == "" && r.Info().URL == r.URL) {
		return r, nil // nothing secret to seal
	}
	b, err := state.Encode(&channelSecrets{URL: r.URL, RoutingKey: r.RoutingKey, Password: r.Password})
	if err != nil {
		return r, err
	}
	if r.Sealed, err = sl.Seal(sealPurpose(r.Name), b); err != nil {
		return r, err
	}
	info := r.Info()
	r.URL, r.RoutingKey, r.Password = info.URL, info.RoutingKey, info.Password
	return r, nil
}

// open restores the credentials of a sealed record (for delivery, on this node only).
func (r ChannelRecord) open(sl Sealer) (ChannelRecord, error) {
	if len(r.Sealed) == 0 {
		return r, nil
	}
	if sl == nil {
		return r, fmt.Errorf("channel %s: its credentials are sealed and this node cannot open them (start it with the cluster's --cluster-key)", r.Name)
	}
	b, err := sl.Open(sealPurpose(r.Name), r.Sealed)
	if err != nil {
		return r, fmt.Errorf("channel %s: %w", r.Name, err)
	}
	var cs channelSecrets
	if err := state.Decode(b, &cs); err != nil {
		return r, fmt.Errorf("channel %s: sealed credentials: %w", r.Name, err)
	}
	r.URL, r.RoutingKey, r.Password, r.Sealed = cs.URL, cs.RoutingKey, cs.Password, nil
	return r, nil
}

// DefaultPagerDutyURL is the Events API v2 endpoint.
const DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

const masked = "********"

func checkURL(what, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return invalidf("%s %q: %v", what, s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalidf("%s %q: the scheme must be http or https, not %q", what, s, u.Scheme)
	}
	if u.Host == "" {
		return invalidf("%s %q has no host", what, s)
	}
	return nil
}

// ChannelFromSpec validates a channel request.
func ChannelFromSpec(s api.ChannelSpec, now time.Time) (ChannelRecord, error) {
	r := ChannelRecord{Name: s.Name, Type: s.Type, URL: s.URL, RoutingKey: s.RoutingKey, SMTPHost: s.SMTPHost,
		From: s.From, To: s.To, Username: s.Username, Password: s.Password, StartTLS: s.StartTLS,
		InsecureSkipVerify: s.InsecureSkipVerify, CreatedAt: now.UTC()}
	if !nameRE.MatchString(r.Name) || len(r.Name) > maxNameLen {
		return r, invalidf("channel name %q: want letters, digits, _ . : - (starting with a letter or _)", r.Name)
	}
	email := r.SMTPHost != "" || r.From != "" || len(r.To) > 0 || r.Username != "" || r.Password != "" || r.StartTLS != ""
	switch r.Type {
	case api.ChannelWebhook, api.ChannelSlack, api.ChannelAlertmanager:
		if r.URL == "" {
			return r, invalidf("a %s channel needs a url (http or https)", r.Type)
		}
	case api.ChannelPagerDuty:
		if r.URL == "" {
			r.URL = DefaultPagerDutyURL
		}
		if r.RoutingKey == "" {
			return r, invalidf("a pagerduty channel needs a routing_key (the integration key of an Events API v2 service)")
		}
	case api.ChannelEmail:
		if r.URL != "" {
			return r, invalidf("an email channel takes smtp_host, from and to, not a url")
		}
		if _, _, err := net.SplitHostPort(r.SMTPHost); err != nil {
			return r, invalidf("smtp_host %q: want HOST:PORT, e.g. smtp.example.com:587", r.SMTPHost)
		}
		if _, err := mail.ParseAddress(r.From); err != nil {
			return r, invalidf("from %q: want an email address", r.From)
		}
		if len(r.To) == 0 || len(r.To) > 50 {
			return r, invalidf("an email channel needs 1 to 50 recipients (to)")
		}
		for _, t := range r.To {
			if _, err := mail.ParseAddress(t); err != nil {
				return r, invalidf("to %q: want an email address", t)
			}
		}
		switch r.StartTLS {
		case "":
			r.StartTLS = "required"
		case "required", "opportunistic", "none":
		default:
			return r, invalidf("starttls %q: want required, opportunistic or none", r.StartTLS)
		}
		if r.Password != "" && r.Username == "" {
			return r, invalidf("a password without a username")
		}
		return r, nil
	default:
		return r, invalidf("channel type %q: want webhook, slack, pagerduty, email or alertmanager", r.Type)
	}
	if email {
		return r, invalidf("smtp settings given for a %s channel", r.Type)
	}
	if len(r.URL) > 2048 {
		return r, invalidf("url of %d bytes exceeds 2048", len(r.URL))
	}
	return r, checkURL("url", r.URL)
}

// Info is the API form with secrets masked: the password, the routing key, and a Slack
// URL's path (which is its secret).
func (r ChannelRecord) Info() api.ChannelInfo {
	s := api.ChannelSpec{Name: r.Name, Type: r.Type, URL: r.URL, SMTPHost: r.SMTPHost, From: r.From, To: r.To,
		Username: r.Username, StartTLS: r.StartTLS, InsecureSkipVerify: r.InsecureSkipVerify}
	if r.Password != "" {
		s.Password = masked
	}
	if r.RoutingKey != "" {
		s.RoutingKey = masked
	}
	if u, err := url.Parse(r.URL); err == nil && (r.Type == api.ChannelSlack || u.User != nil || u.RawQuery != "") {
		u.User, u.RawQuery = nil, ""
		if r.Type == api.ChannelSlack {
			u.Path = "/" + masked
		}
		s.URL = u.String()
	}
	return api.ChannelInfo{ChannelSpec: s, CreatedAt: r.CreatedAt}
}

// message is what every channel renders: one alert's notification.
type message struct {
	Node   string // the sending node
	Rule   string
	Status string // firing, resolved or test
	Alert  AlertRecord
}

func (m message) summary() string {
	if t := m.Alert.Annotations["message"]; t != "" {
		return t
	}
	if t := m.Alert.Annotations["summary"]; t != "" {
		return t
	}
	return fmt.Sprintf("%s: value %g", m.Rule, m.Alert.Value)
}

func (m message) title() string {
	sev := m.Alert.Labels["severity"]
	return fmt.Sprintf("[%s] %s (%s)", strings.ToUpper(m.Status), m.Rule, sev)
}

func sortedPairs(l map[string]string) []string {
	out := make([]string, 0, len(l))
	for k, v := range l {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// endsAt is the end of an alert in Alertmanager's sense (zero time while firing).
func (m message) endsAt() time.Time {
	if m.Status == api.AlertResolved {
		return m.Alert.ResolvedAt
	}
	return time.Time{}
}

// payload renders the HTTP body of a message for a channel type.
func payload(typ string, rc ChannelRecord, m message) ([]byte, error) {
	a := m.Alert
	switch typ {
	case api.ChannelWebhook:
		return json.Marshal(map[string]any{
			"version": "1", "node": m.Node, "rule": m.Rule, "status": m.Status, "fingerprint": a.Fingerprint,
			"severity": a.Labels["severity"], "message": m.summary(), "value": a.Value, "labels": a.Labels,
			"annotations": a.Annotations, "active_at": a.ActiveAt, "fired_at": a.FiredAt, "resolved_at": a.ResolvedAt,
		})
	case api.ChannelSlack:
		color := map[string]string{api.AlertFiring: "danger", api.AlertResolved: "good"}[m.Status]
		if color == "" {
			color = "#439FE0"
		}
		return json.Marshal(map[string]any{
			"text": m.title() + ": " + m.summary(),
			"attachments": []map[string]any{{
				"color": color, "title": m.title(), "text": m.summary(),
				"footer": "constellation " + m.Node, "fields": []map[string]any{
					{"title": "Labels", "value": strings.Join(sortedPairs(a.Labels), ", "), "short": false},
					{"title": "Value", "value": fmt.Sprintf("%g", a.Value), "short": true},
				},
			}},
		})
	case api.ChannelPagerDuty:
		action := "trigger"
		if m.Status == api.AlertResolved {
			action = "resolve"
		}
		sev := a.Labels["severity"]
		if sev != "critical" && sev != "error" && sev != "warning" && sev != "info" {
			sev = "warning"
		}
		ev := map[string]any{"routing_key": rc.RoutingKey, "event_action": action,
			"dedup_key": m.Rule + "/" + a.Fingerprint, "client": "constellation"}
		if action == "trigger" {
			src := a.Labels["instance"]
			if src == "" {
				src = a.Labels["node"]
			}
			if src == "" {
				src = m.Node
			}
			ts := a.FiredAt
			if ts.IsZero() {
				ts = time.Now()
			}
			ev["payload"] = map[string]any{"summary": truncate(m.summary(), 1024), "source": src, "severity": sev,
				"timestamp": ts.UTC().Format(time.RFC3339Nano), "group": a.Labels["alertname"], "class": m.Rule,
				"custom_details": map[string]any{"labels": a.Labels, "annotations": a.Annotations, "value": a.Value}}
		}
		return json.Marshal(ev)
	case api.ChannelAlertmanager:
		st := m.Status
		if st == "test" {
			st = api.AlertFiring
		}
		al := map[string]any{"status": st, "labels": a.Labels, "annotations": a.Annotations,
			"startsAt": a.ActiveAt.UTC().Format(time.RFC3339Nano), "endsAt": m.endsAt().UTC().Format(time.RFC3339Nano),
			"generatorURL": "", "fingerprint": a.Fingerprint}
		common := map[string]string{"alertname": a.Labels["alertname"]}
		return json.Marshal(map[string]any{
			"version": "4", "groupKey": "{}:{alertname=\"" + a.Labels["alertname"] + "\"}", "truncatedAlerts": 0,
			"status": st, "receiver": rc.Name, "groupLabels": common, "commonLabels": a.Labels,
			"commonAnnotations": a.Annotations, "externalURL": "", "alerts": []any{al},
		})
	}
	return nil, fmt.Errorf("no payload for channel type %q", typ)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// permanentError is a delivery failure a retry cannot fix (a 4xx answer, a refused
// recipient): the dispatcher stops retrying.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// postJSON posts body and wants a 2xx answer; a 4xx other than 408/429 is permanent.
func postJSON(ctx context.Context, cl *http.Client, u string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return permanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "constellation-alerts")
	resp, err := cl.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok { // its text holds the whole URL
			return fmt.Errorf("%s %s: %w", ue.Op, redactURL(u), ue.Err)
		}
		return err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("%s answered %s: %s", redactURL(u), resp.Status, strings.TrimSpace(string(snippet)))
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return permanentError{err}
	}
	return err
}

// redactURL keeps a URL's scheme and host (paths and queries of webhooks hold secrets).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "the url"
	}
	return u.Scheme + "://" + u.Host
}

// deliver sends one message once over a channel.
func deliver(ctx context.Context, cl *http.Client, rc ChannelRecord, m message) error {
	if rc.Type == api.ChannelEmail {
		return sendEmail(ctx, rc, m)
	}
	body, err := payload(rc.Type, rc, m)
	if err != nil {
		return permanentError{err}
	}
	return postJSON(ctx, cl, rc.URL, body)
}
