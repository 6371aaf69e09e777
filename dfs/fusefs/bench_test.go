package fusefs

import (
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchBytes is the size of the file each pass writes and reads.
const benchBytes = 64 << 20

// BenchmarkSequential measures, in one run over the same bytes, sequential write and
// read through a mount (over the in-memory backend: the cost of FUSE, the write buffer
// and the commit, without the DFS's own) against the plain local disk holding the
// mount's buffers: write (1 MiB writes, close; the disk file also fsynced, the mount's
// commit reads its buffer back) and read (1 MiB reads of a fresh open; the disk file's
// pages dropped first with fadvise, the mount's dropped at open).
// Reports fuse-write-MB/s, disk-write-MB/s, fuse-read-MB/s, disk-read-MB/s and the
// ratios.
func BenchmarkSequential(b *testing.B) {
	requireRoot(b)
	d := newMemDFS()
	mnt, _ := mount(b, d, Options{Prefix: "/bench"})
	disk := b.TempDir()
	data := make([]byte, benchBytes)
	rand.Read(data)
	var fw, dw, fr, dr time.Duration
	b.SetBytes(4 * benchBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fw += timed(b, func() { seqWrite(b, filepath.Join(mnt, "f.bin"), data, false) })
		dw += timed(b, func() { seqWrite(b, filepath.Join(disk, "f.bin"), data, true) })
		dropCache(b, filepath.Join(disk, "f.bin"))
		fr += timed(b, func() { seqRead(b, filepath.Join(mnt, "f.bin")) })
		dr += timed(b, func() { seqRead(b, filepath.Join(disk, "f.bin")) })
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * benchBytes / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(fw), "fuse-write-MB/s")
	b.ReportMetric(mbps(dw), "disk-write-MB/s")
	b.ReportMetric(mbps(fr), "fuse-read-MB/s")
	b.ReportMetric(mbps(dr), "disk-read-MB/s")
	b.ReportMetric(mbps(fw)/mbps(dw), "write-ratio")
	b.ReportMetric(mbps(fr)/mbps(dr), "read-ratio")
}

func timed(b *testing.B, fn func()) time.Duration {
	t0 := time.Now()
	fn()
	return time.Since(t0)
}

func seqWrite(b *testing.B, p string, data []byte, sync bool) {
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := f.Write(data[off : off+1<<20]); err != nil {
			b.Fatal(err)
		}
	}
	if sync {
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

func seqRead(b *testing.B, p string) {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	n, err := io.CopyBuffer(io.Discard, f, make([]byte, 1<<20))
	if err != nil || n != benchBytes {
		b.Fatalf("read %d bytes: %v", n, err)
	}
}

// dropCache drops a (synced) file's pages so the next read comes from the disk.
func dropCache(b *testing.B, p string) {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
