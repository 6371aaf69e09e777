package testutil

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a testing.TB that records a Fatalf instead of stopping the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestWaitForReturnsOnceTrue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		calls := 0
		r := &recorder{TB: t}
		WaitFor(r, time.Second, "third call", func() (bool, string) {
			calls++
			return calls == 3, fmt.Sprint(calls, " calls")
		})
		if r.failed != "" {
			t.Fatalf("WaitFor failed: %s", r.failed)
		}
		if calls != 3 {
			t.Errorf("cond called %d times; want 3", calls)
		}
		// Backoff: 1 ms, then 2 ms.
		if got := time.Since(start); got != 3*time.Millisecond {
			t.Errorf("waited %v; want 3ms (1ms + 2ms)", got)
		}
	})
}

func TestWaitForTimesOutWithDetail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		calls := 0
		r := &recorder{TB: t}
		WaitFor(r, time.Second, "never", func() (bool, string) {
			calls++
			return false, fmt.Sprintf("seen %d", calls)
		})
		want := fmt.Sprintf("timed out after 1s waiting for never: seen %d", calls)
		if r.failed != want {
			t.Errorf("failure = %q; want %q", r.failed, want)
		}
		waited := time.Since(start)
		if waited < time.Second || waited > time.Second+maxPoll {
			t.Errorf("gave up after %v; want 1s plus at most one poll", waited)
		}
		// 1+2+4+8+16 ms, then every 20 ms: about 50 polls in a second, not 1000.
		if calls < 45 || calls > 60 {
			t.Errorf("%d polls in 1s; want about 50 (backoff to 20ms)", calls)
		}
	})
}

func TestWaitForEveryPollsAtTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		r := &recorder{TB: t}
		WaitForEvery(r, 100*time.Millisecond, time.Millisecond, "never", func() (bool, string) {
			calls++
			return false, ""
		})
		if !strings.HasSuffix(r.failed, "waiting for never") {
			t.Errorf("failure = %q; want it to end with the awaited thing and no empty detail", r.failed)
		}
		if calls < 100 || calls > 102 {
			t.Errorf("%d polls in 100ms at 1ms; want about 101", calls)
		}
	})
}
