package content

import (
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// tcpCopyMBps copies data over a plain loopback TCP connection: the reference.
func tcpCopyMBps(b *testing.B, data []byte) float64 {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	done := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		done <- n
	}()
	start := time.Now()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Write(data); err != nil {
		b.Fatal(err)
	}
	c.Close()
	if n := <-done; n != int64(len(data)) {
		b.Fatalf("tcp copy moved %d bytes", n)
	}
	return mbps(len(data), time.Since(start))
}

func mbps(n int, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// BenchmarkTransfer: 256 MiB put on A (Add), then get on B (Open and read, the blocks
// fetched from A over the bulk protocol), between two in-process member hosts over
// loopback; a plain TCP copy of the same bytes in the same run is the reference.
// A variant with 1 MiB chunks shows the cost of one file per block in flatfs.
// Metrics: put_MB/s, get_MB/s, pin_MB/s (B pins the file: fetch + fsync, no read),
// tcp_MB/s and get/tcp.
func BenchmarkTransfer(b *testing.B) {
	size := 256 << 20
	data := randBytes(70, size)
	for _, v := range []struct {
		tr      transport
		chunker string
	}{{quicOnly, ""}, {tcpOnly, ""}, {tcpOnly, "size-1048576"}} {
		name := string(v.tr)
		if v.chunker != "" {
			name += "/" + v.chunker
		}
		tr := v.tr
		b.Run(name, func(b *testing.B) {
			hs := startHosts(b, 2, tr)
			var put, get, pin, ref []float64
			for i := 0; i < b.N; i++ {
				a := newStore(b, hs[0], nil)
				bb := newStore(b, hs[1], nil)
				ctx := context.Background()
				t0 := time.Now()
				added, err := a.Add(ctx, bytes.NewReader(data), AddOptions{Chunker: v.chunker})
				if err != nil {
					b.Fatal(err)
				}
				put = append(put, mbps(size, time.Since(t0)))
				t0 = time.Now()
				f, err := bb.Open(ctx, added.Root, []peer.ID{hs[0].ID()})
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, f)
				f.Close()
				if err != nil || n != int64(size) {
					b.Fatalf("get: %d bytes, %v", n, err)
				}
				get = append(get, mbps(size, time.Since(t0)))
				bb.Close()
				p := newStore(b, hs[1], nil)
				t0 = time.Now()
				if err := p.Pin(ctx, added.Root, []peer.ID{hs[0].ID()}); err != nil {
					b.Fatal(err)
				}
				pin = append(pin, mbps(size, time.Since(t0)))
				p.Close()
				a.Close()
				ref = append(ref, tcpCopyMBps(b, data))
			}
			g, r := median(get), median(ref)
			b.ReportMetric(median(put), "put_MB/s")
			b.ReportMetric(g, "get_MB/s")
			b.ReportMetric(median(pin), "pin_MB/s")
			b.ReportMetric(r, "tcp_MB/s")
			b.ReportMetric(g/r, "get/tcp")
		})
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkSmallWriteVisible: a 4 KiB Add on A until B has read it (Open with A as the
// holder), p50 and p99 in milliseconds.
func BenchmarkSmallWriteVisible(b *testing.B) {
	hs := startHosts(b, 2, quicOnly)
	a := newStore(b, hs[0], nil)
	bb := newStore(b, hs[1], nil)
	ctx := context.Background()
	var lat []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data := randBytes(uint64(1000+i), 4096)
		t0 := time.Now()
		added, err := a.Add(ctx, bytes.NewReader(data), AddOptions{})
		if err != nil {
			b.Fatal(err)
		}
		f, err := bb.Open(ctx, added.Root, []peer.ID{hs[0].ID()})
		if err != nil {
			b.Fatal(err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || !bytes.Equal(got, data) {
			b.Fatalf("read %d bytes, %v", len(got), err)
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50_ms")
	b.ReportMetric(lat[min(len(lat)-1, len(lat)*99/100)], "p99_ms")
}

// BenchmarkImportCAR: import a 64 MiB CAR into an empty store (verify, fsync), MB/s.
func BenchmarkImportCAR(b *testing.B) {
	src := newStore(b, nil, nil)
	a, err := src.Add(context.Background(), bytes.NewReader(randBytes(71, 64<<20)), AddOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var car bytes.Buffer
	if err := src.ExportCAR(context.Background(), a.Root, &car, nil); err != nil {
		b.Fatal(err)
	}
	var rates []float64
	b.SetBytes(int64(car.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst := newStore(b, nil, nil)
		b.StartTimer()
		t0 := time.Now()
		if _, err := dst.ImportCAR(context.Background(), bytes.NewReader(car.Bytes()), 1<<30); err != nil {
			b.Fatal(err)
		}
		rates = append(rates, mbps(car.Len(), time.Since(t0)))
		b.StopTimer()
		dst.Close()
		b.StartTimer()
	}
	b.ReportMetric(median(rates), "import_MB/s")
}

// BenchmarkRepair1GiB: the copy half of a re-replication. A tree of 1 GiB (four 256 MiB
// files) is pinned on A; its other holder died, and C pins every file from A (what the
// repair runner does once the grace has passed). Metrics: repair_s (seconds until the
// 1 GiB is pinned and fsynced on C) and repair_MB/s. The grace (--dfs-grace, 30 s by
// default) and the failure detection come on top.
func BenchmarkRepair1GiB(b *testing.B) {
	hs := startHosts(b, 2, tcpOnly)
	ctx := context.Background()
	var secs []float64
	for i := 0; i < b.N; i++ {
		a := newStore(b, hs[0], nil)
		var roots []Added
		for f := range 4 {
			added, err := a.Add(ctx, bytes.NewReader(randBytes(uint64(500+f), 256<<20)), AddOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if err := a.Pin(ctx, added.Root, nil); err != nil {
				b.Fatal(err)
			}
			roots = append(roots, added)
		}
		c := newStore(b, hs[1], nil)
		t0 := time.Now()
		for _, r := range roots {
			if err := c.Pin(ctx, r.Root, []peer.ID{hs[0].ID()}); err != nil {
				b.Fatal(err)
			}
		}
		secs = append(secs, time.Since(t0).Seconds())
		c.Close()
		a.Close()
	}
	s := median(secs)
	b.ReportMetric(s, "repair_s")
	b.ReportMetric(float64(1<<30)/1e6/s, "repair_MB/s")
}
