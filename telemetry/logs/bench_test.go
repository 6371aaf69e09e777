package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// genEntry is a realistic line: a few templates, services, request IDs, numbers.
func genEntry(r *rand.Rand, t time.Time, i int) Entry {
	svcs := []string{"payment", "checkout", "cart", "search", "auth", "web"}
	svc := svcs[r.IntN(len(svcs))]
	lvl := "info"
	var msg string
	switch x := r.IntN(1000); {
	case x < 5:
		lvl = "error"
		msg = fmt.Sprintf("upstream timeout after %dms calling %s (req %016x)", r.IntN(5000), svcs[r.IntN(len(svcs))], r.Uint64())
	case x < 40:
		lvl = "warn"
		msg = fmt.Sprintf("slow query on table orders took %dms rows=%d req=%016x", r.IntN(2000), r.IntN(10000), r.Uint64())
	case x < 500:
		msg = fmt.Sprintf("GET /api/v1/items/%d 200 %dus bytes=%d req=%016x", r.IntN(1e6), r.IntN(90000), r.IntN(1e5), r.Uint64())
	default:
		msg = fmt.Sprintf("user %d logged in from 10.%d.%d.%d session %016x", r.IntN(1e6), r.IntN(256), r.IntN(256), r.IntN(256), r.Uint64())
	}
	return Entry{Time: t, Node: "node-1", Instance: svc + "-" + strconv.Itoa(r.IntN(4)), Deployment: svc,
		Stream: StreamStdout, Level: lvl, Message: msg}
}

// benchStore fills (or reuses, CONSTELLATION_LOGS_BENCH_DIR) a store of
// CONSTELLATION_LOGS_BENCH_MB (default 1024) MiB of raw frames; a needle line sits in the
// middle.
func benchStore(b *testing.B) *Store {
	mb := int64(1024)
	if v, err := strconv.ParseInt(os.Getenv("CONSTELLATION_LOGS_BENCH_MB"), 10, 64); err == nil && v > 0 {
		mb = v
	}
	dir := os.Getenv("CONSTELLATION_LOGS_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	s, err := Open(Config{Dir: dir, MaxBytes: 1 << 40, MaxAge: 1 << 62})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if s.Stats().RawBytes >= mb<<20 {
		return s
	}
	r := rand.New(rand.NewPCG(1, 2))
	t := time.Now().Add(-24 * time.Hour)
	start := time.Now()
	n := 0
	batch := make([]Entry, 0, 256)
	needle := false
	for s.Stats().RawBytes < mb<<20 {
		batch = batch[:0]
		half := s.Stats().RawBytes >= mb<<19
		for range 256 {
			e := genEntry(r, t, n)
			if half && !needle {
				e.Message, needle = "card declined for customer zanzibar-needle-42", true
			}
			batch = append(batch, e)
			t = t.Add(time.Millisecond)
			n++
		}
		if err := s.Append(batch...); err != nil {
			b.Fatal(err)
		}
	}
	s.Seal()
	st := s.Stats()
	b.Logf("generated %d entries, %d MiB raw, %d MiB on disk, %d segments in %v (%.0f entries/s)",
		n, st.RawBytes>>20, st.DiskBytes>>20, st.Segments, time.Since(start), float64(n)/time.Since(start).Seconds())
	return s
}

func benchQuery(b *testing.B, q string, limit int) {
	s := benchStore(b)
	query := MustParse(q)
	b.ResetTimer()
	var r Result
	cpu0 := cpuTime()
	for b.Loop() {
		var err error
		r, err = s.Search(context.Background(), Request{Query: query, Limit: limit})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/query")
	// CPU seconds tell what the query costs on a machine shared with other work.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/query")
	b.ReportMetric(float64(len(r.Entries)), "matches")
	b.ReportMetric(float64(r.Scanned), "segments-scanned")
	b.ReportMetric(float64(r.Skipped), "segments-skipped")
	b.ReportMetric(float64(s.Stats().RawBytes>>20), "MiB-raw")
}

// BenchmarkSearchTermRare: a term in one line of 1 GiB (the term filter skips segments).
func BenchmarkSearchTermRare(b *testing.B) { benchQuery(b, "zanzibar", 100) }

// BenchmarkSearchTermCommon: error lines (0.5 %), newest 100.
func BenchmarkSearchTermCommon(b *testing.B) { benchQuery(b, "timeout AND level:error", 100) }

// BenchmarkSearchPhrase: a phrase of one line.
func BenchmarkSearchPhrase(b *testing.B) { benchQuery(b, `"customer zanzibar-needle-42"`, 100) }

// BenchmarkSearchFullScan: a prefix term no filter can skip, in no line: every segment read.
func BenchmarkSearchFullScan(b *testing.B) { benchQuery(b, "zzqx*", 100) }

// BenchmarkIngest: entries appended per second (encoding, term filter, sealing).
func BenchmarkIngest(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir(), MaxBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 2))
	t := time.Now()
	es := make([]Entry, 4096)
	for i := range es {
		es[i] = genEntry(r, t, i)
	}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if err := s.Append(es[n%len(es)]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkIngestReferenceJSONFile is the same-run reference for BenchmarkIngest: the
// same entries as JSON lines appended to a plain buffered file (no frames, filter,
// compression or lock).
func BenchmarkIngestReferenceJSONFile(b *testing.B) {
	f, err := os.Create(b.TempDir() + "/ref.log")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 256<<10)
	enc := json.NewEncoder(w)
	r := rand.New(rand.NewPCG(1, 2))
	t := time.Now()
	es := make([]Entry, 4096)
	for i := range es {
		es[i] = genEntry(r, t, i)
	}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if err := enc.Encode(&es[n%len(es)]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	w.Flush()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
