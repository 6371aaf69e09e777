package alert

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/rads-lang/constellation/api"
)

// SilenceRecord is a silence as replicated. An expired silence stays listed (--all) for
// a day after its end, then the node that notices removes it.
type SilenceRecord struct {
	ID        string    `cbor:"1,keyasint"`
	Matchers  []string  `cbor:"2,keyasint"`
	StartsAt  time.Time `cbor:"3,keyasint"`
	EndsAt    time.Time `cbor:"4,keyasint"`
	Comment   string    `cbor:"5,keyasint,omitempty"`
	CreatedBy string    `cbor:"6,keyasint,omitempty"`
}

const silenceKeep = 24 * time.Hour

// ParseMatcher parses name=value, name!=value, name=~regex or name!~regex (the value may
// be double-quoted).
func ParseMatcher(s string) (*labels.Matcher, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, "=!")
	if i <= 0 {
		return nil, invalidf("matcher %q: want name=value, name!=value, name=~regex or name!~regex", s)
	}
	name, rest := s[:i], s[i:]
	if !labelRE.MatchString(name) {
		return nil, invalidf("matcher %q: label name %q: want [A-Za-z_][A-Za-z0-9_]*", s, name)
	}
	var typ labels.MatchType
	switch {
	case strings.HasPrefix(rest, "=~"):
		typ, rest = labels.MatchRegexp, rest[2:]
	case strings.HasPrefix(rest, "!~"):
		typ, rest = labels.MatchNotRegexp, rest[2:]
	case strings.HasPrefix(rest, "!="):
		typ, rest = labels.MatchNotEqual, rest[2:]
	case strings.HasPrefix(rest, "="):
		typ, rest = labels.MatchEqual, rest[1:]
	default:
		return nil, invalidf("matcher %q: want name=value, name!=value, name=~regex or name!~regex", s)
	}
	if len(rest) >= 2 && rest[0] == '"' && rest[len(rest)-1] == '"' {
		rest = rest[1 : len(rest)-1]
	}
	m, err := labels.NewMatcher(typ, name, rest)
	if err != nil {
		return nil, invalidf("matcher %q: %v", s, err)
	}
	return m, nil
}

// SilenceFromSpec validates a silence request.
func SilenceFromSpec(spec api.SilenceSpec, now time.Time, node string) (SilenceRecord, error) {
	r := SilenceRecord{Matchers: spec.Matchers, StartsAt: now.UTC(), Comment: spec.Comment, CreatedBy: node}
	if len(r.Matchers) == 0 {
		return r, invalidf("a silence needs at least one matcher, e.g. alertname=HighCPU")
	}
	if len(r.Matchers) > maxMatchers {
		return r, invalidf("%d matchers: at most %d", len(r.Matchers), maxMatchers)
	}
	for _, s := range r.Matchers {
		if _, err := ParseMatcher(s); err != nil {
			return r, err
		}
	}
	if len(r.Comment) > 1024 {
		return r, invalidf("comment of %d bytes exceeds 1024", len(r.Comment))
	}
	switch {
	case spec.Duration != "" && !spec.EndsAt.IsZero():
		return r, invalidf("give duration or ends_at, not both")
	case spec.Duration != "":
		d, err := ParseDuration(spec.Duration)
		if err != nil || d <= 0 {
			return r, invalidf("duration %q: want a positive duration such as 2h", spec.Duration)
		}
		r.EndsAt = r.StartsAt.Add(d)
	case !spec.EndsAt.IsZero():
		if !spec.EndsAt.After(now) {
			return r, invalidf("ends_at %s is not in the future", spec.EndsAt.Format(time.RFC3339))
		}
		r.EndsAt = spec.EndsAt.UTC()
	default:
		return r, invalidf("a silence needs a duration (e.g. 2h) or ends_at")
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	r.ID = hex.EncodeToString(b[:])
	return r, nil
}

// Active reports whether the silence applies at t.
func (r SilenceRecord) Active(t time.Time) bool { return !t.Before(r.StartsAt) && t.Before(r.EndsAt) }

// Matches reports whether every matcher matches the labels (a matcher that no longer
// parses matches nothing).
func (r SilenceRecord) Matches(l map[string]string) bool {
	for _, s := range r.Matchers {
		m, err := ParseMatcher(s)
		if err != nil || !m.Matches(l[m.Name]) {
			return false
		}
	}
	return len(r.Matchers) > 0
}

// Info is the API form.
func (r SilenceRecord) Info(now time.Time) api.SilenceInfo {
	return api.SilenceInfo{ID: r.ID, Matchers: r.Matchers, StartsAt: r.StartsAt, EndsAt: r.EndsAt,
		Comment: r.Comment, CreatedBy: r.CreatedBy, Active: r.Active(now)}
}

// silencer reports whether labels are silenced at now by any of the silences.
func silencer(ss []SilenceRecord, now time.Time) func(map[string]string) bool {
	return func(l map[string]string) bool {
		for _, s := range ss {
			if s.Active(now) && s.Matches(l) {
				return true
			}
		}
		return false
	}
}
