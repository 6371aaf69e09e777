package main

// `constellation bench ui` measures what open dashboards cost the node that serves them:
// the node process's CPU time (from /proc) while N simulated dashboards stay open, against
// the same node idle in the same run.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
)

type uiBenchOptions struct {
	dashboards int
	nodes      int
	duration   time.Duration
	warmup     time.Duration
	patterns   []string
	workDir    string
	binary     string
	asJSON     bool
}

func newBenchUICmd() *cobra.Command {
	o := &uiBenchOptions{}
	c := &cobra.Command{
		Use:   "ui",
		Short: "Measure the node CPU cost of open web dashboards",
		Long: `Starts a cluster of --nodes 'constellation peer' processes on loopback (the first with a TCP
API), logs in to the first node's dashboard with a session cookie, and measures the first
node's CPU time (utime+stime from /proc/PID/stat) over --duration, as percent of one core:

  idle      no dashboard open (the same run's reference)
  overview  --dashboards browsers left on the overview page, which follows
            GET /v1/cluster/overview as a blocking read (wait 10s)
            (ui/assets/js/pages/overview.js)
  lists     the same dashboards following the list routes instead: an event stream
            (GET /v1/events), blocking reads of /v1/nodes and /v1/instances (wait 60s),
            and every 10 s /v1/monitor/dashboard, two PromQL queries and
            /v1/monitor/alerts (what an overview without the aggregate route costs)

Each phase is preceded by --warmup. Prints one row per number (--json: JSON).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.dashboards < 1 || o.dashboards > 1000 {
				return fmt.Errorf("--dashboards %d: want 1 to 1000", o.dashboards)
			}
			if o.nodes < 1 || o.nodes > 10 {
				return fmt.Errorf("--nodes %d: want 1 to 10", o.nodes)
			}
			if o.duration < time.Second {
				return fmt.Errorf("--duration %v: want at least 1s", o.duration)
			}
			for _, p := range o.patterns {
				if p != "overview" && p != "lists" {
					return fmt.Errorf("--pattern %q: want overview or lists", p)
				}
			}
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			res, err := benchUI(ctx, o, c.ErrOrStderr())
			if err != nil {
				return err
			}
			if o.asJSON {
				return printJSON(c.OutOrStdout(), res)
			}
			t := newTable(c.OutOrStdout(), "MEASURE", "VALUE", "UNIT", "GOAL", "NOTE")
			for _, r := range res {
				t.row(r.Name, strconv.FormatFloat(r.Value, 'f', -1, 64), r.Unit, r.Goal, r.Note)
			}
			return t.flush()
		},
	}
	f := c.Flags()
	f.IntVar(&o.dashboards, "dashboards", 10, "open dashboards")
	f.IntVar(&o.nodes, "nodes", 3, "nodes of the cluster (the first serves the dashboards)")
	f.DurationVar(&o.duration, "duration", 60*time.Second, "measured time of each phase")
	f.DurationVar(&o.warmup, "warmup", 5*time.Second, "time before each phase's measurement")
	f.StringSliceVar(&o.patterns, "pattern", []string{"overview", "lists"}, "request patterns to measure: overview, lists")
	f.StringVar(&o.workDir, "work-dir", "", "directory for the nodes' data dirs (default a temporary one, removed)")
	f.StringVar(&o.binary, "binary", "", "the constellation binary to run as nodes (default this executable)")
	f.BoolVar(&o.asJSON, "json", false, "print JSON")
	return c
}

// procCPU is a process's user+system CPU time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time (Linux only): %w", err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64) // field 14 of stat
	st, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func benchUI(ctx context.Context, o *uiBenchOptions, progress io.Writer) ([]benchResult, error) {
	binary := o.binary
	if binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		binary = exe
	}
	work, err := os.MkdirTemp(o.workDir, "bench-ui-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	var peers []*benchPeer
	defer func() {
		for _, p := range peers {
			p.stop()
		}
	}()
	apiPort, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	var join string
	for i := range o.nodes {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(work, fmt.Sprintf("n%d", i))
		args := []string{"peer", "--data-dir", dir, "--no-mdns", "--node", fmt.Sprintf("n%d", i), "--cluster", "bench-ui",
			"--bind", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "warn"}
		if i == 0 {
			args = append(args, "--api-listen", fmt.Sprintf("127.0.0.1:%d", apiPort))
			join = fmt.Sprintf("127.0.0.1:%d", port)
		} else {
			args = append(args, "--join", join)
		}
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "CONSTELLATION_CLUSTER_KEY=")
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		p := &benchPeer{cmd: cmd, dir: dir, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(p.done) }()
		peers = append(peers, p)
	}
	first := peers[0]
	cl := api.NewClient(first.dir, "unix:"+filepath.Join(first.dir, "api.sock"), "")
	if err := cl.WaitReady(ctx, 30*time.Second); err != nil {
		return nil, fmt.Errorf("node n0 did not start: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ns, err := cl.Nodes(ctx)
		alive := 0
		for _, n := range ns {
			if n.Status == api.StatusAlive {
				alive++
			}
		}
		if err == nil && alive == o.nodes {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("the cluster did not form: %d of %d nodes alive (%v)", alive, o.nodes, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	hc, err := dashboardClient(first.dir, base)
	if err != nil {
		return nil, err
	}
	pid := first.cmd.Process.Pid
	fmt.Fprintf(progress, "bench ui: %d nodes up; node n0 (pid %d) serves %s/ui/\n", o.nodes, pid, base)

	measure := func(name string, run func(ctx context.Context)) (benchResult, error) {
		pctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		if run != nil {
			wg.Add(1)
			go func() { defer wg.Done(); run(pctx) }()
		}
		sleepCtx(ctx, o.warmup)
		c0, err := procCPU(pid)
		t0 := time.Now()
		if err == nil {
			sleepCtx(ctx, o.duration)
		}
		c1, err2 := procCPU(pid)
		el := time.Since(t0)
		cancel()
		wg.Wait()
		if err == nil {
			err = err2
		}
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return benchResult{}, err
		}
		pct := 100 * (c1 - c0).Seconds() / el.Seconds()
		r := benchResult{Name: "node CPU, " + name, Nodes: o.nodes, Value: round2(pct), Unit: "% of a core",
			Note: fmt.Sprintf("%v of node n0's process", el.Round(time.Second))}
		fmt.Fprintf(progress, "bench ui: %s: %.2f%% of a core\n", name, pct)
		return r, nil
	}
	var out []benchResult
	idle, err := measure("idle (reference)", nil)
	if err != nil {
		return nil, err
	}
	out = append(out, idle)
	for _, p := range o.patterns {
		var count atomic.Int64
		r, err := measure(fmt.Sprintf("%d dashboards (%s)", o.dashboards, p), func(ctx context.Context) {
			runDashboards(ctx, hc, base, o.dashboards, p, &count)
		})
		if err != nil {
			return nil, err
		}
		r.Goal = "< 2 % of a core above idle"
		r.Note += fmt.Sprintf("; %.1f requests/s; %.2f%% above idle", float64(count.Load())/(o.duration+o.warmup).Seconds(), r.Value-idle.Value)
		r.Reference = fmt.Sprintf("idle %.2f%%", idle.Value)
		out = append(out, r)
	}
	return out, nil
}

// dashboardClient logs in to the dashboard with the node's token (TLS pinned to the
// node's certificate) and answers a client holding the session cookie.
func dashboardClient(dataDir, base string) (*http.Client, error) {
	tok, err := os.ReadFile(filepath.Join(dataDir, "api.token"))
	if err != nil {
		return nil, err
	}
	fpb, err := os.ReadFile(filepath.Join(dataDir, api.FingerprintFile))
	if err != nil {
		return nil, err
	}
	fp := strings.TrimSpace(string(fpb))
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   true, // as browsers: one multiplexed connection
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // the pin below is the check
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 || api.Fingerprint(raw[0]) != fp {
					return errors.New("the node's certificate does not match its api.fingerprint")
				}
				return nil
			},
		},
	}}
	body, _ := json.Marshal(api.UILoginRequest{Token: strings.TrimSpace(string(tok))})
	resp, err := hc.Post(base+"/ui/login", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("dashboard login: %s %s", resp.Status, b)
	}
	return hc, nil
}

// runDashboards keeps n dashboards open until ctx ends, counting their requests.
func runDashboards(ctx context.Context, hc *http.Client, base string, n int, pattern string, count *atomic.Int64) {
	var wg sync.WaitGroup
	loop := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				fn()
			}
		}()
	}
	get := func(path string) (string, bool) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return "", false
		}
		count.Add(1)
		resp, err := hc.Do(req)
		if err != nil {
			sleepCtx(ctx, time.Second)
			return "", false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			sleepCtx(ctx, time.Second)
			return "", false
		}
		return resp.Header.Get(api.IndexHeader), true
	}
	blocking := func(path, wait string) func() {
		index := ""
		return func() {
			p := path
			if index != "" {
				p += "?index=" + index + "&wait=" + wait
			}
			if ix, ok := get(p); ok {
				index = ix
			}
		}
	}
	for range n {
		switch pattern {
		case "overview":
			loop(blocking("/v1/cluster/overview", "10s"))
		case "lists":
			loop(func() { get("/v1/events") }) // a stream: returns when ctx ends
			loop(blocking("/v1/nodes", "60s"))
			loop(blocking("/v1/instances", "60s"))
			loop(func() {
				for _, p := range []string{"/v1/monitor/dashboard", "/api/v1/query?query=" + url.QueryEscape("constellation_node_cpu_percent"),
					"/api/v1/query?query=" + url.QueryEscape("constellation_node_memory_used_percent"), "/v1/monitor/alerts"} {
					get(p)
				}
				sleepCtx(ctx, 10*time.Second)
			})
		}
	}
	wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
