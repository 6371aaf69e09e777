package share

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkIdleRound10k: the local half of a round over a directory of 10,000 unchanged
// files (walk, stat, hashes reused from the cache) and the plan against a base in sync:
// the cost every round pays for a large share.
func BenchmarkIdleRound10k(b *testing.B) {
	root, _ := filepath.EvalSymlinks(b.TempDir())
	const n = 10000
	for i := 0; i < n; i++ {
		d := filepath.Join(root, fmt.Sprintf("d%02d", i%100))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", i)), []byte(fmt.Sprint(i)), 0o644)
	}
	cache := hashCache{}
	later := time.Now().Add(time.Minute) // past the racy window: hashes are reused
	files, _, err := scanLocal(root, "/s", 1<<20, cache, later)
	if err != nil || len(files) != n {
		b.Fatal(len(files), err)
	}
	base, remote := map[string]Synced{}, map[string]Remote{}
	for p, l := range files {
		base[p] = Synced{Hash: l.Hash, CID: "c" + p, Size: l.Size}
		remote[p] = Remote{CID: "c" + p, Size: l.Size}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		files, _, err := scanLocal(root, "/s", 1<<20, cache, later)
		if err != nil {
			b.Fatal(err)
		}
		if plan := Plan(Input{Local: files, Remote: remote, Base: base, Writable: true, Policy: LastWriteWins}); len(plan) != 0 {
			b.Fatalf("%d steps for a tree in sync", len(plan))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/round")
}
