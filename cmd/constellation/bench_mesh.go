package main

// `constellation bench mesh` measures the service mesh on this machine: the latency one
// remote hop adds to a call (p50, p99 at a fixed request rate), requests/s through the mesh,
// directly and through Debian's nginx as a reverse proxy (one Go load generator for all
// three, in the same run), and the time to resolve a service name.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/node"
)

type benchMeshOptions struct {
	rate        int
	latencyDur  time.Duration
	conc        int
	rpsDur      time.Duration
	nginx       string
	cpuProfile  string
	workDir     string
	asJSON      bool
	bodyBytes   int
	resolveRuns int
}

func newBenchMeshCmd() *cobra.Command {
	o := &benchMeshOptions{}
	c := &cobra.Command{
		Use:   "mesh",
		Short: "Measure the service mesh: added latency of a remote hop, requests/s vs direct and nginx, resolve time",
		Long: `Starts two in-process nodes on loopback (A calls, B hosts the endpoint: a Go HTTP server
answering --body-bytes), then with one Go load generator (keep-alive connections):

  latency  --rate requests/s for --latency-duration, directly to the endpoint and through A's
           loopback entry point (A -> libp2p stream over QUIC -> B -> endpoint): p50/p99 of each
           and the difference (the added latency of one remote hop)
  rps      --concurrency closed-loop workers for --rps-duration each: directly, through the mesh,
           and through nginx as a reverse proxy to the same endpoint (keepalive upstream), when
           an nginx binary is found (--nginx; apt-get install nginx-light)
  resolve  resolving the service name on A (a read of the local replica)`,
		Example: `  constellation bench mesh
  constellation bench mesh --rate 1000 --concurrency 64 --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.rate < 1 || o.conc < 1 || o.latencyDur <= 0 || o.rpsDur <= 0 {
				return errors.New("--rate, --concurrency and the durations must be positive")
			}
			if o.workDir == "" {
				d, err := os.MkdirTemp("", "c7n-bench-mesh-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				o.workDir = d
			}
			if o.cpuProfile != "" {
				f, err := os.Create(o.cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			res, err := runBenchMesh(c.Context(), o, func(format string, args ...any) {
				if !o.asJSON {
					fmt.Fprintf(c.ErrOrStderr(), "bench: "+format+"\n", args...)
				}
			})
			if o.asJSON {
				if perr := printJSON(c.OutOrStdout(), res); perr != nil {
					return perr
				}
				return err
			}
			t := newTable(c.OutOrStdout(), "MEASURE", "VALUE", "UNIT", "GOAL", "REFERENCE")
			for _, r := range res {
				t.row(r.Name, strconv.FormatFloat(r.Value, 'f', -1, 64), r.Unit, orDash(r.Goal), orDash(r.Reference))
			}
			if ferr := t.flush(); ferr != nil {
				return ferr
			}
			return err
		},
	}
	f := c.Flags()
	f.IntVar(&o.rate, "rate", 500, "requests/s of the latency measurement")
	f.DurationVar(&o.latencyDur, "latency-duration", 5*time.Second, "duration of each latency measurement")
	f.IntVar(&o.conc, "concurrency", 32, "closed-loop workers of the requests/s measurement")
	f.DurationVar(&o.rpsDur, "rps-duration", 5*time.Second, "duration of each requests/s measurement")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (both nodes and the load generator) to this file")
	f.StringVar(&o.nginx, "nginx", "", "nginx binary (default: nginx on PATH or /usr/sbin/nginx; none: skip)")
	f.IntVar(&o.bodyBytes, "body-bytes", 64, "response body size of the endpoint")
	f.IntVar(&o.resolveRuns, "resolve-runs", 1000000, "resolves timed")
	f.StringVar(&o.workDir, "work-dir", "", "directory for data dirs and the nginx config (default a temporary directory, removed after)")
	f.BoolVar(&o.asJSON, "json", false, "print JSON")
	return c
}

// meshBenchTarget is one way to reach the endpoint.
type meshBenchTarget struct {
	name, url, host string
	pid             int // a proxy process whose CPU (with its children's) counts too
}

// cpuSeconds is the CPU time used so far by this process and, with pid, by that process
// and its live children (nginx's workers), from /proc.
func cpuSeconds(pid int) float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t := float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	if pid == 0 {
		return t
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15): fields after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if p != pid && ppid != pid {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		t += (ut + st) / 100 // clock ticks (USER_HZ 100)
	}
	return t
}

func runBenchMesh(ctx context.Context, o *benchMeshOptions, logf func(string, ...any)) ([]benchResult, error) {
	body := make([]byte, o.bodyBytes)
	for i := range body {
		body[i] = 'x'
	}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	go backend.Serve(bl)
	defer backend.Close()
	port := bl.Addr().(*net.TCPAddr).Port

	cl, err := newBenchCluster(&benchOptions{workDir: o.workDir}, "mesh")
	if err != nil {
		return nil, err
	}
	defer cl.close()
	if err := cl.start(ctx, 2, func(c *node.Config) { c.ClusterKey = "bench-mesh-key" }); err != nil {
		return nil, err
	}
	a, b := cl.nodes[0], cl.nodes[1]
	if _, err := b.Mesh().Register(api.MeshRegisterRequest{Name: "bench", Port: port}); err != nil {
		return nil, err
	}
	logf("waiting for the endpoint to be healthy on node A")
	deadline := time.Now().Add(30 * time.Second)
	for {
		eps, _ := a.Mesh().Endpoints("", "bench")
		if len(eps) == 1 && eps[0].Health == "healthy" {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the endpoint did not become healthy on node A within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	zero := 0
	no := false
	if _, err := a.Mesh().Configure("", "bench", api.MeshServiceConfig{Retries: &zero, Hedge: &no}); err != nil {
		return nil, err
	}
	direct := meshBenchTarget{"direct", "http://" + bl.Addr().String() + "/", "", 0}
	viaMesh := meshBenchTarget{"mesh", "http://" + a.Mesh().LocalAddr() + "/", "bench.mesh", 0}
	var res []benchResult

	// Latency at a fixed rate.
	lat := map[string][2]time.Duration{}
	for _, t := range []meshBenchTarget{direct, viaMesh} {
		logf("latency %s: %d req/s for %v", t.name, o.rate, o.latencyDur)
		ds, errs := fixedRate(ctx, t, o.rate, o.latencyDur)
		if errs > 0 {
			logf("latency %s: %d errors", t.name, errs)
		}
		p50, p99 := latPercentile(ds, .5), latPercentile(ds, .99)
		lat[t.name] = [2]time.Duration{p50, p99}
		res = append(res, benchResult{Name: "latency " + t.name + " p50", Value: usec(p50), Unit: "us", Note: fmt.Sprintf("%d req/s", o.rate)},
			benchResult{Name: "latency " + t.name + " p99", Value: usec(p99), Unit: "us"})
	}
	res = append(res,
		benchResult{Name: "added latency of one remote hop p50", Value: usec(lat["mesh"][0] - lat["direct"][0]), Unit: "us", Goal: "<= 150"},
		benchResult{Name: "added latency of one remote hop p99", Value: usec(lat["mesh"][1] - lat["direct"][1]), Unit: "us", Goal: "<= 1000", Reference: "Linkerd: < 1 ms p50 per proxy"})

	// Requests/s.
	targets := []meshBenchTarget{direct, viaMesh}
	ngBin := o.nginx
	if ngBin == "" {
		if p, err := exec.LookPath("nginx"); err == nil {
			ngBin = p
		} else if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			ngBin = "/usr/sbin/nginx"
		}
	}
	if ngBin != "" && ngBin != "none" {
		ng, err := startNginx(ctx, ngBin, o.workDir, bl.Addr().String())
		if err != nil {
			logf("nginx: %v (skipped)", err)
		} else {
			defer ng.stop()
			targets = append(targets, meshBenchTarget{"nginx", "http://" + ng.addr + "/", "", ng.cmd.Process.Pid})
		}
	} else {
		logf("no nginx binary: the nginx reference is skipped (apt-get install nginx-light)")
	}
	rps := map[string]float64{}
	for _, t := range targets {
		logf("requests/s %s: %d workers for %v", t.name, o.conc, o.rpsDur)
		cpu0 := cpuSeconds(t.pid)
		n, errs := closedLoop(ctx, t, o.conc, o.rpsDur)
		cpu := cpuSeconds(t.pid) - cpu0
		if errs > 0 {
			logf("requests/s %s: %d errors", t.name, errs)
		}
		rps[t.name] = float64(n) / o.rpsDur.Seconds()
		res = append(res, benchResult{Name: "requests/s " + t.name, Value: float64(int(rps[t.name])), Unit: "req/s", Note: fmt.Sprintf("%d workers", o.conc)})
		if n > 0 {
			res = append(res, benchResult{Name: "cpu per request " + t.name, Value: float64(int(cpu/float64(n)*1e7)) / 10, Unit: "us",
				Note: "load generator, endpoint, nodes (and nginx) together"})
		}
	}
	if rps["nginx"] > 0 {
		res = append(res, benchResult{Name: "requests/s mesh / nginx", Value: float64(int(100*rps["mesh"]/rps["nginx"])) / 100, Unit: "ratio", Goal: ">= 0.5"})
	}
	res = append(res, benchResult{Name: "requests/s mesh / direct", Value: float64(int(100*rps["mesh"]/rps["direct"])) / 100, Unit: "ratio"})

	// Resolve.
	start := time.Now()
	for i := 0; i < o.resolveRuns; i++ {
		if _, _, ok := a.Mesh().Resolve("", "bench"); !ok {
			return res, errors.New("resolve lost the service")
		}
	}
	per := time.Since(start) / time.Duration(max(1, o.resolveRuns))
	res = append(res, benchResult{Name: "resolve a service name", Value: float64(per.Nanoseconds()) / 1000, Unit: "us", Goal: "<= 10", Reference: "seed: < 10 ms discovery"})
	return res, nil
}

func usec(d time.Duration) float64 { return float64(d.Nanoseconds()/100) / 10 }

func benchClient(conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc + 8, MaxIdleConns: conc + 8, DisableCompression: true}}
}

func benchGet(ctx context.Context, c *http.Client, t meshBenchTarget) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return err
	}
	if t.host != "" {
		req.Host = t.host
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return err
}

// fixedRate sends rate requests/s (open loop, at most 256 in flight) and returns their latencies.
func fixedRate(ctx context.Context, t meshBenchTarget, rate int, d time.Duration) ([]time.Duration, int) {
	c := benchClient(256)
	defer c.CloseIdleConnections()
	for i := 0; i < 50; i++ { // warm up connections
		_ = benchGet(ctx, c, t)
	}
	var mu sync.Mutex
	var ds []time.Duration
	var errs atomic.Int64
	var firstErr atomic.Value
	defer func() {
		if e := firstErr.Load(); e != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: first error: %v\n", t.name, e)
		}
	}()
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= d || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Until(at))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			if err := benchGet(ctx, c, t); err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			el := time.Since(t0)
			mu.Lock()
			ds = append(ds, el)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return ds, int(errs.Load())
}

// closedLoop runs conc workers back to back for d and counts the answers.
func closedLoop(ctx context.Context, t meshBenchTarget, conc int, d time.Duration) (int64, int64) {
	c := benchClient(conc)
	defer c.CloseIdleConnections()
	for i := 0; i < conc; i++ {
		_ = benchGet(ctx, c, t)
	}
	var n, errs atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := benchGet(ctx, c, t); err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return n.Load(), errs.Load()
}

type nginxProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startNginx runs nginx in the foreground as a reverse proxy to upstream.
func startNginx(ctx context.Context, bin, dir, upstream string) (*nginxProc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	nd := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(nd, 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream backend { server %[2]s; keepalive 256; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, nd, upstream, addr)
	cf := filepath.Join(nd, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-e", filepath.Join(nd, "error.log"), "-p", nd, "-c", cf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &nginxProc{cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(filepath.Join(nd, "error.log"))
			return nil, fmt.Errorf("nginx exited: %s", b)
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		}
	}
	p.stop()
	return nil, errors.New("nginx did not listen within 5s")
}

func (p *nginxProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt) // SIGINT: fast shutdown
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
