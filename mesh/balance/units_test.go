package balance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	timeoutErr := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	cases := []struct {
		err  error
		want Outcome
	}{
		{nil, OK},
		{NotReached(errRefused), ConnectError},
		{fmt.Errorf("dial: %w", NotReached(errRefused)), ConnectError},
		{context.DeadlineExceeded, Timeout},
		{timeoutErr, Timeout},
		{context.Canceled, Canceled},
		{&OutcomeError{ServerError, errors.New("upstream 502")}, ServerError},
		{errors.New("stream reset"), Failure},
	}
	for _, c := range cases {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if NotReached(nil) != nil {
		t.Error("NotReached(nil) must be nil")
	}
	if !errors.Is(NotReached(errRefused), errRefused) {
		t.Error("NotReached hides the cause")
	}
	for o := OK; o <= Canceled; o++ {
		if o.String() == "" || (o.IsFailure() != (o != OK && o != Canceled)) {
			t.Errorf("outcome %d: %q failure=%v", o, o, o.IsFailure())
		}
	}
}

// The streaming quantile stays within its bucket error of the exact value
// and forgets samples older than two windows.
func TestQuantile(t *testing.T) {
	q := quantile{window: 10 * time.Second}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := seeded(3)
	var exact []time.Duration
	for i := 0; i < 10000; i++ {
		d := time.Duration(r.ExpFloat64() * float64(20*time.Millisecond)) // exponential, mean 20 ms
		exact = append(exact, d)
		q.observe(now, d)
	}
	slices.Sort(exact)
	for _, p := range []float64{0.5, 0.95, 0.99} {
		want := exact[int(p*float64(len(exact)))-1]
		got := q.value(now, p)
		if rel := float64(got-want) / float64(want); rel < -0.01 || rel > 0.09 {
			t.Errorf("p%v: %v, exact %v (%.1f%%)", p*100, got, want, rel*100)
		}
	}
	if q.count(now.Add(15*time.Second)) != 10000 {
		t.Error("samples lost within two windows")
	}
	q.observe(now.Add(15*time.Second), time.Second)
	if n := q.count(now.Add(26 * time.Second)); n != 1 {
		t.Errorf("%d samples after the old window passed, want 1", n)
	}
	if n := q.count(now.Add(time.Hour)); n != 0 {
		t.Errorf("%d samples an hour later", n)
	}
	if qIndex(qMax*2) != qBuckets-1 || qIndex(0) != 0 || qUpper(qIndex(qMax)) < qMax {
		t.Error("bucket bounds")
	}
}
