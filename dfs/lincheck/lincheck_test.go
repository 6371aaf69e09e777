package lincheck

import (
	"testing"
	"time"
)

// TestCheckerCatchesStaleRead: a read that returns an older value after a newer write
// completed is refused; the same read overlapping the write is accepted; a write with an
// unknown outcome may or may not have happened.
func TestCheckerCatchesStaleRead(t *testing.T) {
	r := New()
	r.Write(0, "a", 0, 10, true)
	r.Write(1, "b", 20, 30, true)
	r.Read(2, "a", 40, 50) // b was committed before this read began
	if err := r.Check(time.Second); err == nil {
		t.Fatal("a stale read passed the checker")
	}
	r = New()
	r.Write(0, "a", 0, 10, true)
	r.Write(1, "b", 20, 45, true)
	r.Read(2, "a", 40, 50) // overlaps the write of b
	if err := r.Check(time.Second); err != nil {
		t.Fatal(err)
	}
	r = New()
	r.Write(0, "a", 0, 10, true)
	r.Write(1, "b", 20, 30, false) // unknown outcome
	r.Read(2, "a", 40, 50)
	r.Read(2, "b", 60, 70)
	if err := r.Check(time.Second); err != nil {
		t.Fatalf("an unknown write that took effect late: %v", err)
	}
	r = New()
	r.Write(1, "b", 20, 30, false)
	r.Read(2, "b", 40, 50)
	r.Read(2, "", 60, 70) // b cannot be undone
	if err := r.Check(time.Second); err == nil {
		t.Fatal("a value that disappeared passed the checker")
	}
	if rd, wr := r.Len(); rd != 2 || wr != 1 {
		t.Fatalf("Len = %d reads, %d writes", rd, wr)
	}
}
