package main

// `constellation bench cluster` measures the clustering layer with in-process nodes on
// loopback (and one real `peer` process for memory): replication latency, join
// convergence, large-state sync, failure detection, idle traffic and RSS. The Go
// benchmarks in bench_test.go run the same functions.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/node"
)

// benchResult is one measured number.
type benchResult struct {
	Name      string  `json:"name"`
	Nodes     int     `json:"nodes,omitempty"`
	Value     float64 `json:"value"`
	Unit      string  `json:"unit"`
	Goal      string  `json:"goal,omitempty"`
	Reference string  `json:"reference,omitempty"`
	Note      string  `json:"note,omitempty"`
}

type benchOptions struct {
	what          []string
	latencyNodes  []int
	rounds        int
	joinNodes     []int
	joinRounds    int
	syncEntries   int
	detectNodes   []int
	detectRounds  int
	idleNodes     int
	idleWarmup    time.Duration
	idleWindow    time.Duration
	rssWait       time.Duration
	workDir       string
	binary        string // for rss: the constellation binary (default this executable)
	asJSON        bool
	progress      io.Writer // progress lines (stderr); nil: quiet
	progressMutex sync.Mutex
}

func newBenchCmd() *cobra.Command {
	b := &cobra.Command{
		Use:   "bench",
		Short: "Measure this build on this machine",
	}
	o := &benchOptions{}
	var cpuProfile string
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Measure clustering: replication latency, join, 100k-entry sync, failure detection, idle traffic, RSS",
		Long: `Runs in-process nodes on loopback (each with its own data dir under --work-dir) and one
'constellation peer' process for the memory measurement, and prints one row per number.

  latency  a state change on one node until it is visible on every node (p50, p99)
  join     nodes started at once until every node lists every node alive
  sync     a new node joining a node holding --sync-entries entries until it has them all
  detect   a node killed until every other node lists it dead (median of rounds)
  idle     bytes sent per node per second by an idle cluster of --idle-nodes nodes
  rss      resident memory of an idle 'constellation peer' process after --rss-wait`,
		Example: `  constellation bench cluster
  constellation bench cluster --what latency,detect --latency-nodes 10 --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			for _, w := range o.what {
				switch w {
				case "latency", "join", "sync", "detect", "idle", "rss":
				default:
					return fmt.Errorf("invalid --what %q: a comma-separated list of latency, join, sync, detect, idle, rss", w)
				}
			}
			if o.workDir == "" {
				d, err := os.MkdirTemp("", "c7n-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				o.workDir = d
			}
			o.progress = c.ErrOrStderr()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			res, err := runBench(c.Context(), o)
			if o.asJSON {
				if perr := printJSON(c.OutOrStdout(), res); perr != nil {
					return perr
				}
				return err
			}
			t := newTable(c.OutOrStdout(), "MEASURE", "NODES", "VALUE", "UNIT", "GOAL", "REFERENCE", "NOTE")
			for _, r := range res {
				nodes := "-"
				if r.Nodes > 0 {
					nodes = strconv.Itoa(r.Nodes)
				}
				t.row(r.Name, nodes, strconv.FormatFloat(r.Value, 'f', -1, 64), r.Unit, orDash(r.Goal), orDash(r.Reference), r.Note)
			}
			if ferr := t.flush(); ferr != nil {
				return ferr
			}
			return err
		},
	}
	f := c.Flags()
	f.StringSliceVar(&o.what, "what", []string{"latency", "join", "sync", "detect", "idle", "rss"}, "measurements to run")
	f.IntSliceVar(&o.latencyNodes, "latency-nodes", []int{10, 50}, "cluster sizes for latency")
	f.IntVar(&o.rounds, "rounds", 200, "state changes measured per latency cluster size")
	f.IntSliceVar(&o.joinNodes, "join-nodes", []int{5, 20}, "cluster sizes for join")
	f.IntVar(&o.joinRounds, "join-rounds", 3, "joins measured per size (median reported)")
	f.IntVar(&o.syncEntries, "sync-entries", 100000, "entries of the state a new node syncs")
	f.IntSliceVar(&o.detectNodes, "detect-nodes", []int{5, 20}, "cluster sizes for failure detection")
	f.IntVar(&o.detectRounds, "detect-rounds", 3, "kills measured per size (median reported)")
	f.IntVar(&o.idleNodes, "idle-nodes", 20, "cluster size for idle traffic")
	f.DurationVar(&o.idleWarmup, "idle-warmup", 15*time.Second, "settling time before idle traffic is measured")
	f.DurationVar(&o.idleWindow, "idle-window", 30*time.Second, "measurement window for idle traffic")
	f.DurationVar(&o.rssWait, "rss-wait", 30*time.Second, "idle time before RSS is read")
	f.StringVar(&o.workDir, "work-dir", "", "directory for the nodes' data dirs (default a temporary directory, removed after)")
	f.StringVar(&o.binary, "binary", "", "constellation binary for rss (default this executable)")
	f.BoolVar(&o.asJSON, "json", false, "print JSON")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	b.AddCommand(c)
	return b
}

func (o *benchOptions) logf(format string, args ...any) {
	if o.progress == nil {
		return
	}
	o.progressMutex.Lock()
	defer o.progressMutex.Unlock()
	fmt.Fprintf(o.progress, "bench: "+format+"\n", args...)
}

func runBench(ctx context.Context, o *benchOptions) ([]benchResult, error) {
	var out []benchResult
	var errs []error
	do := func(what string, f func() ([]benchResult, error)) {
		if !slices.Contains(o.what, what) || ctx.Err() != nil {
			return
		}
		r, err := f()
		out = append(out, r...)
		if err != nil {
			o.logf("%s: %v", what, err)
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	do("latency", func() ([]benchResult, error) {
		var all []benchResult
		for _, n := range o.latencyNodes {
			r, err := benchLatency(ctx, o, n, o.rounds)
			all = append(all, r...)
			if err != nil {
				return all, err
			}
		}
		return all, nil
	})
	do("join", func() ([]benchResult, error) {
		var all []benchResult
		for _, n := range o.joinNodes {
			r, err := benchJoin(ctx, o, n, o.joinRounds)
			all = append(all, r...)
			if err != nil {
				return all, err
			}
		}
		return all, nil
	})
	do("sync", func() ([]benchResult, error) { return benchSync(ctx, o, o.syncEntries) })
	do("detect", func() ([]benchResult, error) {
		var all []benchResult
		for _, n := range o.detectNodes {
			r, err := benchDetect(ctx, o, n, o.detectRounds)
			all = append(all, r...)
			if err != nil {
				return all, err
			}
		}
		return all, nil
	})
	do("idle", func() ([]benchResult, error) { return benchIdle(ctx, o, o.idleNodes, o.idleWarmup, o.idleWindow) })
	do("rss", func() ([]benchResult, error) { return benchRSS(ctx, o, o.binary, o.rssWait) })
	return out, errors.Join(errs...)
}

// ---- in-process clusters ----

// benchCluster is a set of in-process nodes sharing a work directory.
type benchCluster struct {
	dir   string
	nodes []*node.Node
	seq   int
}

func newBenchCluster(o *benchOptions, tag string) (*benchCluster, error) {
	dir, err := os.MkdirTemp(o.workDir, tag+"-")
	if err != nil {
		return nil, err
	}
	return &benchCluster{dir: dir}, nil
}

// add builds (does not start) a node joining join.
func (c *benchCluster) add(join []string, mod func(*node.Config)) (*node.Node, error) {
	c.seq++
	name := fmt.Sprintf("b%d", c.seq)
	dd := filepath.Join(c.dir, name)
	cfg := node.Config{Cluster: "bench", Node: name, Bind: "127.0.0.1:0", NoMDNS: true, DataDir: dd, Join: join}
	if mod != nil {
		mod(&cfg)
	}
	n, err := node.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	c.nodes = append(c.nodes, n)
	return n, nil
}

// start builds and starts count nodes, each joining the first; it returns once all have
// started (not converged).
func (c *benchCluster) start(ctx context.Context, count int, mod func(*node.Config)) error {
	for i := 0; i < count; i++ {
		var join []string
		if len(c.nodes) > 0 {
			join = []string{c.nodes[0].Status().Addresses[0]}
		}
		n, err := c.add(join, mod)
		if err != nil {
			return err
		}
		if err := n.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (c *benchCluster) close() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Kill() }()
	}
	wg.Wait()
	_ = os.RemoveAll(c.dir)
}

// converged reports whether every node in ns lists exactly want nodes alive.
func converged(ns []*node.Node, want int) bool {
	for _, n := range ns {
		alive := 0
		for _, x := range n.Nodes() {
			if x.Status == api.StatusAlive {
				alive++
			}
		}
		if alive != want {
			return false
		}
	}
	return true
}

// waitUntil polls cond every poll until it holds (returning the time it took) or timeout.
func waitUntil(ctx context.Context, timeout, poll time.Duration, cond func() bool) (time.Duration, error) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("not reached within %v", timeout)
		}
		if ctx.Err() != nil {
			return time.Since(start), ctx.Err()
		}
		time.Sleep(poll)
	}
}

func fmtMs(ds []time.Duration) string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.0f", ms(d))
	}
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// percentile of sorted ds (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds))*p+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// ---- measurements ----

// benchLatency: a state change written on a random node until every node has joined it.
func benchLatency(ctx context.Context, o *benchOptions, count, rounds int) ([]benchResult, error) {
	c, err := newBenchCluster(o, fmt.Sprintf("latency%d", count))
	if err != nil {
		return nil, err
	}
	defer c.close()
	o.logf("latency: starting %d nodes", count)
	if err := c.start(ctx, count, nil); err != nil {
		return nil, err
	}
	if _, err := waitUntil(ctx, 120*time.Second, 50*time.Millisecond, func() bool { return converged(c.nodes, count) }); err != nil {
		return nil, fmt.Errorf("%d nodes did not converge: %w", count, err)
	}
	type arrival struct {
		mu   sync.Mutex // guards seen
		seen map[string]time.Time
	}
	arr := make([]*arrival, count)
	for i, n := range c.nodes {
		a := &arrival{seen: map[string]time.Time{}}
		arr[i] = a
		n.OnStateChange(func(coll, key string) {
			if coll != "bench" {
				return
			}
			now := time.Now()
			a.mu.Lock()
			if _, ok := a.seen[key]; !ok {
				a.seen[key] = now
			}
			a.mu.Unlock()
		})
	}
	time.Sleep(2 * time.Second) // let the join-time traffic settle
	var all, perNode []time.Duration
	for r := 0; r < rounds && ctx.Err() == nil; r++ {
		w := rand.IntN(count)
		key := fmt.Sprintf("k%d", r)
		t0 := time.Now()
		if err := c.nodes[w].PutState("bench", map[string][]byte{key: []byte(t0.String())}); err != nil {
			return nil, err
		}
		var last time.Duration
		_, err := waitUntil(ctx, 10*time.Second, time.Millisecond, func() bool {
			for i, a := range arr {
				if i == w {
					continue
				}
				a.mu.Lock()
				_, ok := a.seen[key]
				a.mu.Unlock()
				if !ok {
					return false
				}
			}
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("round %d: change not visible everywhere: %w", r, err)
		}
		for i, a := range arr {
			if i == w {
				continue
			}
			a.mu.Lock()
			d := a.seen[key].Sub(t0)
			a.mu.Unlock()
			perNode = append(perNode, d)
			last = max(last, d)
		}
		all = append(all, last)
		if last > 300*time.Millisecond {
			o.logf("latency %d nodes: change %d took %v (written at %s)", count, r, last, t0.Format("15:04:05.000"))
		}
		time.Sleep(time.Duration(20+rand.IntN(30)) * time.Millisecond)
	}
	o.logf("latency %d nodes, per change (ms): %v", count, fmtMs(all))
	slices.Sort(all)
	slices.Sort(perNode)
	note := fmt.Sprintf("%d changes; per-node delivery p50 %.1f ms, p99 %.1f ms", len(all), ms(percentile(perNode, 0.5)), ms(percentile(perNode, 0.99)))
	o.logf("latency %d nodes: p50 %v p99 %v (%s)", count, percentile(all, 0.5), percentile(all, 0.99), note)
	return []benchResult{
		{Name: "change visible on every node p50", Nodes: count, Value: round2(ms(percentile(all, 0.5))), Unit: "ms", Note: note},
		{Name: "change visible on every node p99", Nodes: count, Value: round2(ms(percentile(all, 0.99))), Unit: "ms", Goal: "<= 300 ms", Reference: "Corrosion p99 1 s"},
	}, nil
}

// benchJoin: a started seed plus count-1 built nodes; all started at once, until every
// node lists count nodes alive.
func benchJoin(ctx context.Context, o *benchOptions, count, rounds int) ([]benchResult, error) {
	ref := map[int]string{5: "memberlist 0.20 s", 20: "memberlist 0.61 s"}[count]
	var ds []time.Duration
	for r := 0; r < rounds; r++ {
		d, err := func() (time.Duration, error) {
			c, err := newBenchCluster(o, fmt.Sprintf("join%d", count))
			if err != nil {
				return 0, err
			}
			defer c.close()
			if err := c.start(ctx, 1, nil); err != nil {
				return 0, err
			}
			seed := c.nodes[0].Status().Addresses[0]
			for i := 1; i < count; i++ {
				if _, err := c.add([]string{seed}, nil); err != nil {
					return 0, err
				}
			}
			t0 := time.Now()
			errc := make(chan error, count)
			for _, n := range c.nodes[1:] {
				go func() { errc <- n.Start(ctx) }()
			}
			for range c.nodes[1:] {
				if err := <-errc; err != nil {
					return 0, err
				}
			}
			if _, err := waitUntil(ctx, 60*time.Second, 5*time.Millisecond, func() bool { return converged(c.nodes, count) }); err != nil {
				return 0, err
			}
			return time.Since(t0), nil
		}()
		if err != nil {
			return nil, fmt.Errorf("%d nodes: %w", count, err)
		}
		o.logf("join %d nodes: %v", count, d)
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return []benchResult{{Name: "join convergence (median)", Nodes: count, Value: round2(ds[len(ds)/2].Seconds()), Unit: "s", Reference: ref,
		Note: fmt.Sprintf("%d rounds, min %.2f s, max %.2f s", len(ds), ds[0].Seconds(), ds[len(ds)-1].Seconds())}}, nil
}

// benchSync: a node holding entries entries; a new node joins it; until it has them all.
func benchSync(ctx context.Context, o *benchOptions, entries int) ([]benchResult, error) {
	c, err := newBenchCluster(o, "sync")
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.start(ctx, 1, nil); err != nil {
		return nil, err
	}
	a := c.nodes[0]
	o.logf("sync: writing %d entries", entries)
	const batch = 10000
	for i := 0; i < entries; i += batch {
		m := make(map[string][]byte, batch)
		for j := i; j < min(i+batch, entries); j++ {
			m[fmt.Sprintf("entry-%07d", j)] = fmt.Appendf(nil, "value of entry %d", j)
		}
		if err := a.PutState("bench", m); err != nil {
			return nil, err
		}
	}
	b, err := c.add([]string{a.Status().Addresses[0]}, nil)
	if err != nil {
		return nil, err
	}
	in0, out0 := a.Host().Bandwidth()
	t0 := time.Now()
	if err := b.Start(ctx); err != nil {
		return nil, err
	}
	d, err := waitUntil(ctx, 120*time.Second, 5*time.Millisecond, func() bool { return b.StateLen("bench") == entries })
	if err != nil {
		return nil, fmt.Errorf("new node has %d of %d entries: %w", b.StateLen("bench"), entries, err)
	}
	d = time.Since(t0)
	sleep(ctx, 1500*time.Millisecond) // the bandwidth meters update once a second
	in1, out1 := a.Host().Bandwidth()
	o.logf("sync %d entries: %v", entries, d)
	return []benchResult{{Name: fmt.Sprintf("new node syncs %d entries", entries), Nodes: 2, Value: round2(d.Seconds()), Unit: "s", Goal: "<= 5 s",
		Reference: "IPFS Cluster ~24 h on a long history", Note: fmt.Sprintf("%.1f MB moved", float64((in1-in0)+(out1-out0))/1e6)}}, nil
}

// benchDetect: kill one node of a converged cluster; until every other node lists it dead.
func benchDetect(ctx context.Context, o *benchOptions, count, rounds int) ([]benchResult, error) {
	ref := map[int]string{5: "memberlist 6.0 s", 20: "memberlist 7.0 s"}[count]
	var ds []time.Duration
	for r := 0; r < rounds; r++ {
		d, err := func() (time.Duration, error) {
			c, err := newBenchCluster(o, fmt.Sprintf("detect%d", count))
			if err != nil {
				return 0, err
			}
			defer c.close()
			if err := c.start(ctx, count, nil); err != nil {
				return 0, err
			}
			if _, err := waitUntil(ctx, 60*time.Second, 20*time.Millisecond, func() bool { return converged(c.nodes, count) }); err != nil {
				return 0, fmt.Errorf("no convergence: %w", err)
			}
			time.Sleep(time.Second)
			victim := c.nodes[1+rand.IntN(count-1)]
			id := victim.ID().String()
			var rest []*node.Node
			for _, n := range c.nodes {
				if n != victim {
					rest = append(rest, n)
				}
			}
			t0 := time.Now()
			_ = victim.Kill()
			_, err = waitUntil(ctx, 60*time.Second, 10*time.Millisecond, func() bool {
				for _, n := range rest {
					dead := false
					for _, x := range n.Nodes() {
						if x.ID == id {
							dead = x.Status == api.StatusDead
						}
					}
					if !dead {
						return false
					}
				}
				return true
			})
			return time.Since(t0), err
		}()
		if err != nil {
			return nil, fmt.Errorf("%d nodes: %w", count, err)
		}
		o.logf("detect %d nodes: %v", count, d)
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return []benchResult{{Name: "killed node dead everywhere (median)", Nodes: count, Value: round2(ds[len(ds)/2].Seconds()), Unit: "s", Goal: "<= 3 s", Reference: ref,
		Note: fmt.Sprintf("%d rounds, min %.2f s, max %.2f s", len(ds), ds[0].Seconds(), ds[len(ds)-1].Seconds())}}, nil
}

// benchIdle: bytes sent per node per second by an idle, converged cluster.
func benchIdle(ctx context.Context, o *benchOptions, count int, warmup, window time.Duration) ([]benchResult, error) {
	c, err := newBenchCluster(o, fmt.Sprintf("idle%d", count))
	if err != nil {
		return nil, err
	}
	defer c.close()
	o.logf("idle: starting %d nodes", count)
	if err := c.start(ctx, count, nil); err != nil {
		return nil, err
	}
	if _, err := waitUntil(ctx, 120*time.Second, 50*time.Millisecond, func() bool { return converged(c.nodes, count) }); err != nil {
		return nil, fmt.Errorf("no convergence: %w", err)
	}
	// Carry some state so anti-entropy has something to compare (records plus 1000 entries).
	m := map[string][]byte{}
	for i := 0; i < 1000; i++ {
		m[fmt.Sprintf("idle-%04d", i)] = []byte("some value")
	}
	if err := c.nodes[0].PutState("bench", m); err != nil {
		return nil, err
	}
	o.logf("idle: converged; warming up %v, measuring %v", warmup, window)
	sleep(ctx, warmup)
	sum := func() (in, out int64) {
		for _, n := range c.nodes {
			i, o := n.Host().Bandwidth()
			in, out = in+i, out+o
		}
		return
	}
	in0, out0 := sum()
	per0 := make([]int64, len(c.nodes))
	for i, n := range c.nodes {
		_, per0[i] = n.Host().Bandwidth()
	}
	t0 := time.Now()
	sleep(ctx, window)
	in1, out1 := sum()
	el := time.Since(t0).Seconds()
	var maxOut float64
	for i, n := range c.nodes {
		_, o := n.Host().Bandwidth()
		maxOut = max(maxOut, float64(o-per0[i])/el)
	}
	perNode := float64(out1-out0) / el / float64(count)
	if !converged(c.nodes, count) {
		return nil, fmt.Errorf("cluster lost convergence while idle")
	}
	o.logf("idle %d nodes: %.0f B/s sent per node (%.0f B/s received)", count, perNode, float64(in1-in0)/el/float64(count))
	return []benchResult{{Name: "idle traffic sent per node", Nodes: count, Value: round2(perNode), Unit: "B/s", Goal: "<= 250 B/s",
		Reference: "memberlist ~100 B/s (membership only)",
		Note:      fmt.Sprintf("whole cluster %.1f kbit/s over %v; busiest node %.0f B/s; the DHT lookup every 10 min falls outside the window", float64(out1-out0)*8/el/1000, window, maxOut)}}, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// benchRSS: VmRSS of an idle `constellation peer` process after wait.
func benchRSS(ctx context.Context, o *benchOptions, binary string, wait time.Duration) ([]benchResult, error) {
	if binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		binary = exe
	}
	dd, err := os.MkdirTemp(o.workDir, "rss-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dd)
	cmd := exec.CommandContext(ctx, binary, "peer", "--data-dir", dd, "--bind", "127.0.0.1:0", "--no-mdns", "--node", "rss", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "CONSTELLATION_CLUSTER_KEY=")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	cl := api.NewClient(dd, "", "")
	if err := cl.WaitReady(ctx, 30*time.Second); err != nil {
		return nil, fmt.Errorf("peer did not start: %w", err)
	}
	o.logf("rss: peer pid %d idle for %v", cmd.Process.Pid, wait)
	sleep(ctx, wait)
	rss, err := vmRSS(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	o.logf("rss: %.1f MB", float64(rss)/1024)
	return []benchResult{{Name: "RSS of an idle peer process", Nodes: 1, Value: round2(float64(rss) / 1024), Unit: "MB", Goal: "<= 60 MB",
		Reference: "Nomad agent 103 MB, Kubo 107 MB", Note: fmt.Sprintf("after %v, VmRSS", wait)}}, nil
}

// vmRSS reads a process's resident set size in KiB from /proc.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read RSS (Linux only): %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
