package main

// `constellation bench fs` measures the distributed file system between two in-process
// nodes on loopback: a 4 KiB write on A until readable on B (p50, p99), and a large put on
// A and get on B (MB/s) beside a plain TCP copy of the same bytes over loopback.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/dfs"
	"github.com/rads-lang/constellation/node"
)

type benchFSOptions struct {
	writes  int
	sizeMB  int
	workDir string
	asJSON  bool
}

func newBenchFSCmd() *cobra.Command {
	o := &benchFSOptions{}
	c := &cobra.Command{
		Use:   "fs",
		Short: "Measure the DFS: 4 KiB write-to-readable latency and large put/get throughput between two nodes",
		Long: `Starts two nodes in this process on loopback (data under --work-dir, removed afterwards).
latency: --writes puts of 4 KiB on node A with replication 2 (both nodes pin and sync
before the ack), each until node B has seen the entry and read the bytes.
throughput: one put of --size-mb MiB on A with replication 1 placed on A, then a get on B
(B fetches every block from A), beside a plain TCP copy of the same bytes over loopback.
For reference (same machine): Kubo 0.38 moved 256 MiB over TCP loopback at 57 MB/s.`,
		Example: `  constellation bench fs
  constellation bench fs --writes 500 --size-mb 256 --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.writes < 1 || o.sizeMB < 1 {
				return fmt.Errorf("--writes and --size-mb must be at least 1")
			}
			res, err := runBenchFS(c.Context(), o)
			if err != nil {
				return err
			}
			if o.asJSON {
				return printJSON(c.OutOrStdout(), res)
			}
			t := newTable(c.OutOrStdout(), "NAME", "VALUE", "UNIT", "NOTE")
			for _, r := range res {
				t.row(r.Name, fmt.Sprintf("%.2f", r.Value), r.Unit, r.Note)
			}
			return t.flush()
		},
	}
	c.Flags().IntVar(&o.writes, "writes", 200, "4 KiB writes for the latency")
	c.Flags().IntVar(&o.sizeMB, "size-mb", 256, "size of the throughput file in MiB")
	c.Flags().StringVar(&o.workDir, "work-dir", os.TempDir(), "directory for the nodes' data")
	c.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	return c
}

func runBenchFS(ctx context.Context, o *benchFSOptions) ([]benchResult, error) {
	bc, err := newBenchCluster(&benchOptions{workDir: o.workDir}, "fs")
	if err != nil {
		return nil, err
	}
	defer bc.close()
	if err := bc.start(ctx, 2, nil); err != nil {
		return nil, err
	}
	if _, err := waitUntil(ctx, 30*time.Second, 50*time.Millisecond, func() bool { return converged(bc.nodes, 2) }); err != nil {
		return nil, fmt.Errorf("nodes did not see each other: %w", err)
	}
	a, b := bc.nodes[0].DFS(), bc.nodes[1].DFS()
	if _, err := waitUntil(ctx, 30*time.Second, 100*time.Millisecond, func() bool {
		e, err := a.Put(ctx, "/bench/warm", bytes.NewReader([]byte("warm")), dfs.PutOptions{Replication: 2})
		return err == nil && len(e.Holders) == 2
	}); err != nil {
		return nil, fmt.Errorf("the nodes' block stores did not become known: %w", err)
	}
	lat, err := benchFSLatency(ctx, a, b, o.writes)
	if err != nil {
		return nil, err
	}
	res := []benchResult{
		{Name: "fs write 4 KiB until readable on B p50", Nodes: 2, Value: ms(percentile(lat, 0.50)), Unit: "ms", Goal: "< 100 ms (seed), p99 <= 10 ms"},
		{Name: "fs write 4 KiB until readable on B p99", Nodes: 2, Value: ms(percentile(lat, 0.99)), Unit: "ms", Goal: "< 100 ms (seed), p99 <= 10 ms"},
	}
	tp, err := benchFSThroughput(ctx, bc.nodes, o.sizeMB, o.workDir)
	if err != nil {
		return nil, err
	}
	return append(res, tp...), nil
}

func benchFSLatency(ctx context.Context, a, b *dfs.Service, n int) ([]time.Duration, error) {
	ch, _, cancel, err := b.Watch("/bench/lat")
	if err != nil {
		return nil, err
	}
	defer cancel()
	data := make([]byte, 4096)
	var lat []time.Duration
	for i := 0; i < n; i++ {
		copy(data, fmt.Sprintf("%08d", i))
		path := fmt.Sprintf("/bench/lat/f%d", i)
		start := time.Now()
		if _, err := a.Put(ctx, path, bytes.NewReader(data), dfs.PutOptions{Replication: 2}); err != nil {
			return nil, err
		}
		for e := range ch {
			if e.Path == path {
				break
			}
		}
		f, _, err := b.Open(ctx, path, 0)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat, nil
}

func benchFSThroughput(ctx context.Context, ns []*node.Node, sizeMB int, workDir string) ([]benchResult, error) {
	a, b := ns[0].DFS(), ns[1].DFS()
	data := make([]byte, sizeMB<<20)
	rand.Read(data)
	// a path whose single holder is A: try names until the rendezvous choice is A
	aName := ns[0].Status().Name
	var path string
	start := time.Now()
	var put time.Duration
	for i := 0; ; i++ {
		path = fmt.Sprintf("/bench/big-%d", i)
		start = time.Now()
		e, err := a.Put(ctx, path, bytes.NewReader(data), dfs.PutOptions{Replication: 1})
		if err != nil {
			return nil, err
		}
		put = time.Since(start)
		if len(e.Holders) == 1 && e.Holders[0] == aName {
			break
		}
		if i > 8 {
			return nil, fmt.Errorf("no write was placed on A")
		}
		rand.Read(data) // another content (no block shared with B), another placement
	}
	if _, err := waitUntil(ctx, 10*time.Second, 5*time.Millisecond, func() bool {
		_, err := b.Stat(ctx, path)
		return err == nil
	}); err != nil {
		return nil, err
	}
	start = time.Now()
	f, _, err := b.Open(ctx, path, 0)
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(io.Discard, f)
	f.Close()
	if err != nil {
		return nil, err
	}
	get := time.Since(start)
	tcp, err := tcpCopy(data, nil)
	if err != nil {
		return nil, err
	}
	disk, err := tcpCopyToDisk(data, workDir)
	if err != nil {
		return nil, err
	}
	mb := float64(n) / 1e6
	return []benchResult{
		{Name: fmt.Sprintf("fs put %d MiB on A (chunk, store, sync)", sizeMB), Nodes: 2, Value: mb / put.Seconds(), Unit: "MB/s"},
		{Name: fmt.Sprintf("fs get %d MiB on B from A", sizeMB), Nodes: 2, Value: mb / get.Seconds(), Unit: "MB/s", Goal: ">= 3x Kubo (171 MB/s) and >= 50% of the plain copy", Reference: "Kubo 0.38: 57 MB/s"},
		{Name: fmt.Sprintf("plain TCP copy %d MiB over loopback", sizeMB), Value: mb / tcp.Seconds(), Unit: "MB/s", Note: "memory to discard"},
		{Name: fmt.Sprintf("plain TCP copy %d MiB over loopback into a file", sizeMB), Value: mb / disk.Seconds(), Unit: "MB/s", Note: "lands on disk like the get (no fsync)"},
		{Name: "fs get / plain copy", Value: tcp.Seconds() / get.Seconds() * 100, Unit: "%"},
		{Name: "fs get / plain copy into a file", Value: disk.Seconds() / get.Seconds() * 100, Unit: "%"},
	}, nil
}

// tcpCopyToDisk is tcpCopy with the receiver writing into a new file in dir (what a get
// does with the blocks it receives), without fsync (a get's cached blocks are not
// synced either).
func tcpCopyToDisk(data []byte, dir string) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "bench-fs-copy-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	return tcpCopy(data, f)
}

// tcpCopy sends data over a loopback TCP connection and returns the time until all of it
// was received (into sink, or discarded when sink is nil).
func tcpCopy(data []byte, sink io.Writer) (time.Duration, error) {
	if sink == nil {
		sink = io.Discard
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(sink, c)
		done <- err
	}()
	start := time.Now()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return 0, err
	}
	if _, err := c.Write(data); err != nil {
		c.Close()
		return 0, err
	}
	c.Close()
	if err := <-done; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
