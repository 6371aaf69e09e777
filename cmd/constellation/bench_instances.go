package main

// `constellation bench instances` measures the time from POST /v1/instances to the
// instance running (the create answers once the program is exec'd, full isolation), on a
// local and on a remote target node. It runs two `constellation peer` processes on
// loopback, each with its own data dir, and removes every instance, cgroup, mount and loop
// device afterwards.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
)

type benchInstancesOptions struct {
	runs    int
	targets []string
	ramMB   int64
	cpu     float64
	pids    int64
	diskMB  int64
	workDir string
	asJSON  bool
}

func newBenchInstancesCmd() *cobra.Command {
	o := &benchInstancesOptions{}
	c := &cobra.Command{
		Use:   "instances",
		Short: "Measure POST /v1/instances until the instance runs (p50, p99), local and remote target",
		Long: `Starts two nodes on loopback (peer processes of this executable, data under --work-dir) and creates --runs
instances through node A's API, targeting node A (local) and node B (remote, forwarded over
the cluster protocol). Each create returns once the program (sleep) runs in its namespaces
with its cgroup limits; the instance is removed before the next create. Needs root.

For comparison (same machine): Nomad 1.10.5 takes 256 ms median from job registration to
task started with raw_exec (no isolation) and 17.8 s with its isolating exec driver.`,
		Example: `  sudo constellation bench instances
  sudo constellation bench instances --runs 200 --targets local --disk-mb 64 --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.runs < 1 {
				return fmt.Errorf("--runs must be at least 1")
			}
			for _, t := range o.targets {
				if t != "local" && t != "remote" {
					return fmt.Errorf("invalid --targets %q: local, remote or both", t)
				}
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("bench instances needs root (cgroups and namespaces)")
			}
			if o.workDir == "" {
				d, err := os.MkdirTemp("", "c7n-bench-inst-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				o.workDir = d
			}
			res, err := runBenchInstances(c.Context(), o, func(format string, args ...any) {
				fmt.Fprintf(c.ErrOrStderr(), "bench: "+format+"\n", args...)
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
	f.IntVar(&o.runs, "runs", 100, "creates measured per target")
	f.StringSliceVar(&o.targets, "targets", []string{"local", "remote"}, "local, remote or both")
	f.Int64Var(&o.ramMB, "ram-mb", 64, "ram_mb of each instance")
	f.Float64Var(&o.cpu, "cpu-percent", 50, "cpu_percent of each instance")
	f.Int64Var(&o.pids, "pids", 64, "pids of each instance")
	f.Int64Var(&o.diskMB, "disk-mb", 0, "disk_mb of each instance (0: no disk quota)")
	f.StringVar(&o.workDir, "work-dir", "", "directory for the nodes' data dirs (default a temporary directory, removed after)")
	f.BoolVar(&o.asJSON, "json", false, "print JSON")
	return c
}

func latPercentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func latMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func runBenchInstances(ctx context.Context, o *benchInstancesOptions, logf func(string, ...any)) ([]benchResult, error) {
	var procs []*benchPeer
	defer func() {
		for _, p := range procs {
			p.stop()
		}
		tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, p := range procs {
			if err := instances.Teardown(tctx, p.dir); err != nil {
				logf("teardown %s: %v", p.dir, err)
			}
		}
	}()
	a, err := startBenchPeer(ctx, o, "bench-a", "")
	if a != nil {
		procs = append(procs, a)
	}
	if err != nil {
		return nil, err
	}
	st, err := api.NewClient(a.dir, "", "").Status(ctx)
	if err != nil || len(st.Addresses) == 0 {
		return nil, fmt.Errorf("bench node a: %v (addresses %v)", err, st.Addresses)
	}
	b, err := startBenchPeer(ctx, o, "bench-b", st.Addresses[0])
	if b != nil {
		procs = append(procs, b)
	}
	if err != nil {
		return nil, err
	}
	cl := api.NewClient(a.dir, "", "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		ns, err := cl.Nodes(ctx)
		alive := 0
		for _, x := range ns {
			if x.Status == api.StatusAlive {
				alive++
			}
		}
		if err == nil && alive == 2 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("bench nodes did not see each other within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out []benchResult
	for _, target := range o.targets {
		tnode := ""
		if target == "remote" {
			tnode = "bench-b"
		}
		// Warm up: the first create opens the target's runtime (cgroup parents, quota fs).
		lat := make([]time.Duration, 0, o.runs)
		for i := -1; i < o.runs; i++ {
			name := fmt.Sprintf("bench-%s-%d", target, i+1)
			req := api.CreateRequest{Name: name, Node: tnode, Command: []string{"sleep", "1000"},
				RAMMB: o.ramMB, CPUPercent: o.cpu, PIDs: o.pids, DiskMB: o.diskMB}
			t0 := time.Now()
			rec, err := cl.CreateInstance(ctx, req)
			d := time.Since(t0)
			if err != nil {
				return out, fmt.Errorf("create %s: %w", name, err)
			}
			if rec.Status != api.InstanceRunning {
				return out, fmt.Errorf("create %s: status %s, want running", name, rec.Status)
			}
			if i >= 0 {
				lat = append(lat, d)
			}
			if err := cl.RemoveInstanceGrace(ctx, name, 0); err != nil {
				return out, fmt.Errorf("rm %s: %w", name, err)
			}
		}
		logf("%s: %d creates, p50 %v, p99 %v", target, len(lat), latPercentile(lat, 0.5), latPercentile(lat, 0.99))
		goal := map[string]string{"local": "<= 10 ms", "remote": "<= 20 ms"}[target]
		out = append(out,
			benchResult{Name: "create_to_running_" + target + "_p50", Value: latMS(latPercentile(lat, 0.5)), Unit: "ms", Goal: goal,
				Reference: "Nomad 1.10.5: 256 ms raw_exec, 17.8 s exec (median)"},
			benchResult{Name: "create_to_running_" + target + "_p99", Value: latMS(latPercentile(lat, 0.99)), Unit: "ms"},
		)
	}
	return out, nil
}

// benchPeer is a `constellation peer` process of this executable: each node runs in its
// own process, as in production.
type benchPeer struct {
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startBenchPeer(ctx context.Context, o *benchInstancesOptions, name, join string) (*benchPeer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(o.workDir, name)
	args := []string{"peer", "--node", name, "--cluster", "bench-instances", "--bind", "127.0.0.1:0",
		"--no-mdns", "--data-dir", dir, "--log-level", "warn"}
	if join != "" {
		args = append(args, "--join", join)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "CONSTELLATION_CLUSTER_KEY=")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &benchPeer{dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	cl := api.NewClient(dir, "", "")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := cl.Status(ctx); err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return p, fmt.Errorf("bench node %s exited at start", name)
		default:
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("bench node %s did not answer within 20s", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *benchPeer) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
