package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/sandbox"
)

// newBenchSandboxCmd measures the node-local runtime: cold start against runc in the same run,
// starting many instances, and the memory an idle instance costs. Needs root.
func newBenchSandboxCmd() *cobra.Command {
	var (
		bc     sandbox.BenchConfig
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "sandbox",
		Short: "Measure the sandbox: cold start p50/p99 vs runc, start N instances, memory per idle instance (root)",
		Example: `  sudo constellation bench sandbox
  sudo constellation bench sandbox --starts 50 --idle 100 --no-runc --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return fmt.Errorf("bench sandbox needs root (cgroups, namespaces, mounts)")
			}
			if bc.Starts < 1 || bc.Parallel < 1 || bc.Idle < -1 {
				return fmt.Errorf("invalid counts: --starts and --parallel must be at least 1, --idle at least -1 (skip)")
			}
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if !asJSON && isTerminal(os.Stderr) {
				bc.Logf = func(format string, args ...any) {
					fmt.Fprintf(os.Stderr, "\r\033[K"+format, args...)
				}
			}
			kind := "a copy of this binary (a Go program: its own start dominates; install gcc for a static C probe)"
			if bc.Program == "" {
				dir, err := os.MkdirTemp("", "constellation-probe-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				p, k, err := sandbox.BuildProbe(dir)
				if err != nil {
					fmt.Fprintln(os.Stderr, "constellation:", err)
				}
				if p != "" {
					bc.Program, kind = p, k
				}
			} else {
				kind = bc.Program
			}
			r, err := sandbox.Bench(ctx, bc)
			if bc.Logf != nil {
				fmt.Fprint(os.Stderr, "\r\033[K")
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), r)
			}
			ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
			t := newTable(c.OutOrStdout(), "MEASURE", "RESULT")
			t.row("probe program", kind)
			t.row(fmt.Sprintf("cold start (create+start to first write), %d starts, host network", r.Starts), "p50 "+ms(r.ColdP50)+", p99 "+ms(r.ColdP99))
			if r.ColdNetP50 > 0 {
				t.row("cold start with network bridge (netns, veth, address)", "p50 "+ms(r.ColdNetP50)+", p99 "+ms(r.ColdNetP99))
			}
			if r.RuncStarts > 0 {
				t.row(fmt.Sprintf("runc run, same probe and limits, %d starts", r.RuncStarts), "p50 "+ms(r.RuncP50)+", p99 "+ms(r.RuncP99))
				t.row("runc p50 / sandbox p50", fmt.Sprintf("%.1fx", r.RuncRatio))
				if r.RuncRatioNet > 0 {
					t.row("runc p50 / sandbox p50 with network bridge", fmt.Sprintf("%.1fx", r.RuncRatioNet))
				}
			}
			if r.ColdDiskP50 > 0 {
				t.row("cold start with disk_mb ("+r.DiskQuotaMode+")", "p50 "+ms(r.ColdDiskP50)+", p99 "+ms(r.ColdDiskP99))
			}
			t.row(fmt.Sprintf("start %d instances", r.Parallel), fmt.Sprintf("%.3f s", r.StartManyWall.Seconds()))
			if r.Idle > 0 {
				t.row(fmt.Sprintf("idle instance cost (%d idle)", r.Idle), fmt.Sprintf("supervisor %.1f KiB + cgroup kernel %.1f KiB (program itself %.1f KiB, charged to its cgroup)",
					float64(r.IdleSupervisorRSS)/1024, float64(r.IdleCgroupKernel)/1024, float64(r.IdleInstanceMemory)/1024))
			}
			return t.flush()
		},
	}
	f := c.Flags()
	f.IntVar(&bc.Starts, "starts", 200, "cold starts to measure")
	f.IntVar(&bc.Parallel, "parallel", 100, "instances started at once for the start-many measurement")
	f.IntVar(&bc.Idle, "idle", 500, "idle instances for the memory measurement (-1 skips)")
	f.BoolVar(&bc.NoRunc, "no-runc", false, "skip the runc comparison")
	f.Int64Var(&bc.DiskMB, "disk-mb", 0, "also measure cold starts with a disk quota of this size")
	f.StringVar(&bc.Program, "program", "", "probe executable (default: this binary)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
