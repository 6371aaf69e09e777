package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rads-lang/constellation/dfs/fusefs"
	"github.com/rads-lang/constellation/internal/testutil"
)

// BenchmarkFSMountSequential measures sequential write and read of 64 MiB through `fs
// mount` on a real node (DFS content store, one copy: a single node) against the plain
// local disk, in one run over the same bytes. Write: 1 MiB writes then close (the mount
// commits the file to the DFS as one version; the disk file is fsynced). Read: a fresh
// open (the mount drops its page cache at open; the disk file's pages are dropped with
// fadvise). Reports fuse-/disk- write and read MB/s and the ratios.
func BenchmarkFSMountSequential(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("mounting FUSE needs root")
	}
	dir, mnt, disk := b.TempDir(), b.TempDir(), b.TempDir()
	port := testutil.FreePort(b, nil)
	peer := exec.Command(binary(b), "peer", "--data-dir", dir, "--no-mdns", "--node", "bench", "--cluster", "benchfs",
		"--bind", fmt.Sprintf("127.0.0.1:%d", port), "--dfs-capacity-mb", "1024")
	peer.Env = testutil.CleanEnv()
	if err := peer.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		fusefs.Unmount(mnt)
		peer.Process.Signal(unix.SIGTERM)
		peer.Wait()
	})
	cli := func(args ...string) error {
		c := exec.Command(binary(b), append(args, "--data-dir", dir)...)
		c.Env = testutil.CleanEnv()
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %v: %s", args, err, out)
		}
		return nil
	}
	testutil.WaitFor(b, 30*time.Second, "the node's mount", func() (bool, string) {
		err := cli("fs", "mount", mnt, "--background")
		return err == nil, fmt.Sprint(err)
	})
	data := make([]byte, 64<<20)
	rand.Read(data)
	var fw, dw, fr, dr time.Duration
	b.SetBytes(4 * int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("f%d.bin", i) // new content each time: no dedup shortcut
		data[0] = byte(i)
		fw += timeIt(func() { writeAll(b, filepath.Join(mnt, name), data, false) })
		dw += timeIt(func() { writeAll(b, filepath.Join(disk, name), data, true) })
		dropPages(b, filepath.Join(disk, name))
		fr += timeIt(func() { readAll(b, filepath.Join(mnt, name), len(data)) })
		dr += timeIt(func() { readAll(b, filepath.Join(disk, name), len(data)) })
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * float64(len(data)) / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(fw), "fuse-write-MB/s")
	b.ReportMetric(mbps(dw), "disk-write-MB/s")
	b.ReportMetric(mbps(fr), "fuse-read-MB/s")
	b.ReportMetric(mbps(dr), "disk-read-MB/s")
	b.ReportMetric(mbps(fw)/mbps(dw), "write-ratio")
	b.ReportMetric(mbps(fr)/mbps(dr), "read-ratio")
}

func timeIt(fn func()) time.Duration {
	t0 := time.Now()
	fn()
	return time.Since(t0)
}

func writeAll(b *testing.B, p string, data []byte, sync bool) {
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

func readAll(b *testing.B, p string, size int) {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	n, err := io.CopyBuffer(io.Discard, f, make([]byte, 1<<20))
	if err != nil || n != int64(size) {
		b.Fatalf("read %d bytes of %s: %v", n, p, err)
	}
}

func dropPages(b *testing.B, p string) {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
