package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/node"
)

// instanceCommands are the instance verbs: create, start, stop, restart, set-limits, list,
// show, stats, logs, wait, rm, snapshot, resources.
func instanceCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newCreateCmd(g), newStartCmd(g), newStopCmd(g), newRestartCmd(g), newSetLimitsCmd(g),
		newListCmd(g), newShowCmd(g), newStatsCmd(g), newLogsCmd(g), newWaitCmd(g), newRmCmd(g),
		newSnapshotCmd(g), newResourcesCmd(g), newTeardownCmd(g),
	}
}

func newTeardownCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "teardown",
		Short: "Destroy every instance of a stopped node and release its cgroups, mounts and loop devices",
		Long: `Decommission the instances of the node whose data dir is --data-dir: every instance is
killed and removed with its data, and the runtime's cgroups, mounts and loop devices are
released. The node must not be running (stop it first); its other state is kept.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			dir := g.dataDir
			if dir == "" {
				dir = api.DefaultDataDir()
			}
			if _, err := g.client().Status(c.Context()); err == nil {
				return fmt.Errorf("the node of %s is running: stop it first (instances of a running node are removed with 'constellation rm')", dir)
			}
			if err := instances.Teardown(c.Context(), dir); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "released every instance of %s\n", dir)
			return nil
		},
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// parseEnv turns repeated K=V flags into a map.
func parseEnv(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	env := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\n") {
			return nil, fmt.Errorf("invalid --env %q: KEY=VALUE, e.g. --env PORT=8080", kv)
		}
		env[k] = v
	}
	return env, nil
}

// maxScriptUpload bounds --script FILE (its content travels in the create request).
const maxScriptUpload = 900 << 10

func newCreateCmd(g *globals) *cobra.Command {
	var (
		req      api.CreateRequest
		env      []string
		uid, gid int
		noStart  bool
		asJSON   bool
	)
	c := &cobra.Command{
		Use:   "create --name NAME [limits] [--script FILE | -- CMD ARGS...]",
		Short: "Create and start an isolated instance, on this node or another (--node)",
		Long: `Create an instance with resource limits and start it (unless --no-start).

The program is either a command after '--' (looked up in the system PATH of the target node)
or --script FILE: a local file whose content is sent to the node (.rads scripts run with the
rads interpreter). With --code DIR (a directory under the node's code roots), --script names
a file inside DIR on the node instead.

The node refuses a create that does not fit its free resources, with the numbers.

The instance reaches its node's API through /run/constellation/api.sock with the token in
/run/constellation/token. By default that token may only read and manage the instance
itself; --grant G gives more (see docs/instances.md): instances:read, instances:manage,
instances:create, deployments:read, deployments:write, nodes:read, events:read,
messages:send.`,
		Example: `  constellation create --name web --cpu-percent 25 --ram-mb 512 --disk-mb 1024 --pids 128 \
      --env PORT=8080 -- python3 -m http.server 8080
  constellation create --name worker --script worker.rads --node node-2 --restart on-failure:5
  constellation create --name supervisor --grant instances:create --grant instances:read -- ./supervise`,
		RunE: func(c *cobra.Command, args []string) error {
			if req.Name == "" {
				return fmt.Errorf("--name is required, e.g. --name web")
			}
			e, err := parseEnv(env)
			if err != nil {
				return err
			}
			req.Env = e
			if len(args) > 0 {
				req.Command = args
			}
			if req.Script != "" && len(args) > 0 {
				return fmt.Errorf("give either --script FILE or a command after '--', not both")
			}
			if req.Script == "" && len(args) == 0 {
				return fmt.Errorf("nothing to run: give --script FILE or a command after '--', e.g. -- sleep 60")
			}
			if req.Script != "" && req.Code == "" {
				b, err := os.ReadFile(req.Script)
				if err != nil {
					return fmt.Errorf("--script %s: %w (to run a script that is already on the node, add --code DIR)", req.Script, err)
				}
				if len(b) > maxScriptUpload {
					return fmt.Errorf("--script %s is %d bytes; uploads are limited to %d: put it under a code root and use --code DIR", req.Script, len(b), maxScriptUpload)
				}
				req.ScriptContent = string(b)
				req.Script = filepath.Base(req.Script)
			}
			if _, err := instances.ParseRestart(req.Restart); err != nil {
				return fmt.Errorf("--restart: %v", err)
			}
			if _, err := instances.ParseGrants(req.Grants); err != nil {
				return fmt.Errorf("--grant: %v", err)
			}
			if c.Flags().Changed("uid") {
				req.UID = &uid
			}
			if c.Flags().Changed("gid") {
				req.GID = &gid
			}
			if noStart {
				f := false
				req.Start = &f
			}
			out := c.OutOrStdout()
			live := !asJSON && isTerminal(os.Stdout)
			where := req.Node
			if where == "" {
				where = "this node"
			}
			start := time.Now()
			stopSpin := func() {}
			if live {
				ctx, cancel := context.WithCancel(c.Context())
				done := make(chan struct{})
				go func() {
					defer close(done)
					t := time.NewTicker(80 * time.Millisecond)
					defer t.Stop()
					frames := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
					for i := 0; ; i++ {
						fmt.Fprintf(out, "\r%s creating %s on %s (%s)\033[K", frames[i%len(frames)], req.Name, where, time.Since(start).Round(time.Millisecond))
						select {
						case <-ctx.Done():
							fmt.Fprint(out, "\r\033[K")
							return
						case <-t.C:
						}
					}
				}()
				stopSpin = func() { cancel(); <-done }
			}
			rec, err := g.client().CreateInstance(c.Context(), req)
			stopSpin()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, rec)
			}
			fmt.Fprintf(out, "%s %s on %s: %s (id %s, %s)\n", map[bool]string{true: "✓", false: "created"}[live], rec.Name, rec.Node, rec.Status, rec.ID, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&req.Name, "name", "", "instance name, unique in the cluster (required)")
	f.StringVar(&req.Namespace, "namespace", "", "namespace, e.g. team-backend (default \"default\")")
	f.StringVar(&req.Node, "node", "", "node to run on: name or peer ID (default this node)")
	f.Float64Var(&req.CPUPercent, "cpu-percent", 0, "CPU limit as percent of one core (200 = two cores; 0 = unlimited)")
	f.IntVar(&req.CPUCores, "cpu-cores", 0, "dedicated cores (cpuset pinning)")
	f.Int64Var(&req.RAMMB, "ram-mb", 0, "memory limit in MiB (0 = unlimited)")
	f.Int64Var(&req.DiskMB, "disk-mb", 0, "disk quota of the instance's data in MiB (0 = unlimited)")
	f.Int64Var(&req.PIDs, "pids", 0, "maximum processes and threads (0 = unlimited)")
	f.StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringVar(&req.Script, "script", "", "script to run: a local file (uploaded), or a file in --code DIR")
	f.StringVar(&req.Code, "code", "", "code directory on the node, under its code roots (shared read-only, copy-on-write)")
	f.StringVar(&req.Runtime, "runtime", "", "interpreter for --script (default rads for .rads files)")
	f.StringVar(&req.Restart, "restart", "never", "restart policy: never, on-failure, on-failure:N, always")
	f.StringVar(&req.Network, "network", "", "bridge (the node's default: own address on the node bridge, NAT to the outside), none (loopback only) or host (the node's network)")
	f.StringArrayVarP(&req.Publish, "publish", "p", nil, "forward a node port to the instance, HOSTPORT:PORT[/tcp|/udp] as in docker run -p (repeatable; bridge network)")
	f.BoolVar(&req.HostRoot, "host-root", false, "no user namespace: uid 0 inside is host root (the node must run with --allow-host-root)")
	f.StringVar(&req.Seccomp, "seccomp", "", "system call filter: default, unconfined, or the path of an OCI seccomp profile (JSON) on the node")
	f.IntVar(&uid, "uid", 0, "run as this uid (default nobody)")
	f.IntVar(&gid, "gid", 0, "run as this gid (default nogroup)")
	f.BoolVar(&noStart, "no-start", false, "create only; start later with 'constellation start NAME'")
	f.StringVar(&req.Reservation, "reservation", "", "run on a reservation's capacity (an ID from 'constellation reserve'): on its node, with its resources unless given")
	f.StringArrayVar(&req.MountFS, "mount-fs", nil, "give the instance a view of a DFS directory: PREFIX:TARGET[:ro], e.g. /cluster/data:/data:ro (repeatable; writes commit on close; docs/dfs.md)")
	f.StringArrayVar(&req.Secrets, "secret", nil, "give the instance this secret of its namespace as an environment variable of the same name, or NAME:file as the file /run/secrets/NAME (repeatable; 'constellation secrets set')")
	f.IntVar(&req.MetricsPort, "metrics-port", 0, "port where the instance serves Prometheus metrics at /metrics; its node scrapes it every sampling interval")
	f.StringArrayVar(&req.Grants, "grant", nil, "let the instance's API token do more than manage itself (repeatable): "+strings.Join(instances.AllGrants, ", "))
	f.BoolVar(&asJSON, "json", false, "print the instance as JSON (no progress line)")
	return c
}

// printInstance prints one instance's record as a two-column table or JSON.
func printInstance(w io.Writer, r api.Instance, asJSON bool) error {
	if asJSON {
		return printJSON(w, r)
	}
	t := newTable(w, "FIELD", "VALUE")
	t.row("name", r.Name)
	t.row("namespace", r.Namespace)
	t.row("id", r.ID)
	t.row("node", fmt.Sprintf("%s (%s)", r.Node, orDash(r.NodeStatus)))
	t.row("status", r.Status)
	if r.ExitCode != nil {
		t.row("last exit", fmt.Sprintf("%s, code %d", r.ExitReason, *r.ExitCode))
	}
	t.row("restarts", fmt.Sprint(r.Restarts))
	t.row("restart policy", r.Restart)
	t.row("limits", limitsString(r))
	if len(r.Command) > 0 {
		t.row("command", strings.Join(r.Command, " "))
	}
	if r.Script != "" {
		t.row("script", r.Script)
	}
	if r.Code != "" {
		t.row("code", r.Code)
	}
	if len(r.Env) > 0 {
		t.row("env", node.FormatLabels(r.Env))
	}
	if len(r.Grants) > 0 {
		t.row("grants", strings.Join(r.Grants, ", "))
	}
	if len(r.MountFS) > 0 {
		t.row("mount-fs", strings.Join(r.MountFS, ", "))
	}
	if len(r.Secrets) > 0 {
		t.row("secrets", strings.Join(r.Secrets, ", "))
	}
	if r.CreatedBy != "" {
		t.row("created by", "instance "+r.CreatedBy)
	}
	t.row("created", r.CreatedAt.Local().Format(time.RFC3339))
	if r.StartedAt != nil {
		t.row("started", r.StartedAt.Local().Format(time.RFC3339)+" ("+ago(*r.StartedAt)+")")
	}
	return t.flush()
}

func limitsString(r api.Instance) string {
	var parts []string
	if r.CPUPercent > 0 {
		parts = append(parts, fmt.Sprintf("cpu %g%%", r.CPUPercent))
	}
	if r.CPUCores > 0 {
		parts = append(parts, fmt.Sprintf("cores %d", r.CPUCores))
	}
	if r.RAMMB > 0 {
		parts = append(parts, fmt.Sprintf("ram %dM", r.RAMMB))
	}
	if r.DiskMB > 0 {
		parts = append(parts, fmt.Sprintf("disk %dM", r.DiskMB))
	}
	if r.PIDs > 0 {
		parts = append(parts, fmt.Sprintf("pids %d", r.PIDs))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func instanceArgs(c *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes 1 argument: the instance NAME (see 'constellation list'), got %d", c.CommandPath(), len(args))
	}
	return nil
}

// simpleOp builds start/stop-like commands that print the instance afterwards.
func simpleOp(g *globals, use, short, op string, body func(c *cobra.Command) (any, error), flags func(c *cobra.Command)) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  instanceArgs,
		RunE: func(c *cobra.Command, args []string) error {
			var in any
			if body != nil {
				b, err := body(c)
				if err != nil {
					return err
				}
				in = b
			}
			var r api.Instance
			if err := g.client().InstanceOp(c.Context(), args[0], op, in, &r); err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), r)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s on %s: %s\n", r.Name, r.Node, r.Status)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the instance as JSON")
	if flags != nil {
		flags(c)
	}
	return c
}

func newStartCmd(g *globals) *cobra.Command {
	return simpleOp(g, "start NAME", "Start a created or exited instance (on whichever node runs it)", "start", nil, nil)
}

func newStopCmd(g *globals) *cobra.Command {
	var grace time.Duration
	var signal string
	return simpleOp(g, "stop NAME", "Stop an instance: SIGTERM (or --signal), then SIGKILL to all its processes after --grace", "stop",
		func(c *cobra.Command) (any, error) {
			s := grace.Seconds()
			return api.StopRequest{GraceS: &s, Signal: signal}, nil
		},
		func(c *cobra.Command) {
			c.Flags().DurationVar(&grace, "grace", 10*time.Second, "time between the signal and SIGKILL")
			c.Flags().StringVar(&signal, "signal", "", "signal sent first instead of SIGTERM: a name (INT, HUP, QUIT, USR1...) or a number")
		})
}

// limitFlags registers --cpu-percent, --cpu-cores, --ram-mb, --disk-mb, --pids and builds a
// LimitsRequest with only the flags given.
func limitFlags(c *cobra.Command) func() api.LimitsRequest {
	var cpu float64
	var cores int
	var ram, disk, pids int64
	f := c.Flags()
	f.Float64Var(&cpu, "cpu-percent", 0, "new CPU limit, percent of one core (0 = unlimited)")
	f.IntVar(&cores, "cpu-cores", 0, "new number of dedicated cores")
	f.Int64Var(&ram, "ram-mb", 0, "new memory limit in MiB (0 = unlimited)")
	f.Int64Var(&disk, "disk-mb", 0, "new disk quota in MiB")
	f.Int64Var(&pids, "pids", 0, "new process limit")
	return func() api.LimitsRequest {
		var r api.LimitsRequest
		if f.Changed("cpu-percent") {
			r.CPUPercent = &cpu
		}
		if f.Changed("cpu-cores") {
			r.CPUCores = &cores
		}
		if f.Changed("ram-mb") {
			r.RAMMB = &ram
		}
		if f.Changed("disk-mb") {
			r.DiskMB = &disk
		}
		if f.Changed("pids") {
			r.PIDs = &pids
		}
		return r
	}
}

func newRestartCmd(g *globals) *cobra.Command {
	var get func() api.LimitsRequest
	var grace time.Duration
	return simpleOp(g, "restart NAME [--cpu-percent N --ram-mb N ...]", "Restart an instance, optionally with new limits (set-limits + restart)", "restart",
		func(c *cobra.Command) (any, error) {
			r := get()
			s := grace.Seconds()
			r.GraceS = &s
			return r, nil
		},
		func(c *cobra.Command) {
			get = limitFlags(c)
			c.Flags().DurationVar(&grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL")
		})
}

func newSetLimitsCmd(g *globals) *cobra.Command {
	var get func() api.LimitsRequest
	return simpleOp(g, "set-limits NAME --cpu-percent N --ram-mb N ...", "Change a running instance's limits without restarting it", "set-limits",
		func(c *cobra.Command) (any, error) {
			r := get()
			if r == (api.LimitsRequest{}) {
				return nil, fmt.Errorf("set-limits needs at least one of --cpu-percent, --cpu-cores, --ram-mb, --disk-mb, --pids")
			}
			return r, nil
		},
		func(c *cobra.Command) { get = limitFlags(c) })
}

// ListRow is the table of `constellation list`.
func newListCmd(g *globals) *cobra.Command {
	var (
		asJSON    bool
		onNode    string
		status    string
		namespace string
	)
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "ps"},
		Short:   "List every instance in the cluster with its node and status",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			f := api.InstanceFilter{Node: onNode, Namespace: namespace}
			if status != "" {
				f.Status = strings.Split(status, ",")
			}
			rs, _, err := g.client().ListInstances(c.Context(), f, nil) // the node filters
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), rs)
			}
			t := newTable(c.OutOrStdout(), "NAME", "NAMESPACE", "NODE", "STATUS", "EXIT", "RESTARTS", "CPU", "RAM", "DISK", "CREATED")
			for _, r := range rs {
				nd := r.Node
				if r.NodeStatus != "" && r.NodeStatus != api.StatusAlive {
					nd += " (" + r.NodeStatus + ")"
				}
				exit := "-"
				if r.ExitCode != nil {
					exit = fmt.Sprint(*r.ExitCode)
				}
				cpu := "-"
				if r.CPUPercent > 0 {
					cpu = fmt.Sprintf("%g%%", r.CPUPercent)
				}
				if r.CPUCores > 0 {
					cpu = fmt.Sprintf("%d cores", r.CPUCores)
				}
				ram, disk := "-", "-"
				if r.RAMMB > 0 {
					ram = humanMB(uint64(r.RAMMB))
				}
				if r.DiskMB > 0 {
					disk = humanMB(uint64(r.DiskMB))
				}
				t.row(r.Name, r.Namespace, nd, r.Status, exit, fmt.Sprint(r.Restarts), cpu, ram, disk, ago(r.CreatedAt))
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	c.Flags().StringVar(&onNode, "node", "", "only instances on this node (name or peer ID)")
	c.Flags().StringVar(&status, "status", "", "only instances with these statuses, comma-separated (created, starting, running, stopped, exited, failed, oom_killed)")
	c.Flags().StringVar(&namespace, "namespace", "", "only instances in this namespace")
	return c
}

func newShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one instance: node, status, last exit, limits, program",
		Args:  instanceArgs,
		RunE: func(c *cobra.Command, args []string) error {
			r, err := g.client().Instance(c.Context(), args[0])
			if err != nil {
				return err
			}
			return printInstance(c.OutOrStdout(), r, asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newStatsCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "stats NAME",
		Short: "Show an instance's resource use: cpu %, ram, disk, processes, uptime",
		Args:  instanceArgs,
		RunE: func(c *cobra.Command, args []string) error {
			s, err := g.client().InstanceStats(c.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), s)
			}
			lim := func(v float64, l int64, unit string) string {
				if l > 0 {
					return fmt.Sprintf("%.1f%s of %d%s (%.0f%%)", v, unit, l, unit, 100*v/float64(l))
				}
				return fmt.Sprintf("%.1f%s (no limit)", v, unit)
			}
			t := newTable(c.OutOrStdout(), "FIELD", "VALUE")
			t.row("instance", s.Name+" on "+s.Node)
			t.row("status", s.Status)
			cpu := fmt.Sprintf("%.1f%%", s.CPU)
			if s.Limits.CPUPercent > 0 {
				cpu += fmt.Sprintf(" of %g%%", s.Limits.CPUPercent)
			}
			t.row("cpu", cpu)
			t.row("ram", lim(s.RAMMB, s.Limits.RAMMB, "M"))
			t.row("disk", lim(s.DiskMB, s.Limits.DiskMB, "M"))
			pids := fmt.Sprint(s.PIDs)
			if s.Limits.PIDs > 0 {
				pids += fmt.Sprintf(" of %d", s.Limits.PIDs)
			}
			t.row("pids", pids)
			t.row("uptime", (time.Duration(s.UptimeS * float64(time.Second))).Round(time.Second).String())
			t.row("restarts", fmt.Sprint(s.Restarts))
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON: cpu, ram_mb, disk_mb, pids, uptime_s, ...")
	return c
}

func newLogsCmd(g *globals) *cobra.Command {
	var (
		follow   bool
		stream   string
		instance string
	)
	c := &cobra.Command{
		Use:   "logs NAME [-f]",
		Short: "Print an instance's output (stdout and stderr); -f follows it",
		Long: `Print an instance's output (stdout and stderr); -f follows it.

An instance whose name is also a subcommand of logs (search) is named with --instance:
constellation logs --instance search -f`,
		Args: func(c *cobra.Command, args []string) error {
			if instance != "" {
				if len(args) != 0 {
					return fmt.Errorf("%s: give the instance either as NAME or with --instance, not both", c.CommandPath())
				}
				return nil
			}
			return instanceArgs(c, args)
		},
		RunE: func(c *cobra.Command, args []string) error {
			if instance != "" {
				args = []string{instance}
			}
			switch stream {
			case "all", "stdout", "stderr":
			default:
				return fmt.Errorf("invalid --stream %q: stdout, stderr or all", stream)
			}
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			rc, err := g.client().InstanceLogs(ctx, args[0], stream, follow)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(c.OutOrStdout(), rc)
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until interrupted or the instance ends")
	c.Flags().StringVar(&stream, "stream", "all", "stdout, stderr or all")
	c.Flags().StringVar(&instance, "instance", "", "the instance, when its name is a logs subcommand (search)")
	return c
}

func newWaitCmd(g *globals) *cobra.Command {
	var (
		asJSON  bool
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:   "wait NAME",
		Short: "Wait until an instance exits (and will not restart); print its status and exit code",
		Args:  instanceArgs,
		RunE: func(c *cobra.Command, args []string) error {
			op := "wait"
			if timeout > 0 {
				op += "?timeout=" + timeout.String()
			}
			var r api.WaitResult
			if err := g.client().InstanceOp(c.Context(), args[0], op, nil, &r); err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), r)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: %s (%s, code %d)\n", r.Name, r.Status, r.Reason, r.ExitCode)
			return waitExit(r)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (default: wait forever)")
	return c
}

// waitExit is wait's exit status: 0 only when the instance ended well (exited 0 or was
// stopped on request); its exit code when it failed with one; 1 otherwise.
func waitExit(r api.WaitResult) error {
	switch {
	case r.Status == api.InstanceExited && r.ExitCode == 0, r.Status == api.InstanceStopped:
		return nil
	case r.ExitCode > 0 && r.ExitCode < 256:
		return exitError{r.ExitCode}
	}
	return exitError{1}
}

func newRmCmd(g *globals) *cobra.Command {
	var grace time.Duration
	c := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Stop and remove instances: processes, cgroup, data, logs and their records",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var errs []error
			for _, name := range args {
				if err := g.client().RemoveInstanceGrace(c.Context(), name, grace); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", name, err))
					continue
				}
				fmt.Fprintf(c.OutOrStdout(), "removed %s\n", name)
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().DurationVar(&grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL of a running instance")
	return c
}

func newSnapshotCmd(g *globals) *cobra.Command {
	var save, restore, del string
	var list, asJSON bool
	c := &cobra.Command{
		Use:   "snapshot NAME (--save TAG | --restore TAG | --list | --delete TAG)",
		Short: "Save an instance's data under a tag, restore, list or delete its snapshots (they belong to the instance and count against its disk_mb)",
		Args:  instanceArgs,
		RunE: func(c *cobra.Command, args []string) error {
			given := 0
			for _, b := range []bool{save != "", restore != "", list, del != ""} {
				if b {
					given++
				}
			}
			if given != 1 {
				return fmt.Errorf("give exactly one of --save TAG, --restore TAG, --list or --delete TAG")
			}
			if list {
				snaps, err := g.client().Snapshots(c.Context(), args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(c.OutOrStdout(), snaps)
				}
				t := newTable(c.OutOrStdout(), "TAG", "NODE", "SAVED", "SIZE")
				for _, s := range snaps {
					t.row(s.Tag, s.Node, ago(s.At), humanBytes(s.Bytes))
				}
				return t.flush()
			}
			if del != "" {
				if err := g.client().DeleteSnapshot(c.Context(), args[0], del); err != nil {
					return err
				}
				if !asJSON {
					fmt.Fprintf(c.OutOrStdout(), "deleted snapshot %s of %s\n", del, args[0])
				}
				return nil
			}
			op, tag := "snapshot", save
			if restore != "" {
				op, tag = "restore", restore
			}
			var r api.SnapshotResult
			if err := g.client().InstanceOp(c.Context(), args[0], op, api.SnapshotRequest{Tag: tag}, &r); err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), r)
			}
			if op == "snapshot" {
				fmt.Fprintf(c.OutOrStdout(), "saved %s as %s on %s (%s)\n", r.Name, r.Tag, r.Node, humanBytes(r.Bytes))
			} else {
				extra := ""
				if r.Restarted {
					extra = " (stopped and started again)"
				}
				fmt.Fprintf(c.OutOrStdout(), "restored %s from %s on %s%s\n", r.Name, r.Tag, r.Node, extra)
			}
			return nil
		},
	}
	c.Flags().StringVar(&save, "save", "", "save the instance's data under this tag")
	c.Flags().StringVar(&restore, "restore", "", "replace the instance's data with this tag's")
	c.Flags().BoolVar(&list, "list", false, "list the instance's snapshots")
	c.Flags().StringVar(&del, "delete", "", "delete the snapshot with this tag")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func humanBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func newResourcesCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "resources",
		Short: "Show the cluster's CPU, RAM and disk: totals and what is still available, per node",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := g.client().Resources(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), r)
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "Cluster (%d alive nodes, %d instances)\n", r.NodesAlive, r.Instances)
			fmt.Fprintf(w, "  CPU:  %d cores, %.1f%% available\n", r.CPUTotal, r.CPUAvailable)
			fmt.Fprintf(w, "  RAM:  %.2f GB total, %.2f GB available\n", r.RAMTotalGB, r.RAMAvailableGB)
			fmt.Fprintf(w, "  Disk: %.3f TB total, %.3f TB available\n\n", r.DiskTotalTB, r.DiskAvailableTB)
			t := newTable(w, "NODE", "STATUS", "CORES", "CPU FREE", "CPU RESERVED", "CPU USED", "RAM", "RAM FREE", "RAM RESERVED", "RAM USED", "DISK", "DISK FREE", "INSTANCES")
			for _, n := range r.Nodes {
				if !n.Reported {
					t.row(n.Name, n.Status, fmt.Sprint(n.CPUTotal), "-", "-", "-", fmt.Sprintf("%.1fG", n.RAMTotalGB), "-", "-", "-", fmt.Sprintf("%.3fT", n.DiskTotalTB), "-", "-")
					continue
				}
				t.row(n.Name, n.Status, fmt.Sprint(n.CPUTotal), fmt.Sprintf("%g%%", n.CPUFreePercent), fmt.Sprintf("%g%%", n.CPUReservedPercent),
					fmt.Sprintf("%g%%", n.CPUUsedPercent), fmt.Sprintf("%.1fG", n.RAMTotalGB), fmt.Sprintf("%.1fG", n.RAMAvailableGB),
					fmt.Sprintf("%.2fG", n.RAMReservedGB), fmt.Sprintf("%.2fG", n.RAMUsedGB), fmt.Sprintf("%.3fT", n.DiskTotalTB), fmt.Sprintf("%.3fT", n.DiskAvailableTB),
					fmt.Sprintf("%d (%d running)", n.Instances, n.Running))
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON: cpu_total, cpu_available, ram_total_gb, ram_available_gb, disk_total_tb, disk_available_tb, nodes")
	return c
}
