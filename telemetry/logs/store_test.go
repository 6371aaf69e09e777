package logs

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openTest(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func search(t *testing.T, s *Store, q string, limit int) Result {
	t.Helper()
	r, err := s.Search(context.Background(), Request{Query: MustParse(q), Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStoreSearchAcrossSegmentsAndReopen(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	dir := t.TempDir()
	s := openTest(t, Config{Dir: dir, SegmentBytes: 4 << 10, Now: clk.Now})
	for i := range 500 {
		lvl := "info"
		if i%50 == 0 {
			lvl = "error"
		}
		if err := s.Append(Entry{Time: clk.Now(), Node: "n1", Instance: fmt.Sprintf("web-%d", i%3), Level: lvl,
			Message: fmt.Sprintf("request %d served", i), Fields: map[string]string{"user_id": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
	}
	if st := s.Stats(); st.Segments < 5 || st.Entries != 500 {
		t.Fatalf("stats %+v: want several sealed segments and 500 entries", st)
	}
	r := search(t, s, "level:error", 100)
	if len(r.Entries) != 10 {
		t.Fatalf("level:error found %d entries, want 10", len(r.Entries))
	}
	if r.Entries[0].Message != "request 450 served" || r.Entries[9].Message != "request 0 served" {
		t.Fatalf("not newest first: %q ... %q", r.Entries[0].Message, r.Entries[9].Message)
	}
	r = search(t, s, "served", 7)
	if len(r.Entries) != 7 || r.Entries[0].Message != "request 499 served" {
		t.Fatalf("limit 7: %d entries, first %q", len(r.Entries), r.Entries[0].Message)
	}
	r = search(t, s, "user_id=321", 10)
	if len(r.Entries) != 1 || r.Entries[0].Fields["user_id"] != "321" {
		t.Fatalf("user_id=321: %+v", r.Entries)
	}
	if r.Skipped < r.Scanned {
		t.Fatalf("the term filter skipped %d segments, scanned %d", r.Skipped, r.Scanned)
	}
	// time range
	from := time.Unix(1_700_000_000+100, 0)
	rr, err := s.Search(context.Background(), Request{Query: MustParse("served"), From: from, To: from.Add(9 * time.Second), Limit: 100})
	if err != nil || len(rr.Entries) != 10 {
		t.Fatalf("time range: %d entries, %v", len(rr.Entries), err)
	}
	s.Close()
	s2 := openTest(t, Config{Dir: dir, SegmentBytes: 4 << 10, Now: clk.Now})
	if r := search(t, s2, `"request 499"`, 10); len(r.Entries) != 1 {
		t.Fatalf("after reopen: %d entries for the last line", len(r.Entries))
	}
	if st := s2.Stats(); st.Entries != 500 {
		t.Fatalf("after reopen: %d entries", st.Entries)
	}
}

func TestStoreRetention(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	dir := t.TempDir()
	s := openTest(t, Config{Dir: dir, SegmentBytes: 2 << 10, MaxAge: time.Hour, MaxBytes: 1 << 30, Now: clk.Now})
	line := strings.Repeat("x", 100)
	for range 100 {
		s.Append(Entry{Message: "old " + line})
	}
	s.Seal()
	before, _ := filepath.Glob(filepath.Join(dir, "*.zst"))
	clk.Add(2 * time.Hour)
	s.Retain()
	for range 10 {
		s.Append(Entry{Message: "new " + line})
	}
	s.Seal()
	after, _ := filepath.Glob(filepath.Join(dir, "*.zst"))
	if len(after) >= len(before) || len(after) == 0 {
		t.Fatalf("retention by age: %d segments before, %d after", len(before), len(after))
	}
	if r := search(t, s, "old", 1000); len(r.Entries) != 0 {
		t.Fatalf("%d old entries survived retention", len(r.Entries))
	}
	if r := search(t, s, "new", 1000); len(r.Entries) != 10 {
		t.Fatalf("%d new entries, want 10", len(r.Entries))
	}
	// by size
	s.Close()
	s2 := openTest(t, Config{Dir: dir, SegmentBytes: 2 << 10, MaxBytes: 3 << 10, Now: clk.Now})
	for range 200 {
		s2.Append(Entry{Message: "bulk " + line})
	}
	s2.Seal()
	if st := s2.Stats(); st.DiskBytes > 3<<10+2<<10 {
		t.Fatalf("retention by size: %d bytes on disk, bound 3 KiB (+ one segment)", st.DiskBytes)
	}
}

func TestStoreCorruptSegmentSkipped(t *testing.T) {
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logBuf}, nil))
	dir := t.TempDir()
	s := openTest(t, Config{Dir: dir, SegmentBytes: 2 << 10, Log: log})
	for i := range 300 {
		s.Append(Entry{Message: fmt.Sprintf("line %d needle", i)})
	}
	s.Seal()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.zst"))
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	// Flip bytes in the middle of one segment and truncate another's index.
	b, _ := os.ReadFile(segs[1])
	for i := len(b) / 2; i < len(b)/2+8; i++ {
		b[i] ^= 0xff
	}
	os.WriteFile(segs[1], b, 0o600)
	os.WriteFile(strings.TrimSuffix(segs[2], ".zst")+".idx", []byte("CLX1garbage"), 0o600)
	r := search(t, s, "needle", 1000)
	if len(r.Warnings) != 2 {
		t.Fatalf("warnings %q: want 2 (the corrupt segment and the bad index)", r.Warnings)
	}
	if len(r.Entries) == 0 || len(r.Entries) >= 300 {
		t.Fatalf("%d entries: want those of the good segments", len(r.Entries))
	}
	if !strings.Contains(logBuf.String(), "corrupt") {
		t.Fatalf("no warning logged: %s", logBuf.String())
	}
	// A reopen skips the segment whose index is bad, and still serves the others.
	s.Close()
	s2 := openTest(t, Config{Dir: dir, SegmentBytes: 2 << 10, Log: log})
	if r := search(t, s2, "needle", 1000); len(r.Entries) == 0 {
		t.Fatal("nothing found after reopen")
	}
}

func TestStoreTornTailAfterCrash(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, Config{Dir: dir})
	for i := range 10 {
		s.Append(Entry{Message: fmt.Sprintf("line %d", i)})
	}
	s.Close()
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	f, _ := os.OpenFile(logs[0], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0x40, 1, 2, 3}) // a torn frame
	f.Close()
	s2 := openTest(t, Config{Dir: dir})
	if r := search(t, s2, "line", 100); len(r.Entries) != 10 || len(r.Warnings) != 0 {
		t.Fatalf("after a torn tail: %d entries, warnings %q", len(r.Entries), r.Warnings)
	}
}

func TestStoreFollow(t *testing.T) {
	s := openTest(t, Config{})
	ch, stop := s.Follow(MustParse("level=error"), 10)
	s.Append(Entry{Level: "info", Message: "fine"}, Entry{Level: "error", Message: "boom"})
	select {
	case e := <-ch:
		if e.Message != "boom" {
			t.Fatalf("followed %q", e.Message)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing followed")
	}
	stop()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after stop")
	}
}

func TestAppendRefusesOversize(t *testing.T) {
	s := openTest(t, Config{})
	if err := s.Append(Entry{Message: strings.Repeat("x", MaxMessageBytes+1)}); err == nil {
		t.Fatal("oversized message accepted")
	}
	if err := s.Append(Entry{Message: "x", Fields: map[string]string{"bad key": "v"}}); err == nil {
		t.Fatal("bad field key accepted")
	}
	if st := s.Stats(); st.Entries != 0 {
		t.Fatalf("%d entries stored", st.Entries)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// Searches while appends seal and retention removes segments: no error, no false
// corruption warning.
func TestSearchDuringAppends(t *testing.T) {
	s := openTest(t, Config{SegmentBytes: 8 << 10, MaxBytes: 64 << 10})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5000 {
			if err := s.Append(Entry{Message: fmt.Sprintf("entry %d of the concurrent writer", i), Level: "info"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	n := 0
	for {
		select {
		case <-done:
			if n == 0 {
				t.Fatal("no search ran")
			}
			return
		default:
		}
		r, err := s.Search(context.Background(), Request{Query: MustParse("concurrent"), Limit: 50})
		if err != nil || len(r.Warnings) > 0 {
			t.Fatalf("search during appends: %v %q", err, r.Warnings)
		}
		n++
	}
}
