// Package testutil holds test helpers shared by every package's tests: WaitFor, the one
// way to wait for a condition that becomes true eventually (instead of a fixed sleep
// followed by an assertion, which fails on a slow machine).
//
//	testutil.WaitFor(t, 10*time.Second, "n3 dead at n0", func() (bool, string) {
//		st := status(n0, n3)
//		return st == "dead", "n0 sees n3 " + st
//	})
//
// It uses the time package only, so it also works inside a testing/synctest bubble, where
// its sleeps advance the fake clock.
package testutil

import (
	"testing"
	"time"
)

// maxPoll caps WaitFor's backoff: rare enough that conditions which take a lock or list
// the cluster cost nothing measurable, short enough that a test waits at most this much
// longer than needed.
const maxPoll = 20 * time.Millisecond

// WaitFor polls cond until it reports true or timeout passes, then fails tb with what was
// awaited and cond's last detail (the second result, which should say what was seen).
// Polls start 1 ms apart and back off to 20 ms.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	wait(tb, timeout, time.Millisecond, maxPoll, what, cond)
}

// WaitForEvery is WaitFor with a fixed poll interval: short for benchmarks that time how
// long something takes (the interval bounds the measurement's precision), long for
// conditions that are costly to check (running a command).
func WaitForEvery(tb testing.TB, timeout, every time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	wait(tb, timeout, every, every, what, cond)
}

func wait(tb testing.TB, timeout, first, most time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	pause := first
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if detail != "" {
				detail = ": " + detail
			}
			tb.Fatalf("timed out after %v waiting for %s%s", timeout, what, detail)
			return
		}
		time.Sleep(pause)
		pause = min(2*pause, most)
	}
}
