package logs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestQueryMatch(t *testing.T) {
	e := Entry{Time: time.Unix(100, 0), Node: "n1", Instance: "pay-1", Deployment: "payment", Stream: "stderr",
		Level: "error", Message: "ERROR: card declined for User-42 (timeout)", Fields: map[string]string{"user_id": "123", "region": "eu-west"}}
	cases := []struct {
		q    string
		want bool
	}{
		{"", true},
		{"error", true},
		{"Error", true},
		{"err", false}, // whole words only
		{"err*", true},
		{"declined AND card", true},
		{"declined card", true},
		{"declined AND missing", false},
		{"declined OR missing", true},
		{"NOT declined", false},
		{"-declined", false},
		{"NOT missing", true},
		{`"card declined"`, true},
		{`"declined card"`, false},
		{"user-42", true}, // words joined by punctuation: a phrase
		{"level:error", true},
		{"level=info", false},
		{"service=payment", true},
		{"service:pay*", true},
		{"instance:pay-1", true},
		{"node=n1 AND stream=stderr", true},
		{"namespace=default", true},
		{"user_id=123", true},
		{"user_id:124", false},
		{"region:EU-WEST", true},
		{"123", true}, // field values are searched too
		{`region:"eu-west"`, true},
		{"error AND (service=payment OR service=checkout)", true},
		{"error AND NOT (service=payment OR service=checkout)", false},
		{"(timeout OR refused) AND level:error", true},
		{"nosuchfield=x", false},
		{"a OR b OR timeout", true},
	}
	for _, c := range cases {
		q, err := Parse(c.q)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.q, err)
		}
		if got := q.Match(&e); got != c.want {
			t.Errorf("%q matched %v, want %v", c.q, got, c.want)
		}
	}
}

func TestQueryErrors(t *testing.T) {
	cases := []struct {
		q   string
		pos int // 1-based as printed
		msg string
	}{
		{`error AND "card declined`, 11, "unbalanced quote"},
		{`"`, 1, "unbalanced quote"},
		{`(error`, 1, "unbalanced '('"},
		{`error)`, 6, "unbalanced ')'"},
		{`error AND`, 10, "ends where"},
		{`AND error`, 1, "AND/OR without a term"},
		{`level:`, 6, "has no value"},
		{`:x`, 1, "without a field name"},
		{`()`, 2, "empty parentheses"},
		{`""`, 1, "empty phrase"},
		{`...`, 1, "no letters or digits"},
		{strings.Repeat("(", 100) + "a" + strings.Repeat(")", 100), 65, "nesting"},
	}
	for _, c := range cases {
		_, err := Parse(c.q)
		var qe *QueryError
		if !errors.As(err, &qe) {
			t.Fatalf("Parse(%q) = %v, want a QueryError", c.q, err)
		}
		if qe.Pos+1 != c.pos || !strings.Contains(qe.Msg, c.msg) {
			t.Errorf("Parse(%q): %v; want position %d and %q", c.q, err, c.pos, c.msg)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"error AND service=payment", `"a b" OR NOT (c d)`, `x:"y`, "((a)", "-a b*", `f="q\"x"`} {
		f.Add(s)
	}
	e := Entry{Message: "hello world error", Level: "error", Fields: map[string]string{"k": "v"}}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) || qe.Pos < 0 || qe.Pos > len(s) {
				t.Fatalf("Parse(%q): %v (position outside the query)", s, err)
			}
			return
		}
		q.Match(&e)
		q.mayMatch(func([]byte) bool { return false })
	})
}

func FuzzFrame(f *testing.F) {
	e := Entry{Time: time.Unix(5, 0), Node: "n", Message: "m", Fields: map[string]string{"a": "b"}}
	f.Add(appendFrame(nil, &e))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var v view
		for len(b) > 0 {
			p, n, err := nextFrame(b)
			if err != nil || n == 0 {
				return
			}
			if decodeView(p, &v) == nil {
				e := v.entry()
				if got := appendFrame(nil, &e); string(got) != string(b[:n]) && len(v.fields) == len(e.Fields) {
					t.Fatalf("re-encoding differs")
				}
			}
			b = b[n:]
		}
	})
}

// FuzzSegmentFiles: arbitrary index headers and segment bodies never panic the reader.
func FuzzSegmentFiles(f *testing.F) {
	var b bloom
	b.b = make([]byte, 64)
	e := Entry{Time: time.Unix(5, 0), Message: "m"}
	f.Add((&summary{minT: 1, maxT: 2, count: 1, raw: 10}).marshal(&b), appendFrame(nil, &e))
	f.Fuzz(func(t *testing.T, idx, raw []byte) {
		if s, ok := unmarshalSummaryHeader(idx); ok && (s.minT > s.maxT || s.bloomLen < 64) {
			t.Fatalf("accepted a bad header %+v", s)
		}
		col := &collector{limit: 3, heap: &entryHeap{}, from: 0, to: 1<<63 - 1}
		_ = scanFrames(raw, newMatcher(MustParse("m OR x*")), col)
		if len(*col.heap) > 3 {
			t.Fatal("collector over its limit")
		}
	})
}
