package crdt

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

const benchEntries = 100_000

// benchDoc returns a document with n LWW entries of 32-byte values in one
// collection, keys "key-%07d".
func benchDoc(b *testing.B, id ReplicaID, n int) *Document {
	b.Helper()
	ft := newFakeTime()
	d := NewDocument(id, NewClock(id, ft.now, 0))
	val := make([]byte, 32)
	for i := 0; i < n; i++ {
		if _, err := d.PutLWW("services", fmt.Sprintf("key-%07d", i), val); err != nil {
			b.Fatal(err)
		}
	}
	return d
}

// BenchmarkDeltaVsFullState reports the encoded size of the delta of one
// update to a 100,000-entry OR-map of LWW registers against the full state.
func BenchmarkDeltaVsFullState(b *testing.B) {
	d := benchDoc(b, 1, benchEntries)
	full, err := EncodeDelta(d.State())
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 32)
	var delta []byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dl, err := d.PutLWW("services", fmt.Sprintf("key-%07d", i%benchEntries), val)
		if err != nil {
			b.Fatal(err)
		}
		if delta, err = EncodeDelta(dl); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(delta)), "delta-bytes")
	b.ReportMetric(float64(len(full)), "full-bytes")
	b.ReportMetric(float64(len(full))/float64(len(delta)), "full/delta")
}

// BenchmarkJoinSmallDeltas joins one-entry deltas from another replica into
// a 100,000-entry document.
func BenchmarkJoinSmallDeltas(b *testing.B) {
	src := benchDoc(b, 1, benchEntries)
	dst := NewDocument(2, NewClock(2, time.Now, 0))
	if _, err := dst.Join(src.State()); err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 32)
	// Pre-generate deltas so only Join is timed.
	const pool = 1 << 16
	deltas := make([]*Delta, 0, pool)
	n := min(b.N, pool)
	for i := 0; i < n; i++ {
		dl, err := src.PutLWW("services", fmt.Sprintf("key-%07d", (i*7919)%benchEntries), val)
		if err != nil {
			b.Fatal(err)
		}
		deltas = append(deltas, dl)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%pool == 0 {
			b.StopTimer()
			deltas = deltas[:0]
			for j := 0; j < pool; j++ {
				dl, _ := src.PutLWW("services", fmt.Sprintf("key-%07d", (j*7919)%benchEntries), val)
				deltas = append(deltas, dl)
			}
			b.StartTimer()
		}
		if _, err := dst.Join(deltas[i%pool]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deltas/s")
}

// BenchmarkMemoryPerEntry reports heap bytes per entry of a 100,000-entry
// document, minus the key and value bytes themselves (overhead).
func BenchmarkMemoryPerEntry(b *testing.B) {
	for i := 0; i < b.N; i++ {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		d := benchDoc(b, 1, benchEntries)
		d.log = map[Dot]op{} // exclude the delta log (bounded separately)
		d.logQ, d.logHead, d.logBytes = nil, 0, 0
		runtime.GC()
		runtime.ReadMemStats(&m1)
		payload := benchEntries * (len("key-0000000") + 32)
		total := float64(m1.HeapAlloc - m0.HeapAlloc)
		b.ReportMetric(total/benchEntries, "bytes/entry")
		b.ReportMetric((total-float64(payload))/benchEntries, "overhead-bytes/entry")
		runtime.KeepAlive(d)
	}
}

// BenchmarkCBOR reports encode and decode throughput of a 100,000-entry
// full state.
func BenchmarkCBOR(b *testing.B) {
	d := benchDoc(b, 1, benchEntries)
	st := d.State()
	enc, err := EncodeDelta(st)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for i := 0; i < b.N; i++ {
			if _, err := EncodeDelta(st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for i := 0; i < b.N; i++ {
			if _, err := DecodeDelta(enc, DefaultLimits); err != nil {
				b.Fatal(err)
			}
		}
	})
}
