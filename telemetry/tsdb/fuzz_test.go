package tsdb

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// FuzzDecodeRequest: any bytes from a member decode to a valid request or an error.
func FuzzDecodeRequest(f *testing.F) {
	b, _ := Encode(NewRequest(OpSelect, 0, 1000, nil, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "node", "n.*")}))
	f.Add(b)
	b, _ = Encode(Request{Op: OpLabelValues, Name: "node", Maxt: 5})
	f.Add(b)
	f.Add([]byte{0xa1, 0x01, 0x09})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ms, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if r.Maxt < r.Mint || len(ms) != len(r.Matchers) || len(ms) > MaxMatchers {
			t.Fatalf("accepted an invalid request %+v", r)
		}
	})
}

// FuzzDecodeBatch: any answer bytes decode to well-formed series or an error, and the
// collector never panics on them.
func FuzzDecodeBatch(f *testing.F) {
	b, _ := Encode(Batch{Series: []Series{{Labels: []string{"__name__", "x", "node", "n1"}, T: []int64{1, 2}, V: []float64{1, 2}}}, Done: true})
	f.Add(b)
	b, _ = Encode(Batch{Names: []string{"a", "b"}, Warnings: []string{"w"}, Done: true})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := DecodeBatch(b)
		if err != nil {
			return
		}
		for _, s := range x.Series {
			if len(s.T) != len(s.V) || len(s.Labels)%2 != 0 {
				t.Fatal("malformed series accepted")
			}
		}
		col := &Collector{}
		if col.Add(x) == nil {
			set := col.SeriesSet()
			for set.Next() {
				_ = set.At().Labels()
			}
		}
	})
}
