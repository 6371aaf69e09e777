package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/spf13/cobra"
)

// deployCommands are the scheduling verbs: deploy, scale, deployments, undeploy, drain,
// reserve, release, reservations, quota.
func deployCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{newDeployCmd(g), newScaleCmd(g), newDeploymentsCmd(g), newUndeployCmd(g),
		newDrainCmd(g), newReserveCmd(g), newReleaseCmd(g), newReservationsCmd(g), newQuotaCmd(g)}
}

func parsePriorityFlag(s string) (*api.Priority, error) {
	if s == "" {
		return nil, nil
	}
	var p api.Priority
	if err := p.UnmarshalJSON([]byte(strconv.Quote(s))); err != nil {
		return nil, fmt.Errorf("--priority %q: 0-100 or low, normal, high, critical", s)
	}
	return &p, nil
}

func newDeployCmd(g *globals) *cobra.Command {
	var (
		spec           api.DeploymentSpec
		env, labels    []string
		priority       string
		asJSON, noWait bool
		dryRun         bool
		timeout        time.Duration
	)
	c := &cobra.Command{
		Use:   "deploy NAME --instances N [resources] [placement] [--script FILE | -- CMD ARGS...]",
		Short: "Run N instances of a program placed across the cluster (create or update a deployment)",
		Long: `Deploy runs NAME-0, NAME-1, ... across the cluster. The deployment's owner (the node that
wins a rendezvous hash of NAME among the live nodes) places them: constraints on node
attributes filter, the strategy ranks (spread evens them out, binpack fills the fullest node
first, random), affinity and anti-affinity weigh the labels of instances already on a node.
Each target node admits or rejects its claims against its own free resources; rejected ones
are placed again. Instances of dead nodes are replaced; 'constellation drain' moves them.

Deploy waits until every instance runs, showing progress (--no-wait returns at once).
Running deploy again with the same NAME updates the deployment (count, placement rules);
running instances keep their resources.

--dry-run shows where each instance would go (or why it cannot be placed) and which would
stay or stop, without changing anything; it fails when an instance would be left unplaced.`,
		Example: `  constellation deploy web --instances 3 --cpu-percent 25 --ram-mb 256 -- python3 -m http.server 8080
  constellation deploy cache --instances 6 --cpu-cores 1 --ram-gb 2 --strategy binpack \
      --constraint node.region=us-east --anti-affinity service=cache --script cache.rads
  constellation deploy batch --instances 20 --cpu-percent 50 --namespace team-backend --priority low -- ./run.sh
  constellation deploy web --instances 5 --cpu-percent 25 --dry-run -- python3 -m http.server 8080`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			spec.Name = args[0]
			if len(args) > 1 {
				if c.ArgsLenAtDash() != 1 {
					return fmt.Errorf("the command goes after '--', e.g. deploy %s --instances 3 -- sleep 1000", spec.Name)
				}
				spec.Command = args[1:]
			}
			if !c.Flags().Changed("instances") {
				return fmt.Errorf("--instances is required, e.g. --instances 3")
			}
			if spec.Script != "" && len(spec.Command) > 0 {
				return fmt.Errorf("give either --script FILE or a command after '--', not both")
			}
			if spec.Script == "" && len(spec.Command) == 0 {
				return fmt.Errorf("nothing to run: give --script FILE or a command after '--', e.g. -- sleep 1000")
			}
			if spec.Script != "" && spec.Code == "" {
				b, err := os.ReadFile(spec.Script)
				if err != nil {
					return fmt.Errorf("--script %s: %w (to run a script that is already on the nodes, add --code DIR)", spec.Script, err)
				}
				if len(b) > maxScriptUpload {
					return fmt.Errorf("--script %s is %d bytes; uploads are limited to %d: put it under a code root and use --code DIR", spec.Script, len(b), maxScriptUpload)
				}
				spec.ScriptContent, spec.Script = string(b), filepath.Base(spec.Script)
			}
			e, err := parseEnv(env)
			if err != nil {
				return err
			}
			spec.Env = e
			if len(labels) > 0 {
				spec.Labels = map[string]string{}
				for _, kv := range labels {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return fmt.Errorf("invalid --label %q: KEY=VALUE, e.g. --label tier=web", kv)
					}
					spec.Labels[k] = v
				}
			}
			if spec.Priority, err = parsePriorityFlag(priority); err != nil {
				return err
			}
			cl := g.client()
			out := c.OutOrStdout()
			if dryRun {
				plan, err := cl.DeployPlan(c.Context(), spec)
				if err != nil {
					return err
				}
				return printPlan(out, plan, asJSON)
			}
			st, err := cl.Deploy(c.Context(), spec)
			if err != nil {
				return err
			}
			if noWait {
				if asJSON {
					return printJSON(out, st)
				}
				fmt.Fprintf(out, "deployment %s: %d instance(s) requested (owner %s)\n", st.Name, st.Instances, st.Owner)
				return nil
			}
			st, err = waitDeployment(c.Context(), cl, out, spec.Name, timeout, !asJSON && isTerminal(os.Stdout))
			if asJSON {
				if perr := printJSON(out, st); perr != nil {
					return perr
				}
				return err
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "deployment %s: %d/%d running\n", st.Name, st.Running, st.Instances)
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&spec.Instances, "instances", 0, "number of instances (required)")
	f.Float64Var(&spec.CPUPercent, "cpu-percent", 0, "CPU per instance as percent of one core")
	f.IntVar(&spec.CPUCores, "cpu-cores", 0, "dedicated cores per instance")
	f.Int64Var(&spec.RAMMB, "ram-mb", 0, "memory per instance in MiB")
	f.Float64Var(&spec.RAMGB, "ram-gb", 0, "memory per instance in GiB")
	f.Int64Var(&spec.DiskMB, "disk-mb", 0, "disk per instance in MiB")
	f.Int64Var(&spec.PIDs, "pids", 0, "maximum processes per instance")
	f.StringVar(&spec.Script, "script", "", "script to run: a local file (uploaded), or a file in --code DIR")
	f.StringVar(&spec.Code, "code", "", "code directory on the nodes, under their code roots")
	f.StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringArrayVar(&spec.MountFS, "mount-fs", nil, "give each instance a view of a DFS directory: PREFIX:TARGET[:ro] (repeatable; as create --mount-fs)")
	f.StringArrayVar(&spec.Secrets, "secret", nil, "give each instance this secret of the namespace as an environment variable, or NAME:file as the file /run/secrets/NAME (repeatable; docs/security.md)")
	f.StringVar(&spec.Strategy, "strategy", "spread", "spread, binpack or random")
	f.StringVar(&spec.Service, "service", "", "register every instance in the service mesh under this name (with --port)")
	f.IntVar(&spec.ServicePort, "port", 0, "the port the instances serve (mesh --service)")
	f.StringVar(&spec.ServiceProtocol, "protocol", "", "mesh protocol of --service: http (default), tcp or grpc")
	f.StringVar(&spec.HealthCheck, "health-check", "", "HTTP health path of --service, e.g. /health (default: a TCP connect)")
	f.StringArrayVar(&spec.Constraints, "constraint", nil, "node constraint, e.g. node.region=us-east, node.name!=n3, 'node.type in (a,b)' (repeatable)")
	f.StringArrayVar(&spec.Affinity, "affinity", nil, "prefer nodes running instances with this label, e.g. service=cache[;weight=80][;hard] (repeatable)")
	f.StringArrayVar(&spec.AntiAffinity, "anti-affinity", nil, "avoid nodes running instances with this label, e.g. service=db-replica[;hard] (repeatable)")
	f.StringVar(&spec.SpreadBy, "spread-by", "", "with spread: even out across the values of this node label first, e.g. region")
	f.StringArrayVar(&labels, "label", nil, "instance label KEY=VALUE for others' (anti-)affinity (repeatable; default service=NAME)")
	f.StringVar(&spec.Namespace, "namespace", "", "namespace, for quotas (default \"default\")")
	f.StringVar(&priority, "priority", "", "0-100 or low, normal (default), high, critical; may preempt instances 10 or more lower")
	f.BoolVar(&asJSON, "json", false, "print the deployment as JSON when done (no progress line)")
	f.BoolVar(&noWait, "no-wait", false, "return once the deployment is recorded")
	f.BoolVar(&dryRun, "dry-run", false, "show the placement plan and change nothing")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "give up waiting after this long")
	return c
}

// printPlan prints a dry run's plan; an instance left unplaced makes it an error.
func printPlan(out io.Writer, p api.DeploymentPlan, asJSON bool) error {
	if asJSON {
		if err := printJSON(out, p); err != nil {
			return err
		}
	} else {
		verb := "create"
		if p.Exists {
			verb = "update"
		}
		fmt.Fprintf(out, "dry run: %s deployment %s (namespace %s, owner %s): %d to place, %d kept, %d to stop, %d unplaced\n",
			verb, p.Name, p.Namespace, p.Owner, p.Place, p.Keep, p.Stop, p.Unplaced)
		t := newTable(out, "INSTANCE", "SLOT", "ACTION", "NODE", "NOTE")
		for _, x := range p.InstanceList {
			note := x.Reason
			if x.Replaces != "" {
				note = "replaces " + x.Replaces + " (drain)"
			}
			if len(x.Preempts) > 0 {
				note = strings.TrimPrefix(note+"; preempts "+strings.Join(x.Preempts, ", "), "; ")
			}
			t.row(x.Name, strconv.Itoa(x.Slot), x.Action, orDash(x.Node), orDash(note))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if p.Unplaced > 0 {
		return fmt.Errorf("dry run: %d of %d instance(s) of %s could not be placed: %s", p.Unplaced, p.Instances, p.Name, p.Message)
	}
	return nil
}

// waitDeployment follows a deployment with blocking reads (an answer per change, no
// polling) until every instance runs, drawing a live line.
func waitDeployment(ctx context.Context, cl *api.Client, out io.Writer, name string, timeout time.Duration, live bool) (api.DeploymentStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	type answer struct {
		st  api.DeploymentStatus
		err error
	}
	updates := make(chan answer)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by waitDeployment: ends with ctx, waited for below
		defer wg.Done()
		var q api.QueryOptions
		for {
			st, meta, err := cl.DeploymentQuery(ctx, name, &q)
			select {
			case updates <- answer{st, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
			if meta.LastIndex == 0 { // a node without blocking reads: poll it gently
				select {
				case <-time.After(250 * time.Millisecond):
				case <-ctx.Done():
					return
				}
			}
			q.WaitIndex = meta.LastIndex
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	var tick <-chan time.Time // redraws the elapsed time between answers
	if live {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	var st api.DeploymentStatus
	seen := false
	draw := func() {
		if live && seen {
			fmt.Fprintf(out, "\r%s: placed %d/%d, running %d/%d (%s)\033[K", name, st.Placed, st.Instances, st.Running, st.Instances, time.Since(start).Round(100*time.Millisecond))
		}
	}
	for {
		select {
		case a := <-updates:
			if a.err != nil {
				if ctx.Err() != nil {
					continue // the timeout: reported below
				}
				if live && seen {
					fmt.Fprintln(out)
				}
				return st, a.err
			}
			st, seen = a.st, true
			draw()
			if st.Running == st.Instances && st.Placed == st.Instances {
				if live {
					fmt.Fprint(out, "\r\033[K")
				}
				return st, nil
			}
		case <-tick:
			draw()
		case <-ctx.Done():
			if live {
				fmt.Fprintln(out)
			}
			msg := st.Message
			if msg == "" {
				msg = "no placement error reported; see 'constellation deployments' and 'constellation list'"
			}
			return st, fmt.Errorf("deployment %s: %d/%d running after %v: %s", name, st.Running, st.Instances, timeout, msg)
		}
	}
}

func newScaleCmd(g *globals) *cobra.Command {
	var (
		n      int
		asJSON bool
	)
	c := &cobra.Command{
		Use:     "scale NAME --instances N",
		Short:   "Change a deployment's instance count",
		Example: "  constellation scale web --instances 10",
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !c.Flags().Changed("instances") {
				return fmt.Errorf("--instances is required, e.g. --instances 5")
			}
			st, err := g.client().Scale(c.Context(), args[0], n)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), st)
			}
			fmt.Fprintf(c.OutOrStdout(), "deployment %s scaled to %d instance(s) (%d running now)\n", st.Name, st.Instances, st.Running)
			return nil
		},
	}
	c.Flags().IntVar(&n, "instances", 0, "new instance count (required)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newDeploymentsCmd(g *globals) *cobra.Command {
	var (
		asJSON, wide bool
	)
	c := &cobra.Command{
		Use:   "deployments [NAME]",
		Short: "List deployments with their placement (or one deployment's instances)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl := g.client()
			out := c.OutOrStdout()
			if len(args) == 1 {
				st, err := cl.Deployment(c.Context(), args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(out, st)
				}
				t := newTable(out, "INSTANCE", "SLOT", "NODE", "STATUS", "REPLACES")
				for _, x := range st.InstanceList {
					t.row(x.Name, strconv.Itoa(x.Slot), x.Node, x.Status, orDash(x.Replaces))
				}
				if err := t.flush(); err != nil {
					return err
				}
				if st.Message != "" {
					fmt.Fprintln(out, "message:", st.Message)
				}
				return nil
			}
			ds, err := cl.Deployments(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, ds)
			}
			hdr := []string{"NAME", "NAMESPACE", "RUNNING", "PLACED", "STRATEGY", "PRIORITY", "OWNER", "MESSAGE"}
			t := newTable(out, hdr...)
			for _, d := range ds {
				msg := d.Message
				if !wide && len(msg) > 60 {
					msg = msg[:57] + "..."
				}
				t.row(d.Name, d.Namespace, fmt.Sprintf("%d/%d", d.Running, d.Instances), fmt.Sprintf("%d/%d", d.Placed, d.Instances),
					d.Strategy, strconv.Itoa(d.Priority), d.Owner, orDash(msg))
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array (or object with NAME)")
	c.Flags().BoolVar(&wide, "wide", false, "do not shorten messages")
	return c
}

func newUndeployCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "undeploy NAME",
		Short: "Remove a deployment and stop its instances",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.client().Undeploy(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "deployment %s removed; its instances are stopping\n", args[0])
			return nil
		},
	}
}

func newDrainCmd(g *globals) *cobra.Command {
	var (
		cancel, asJSON bool
	)
	c := &cobra.Command{
		Use:   "drain NODE",
		Short: "Move a node's deployment instances elsewhere (make-before-break); --cancel undoes",
		Long: `Drain marks NODE draining: it receives no new placements, and every deployment instance on it
is replaced on another node; each old instance stops once its replacement runs. Plain instances
(from 'constellation create') are not moved. 'drain NODE --cancel' makes the node schedulable again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			res, err := g.client().Drain(c.Context(), api.DrainRequest{Node: args[0], Cancel: cancel})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), res)
			}
			if cancel {
				fmt.Fprintf(c.OutOrStdout(), "node %s takes placements again\n", res.Node)
				return nil
			}
			fmt.Fprintf(c.OutOrStdout(), "node %s draining: %d deployment instance(s) to move", res.Node, res.ToMove)
			if res.Unmanaged > 0 {
				fmt.Fprintf(c.OutOrStdout(), "; %d plain instance(s) stay (not deployments)", res.Unmanaged)
			}
			fmt.Fprintln(c.OutOrStdout())
			return nil
		},
	}
	c.Flags().BoolVar(&cancel, "cancel", false, "stop draining")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newReserveCmd(g *globals) *cobra.Command {
	var (
		req      api.ReservationRequest
		priority string
		asJSON   bool
	)
	c := &cobra.Command{
		Use:   "reserve --cpu-cores C --ram-gb G --duration SECONDS [--priority high]",
		Short: "Hold resources on a node for a while; prints the reservation ID",
		Long: `Reserve picks a node that can hold the resources and has it hold them: they are not free for
other instances until the reservation is used ('create --reservation ID'), released
('constellation release ID') or expires after --duration seconds.`,
		Example: "  constellation reserve --cpu-cores 2 --ram-gb 4 --duration 3600 --priority high",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var err error
			if req.Priority, err = parsePriorityFlag(priority); err != nil {
				return err
			}
			r, err := g.client().Reserve(c.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), r)
			}
			fmt.Fprintln(c.OutOrStdout(), r.ID)
			fmt.Fprintf(c.ErrOrStderr(), "reserved %s cores, %d MB RAM, %d MB disk on %s until %s\n",
				strconv.FormatFloat(r.CPUCores, 'f', -1, 64), r.RAMMB, r.DiskMB, r.Node, r.ExpiresAt.Local().Format(time.DateTime))
			return nil
		},
	}
	f := c.Flags()
	f.Float64Var(&req.CPUCores, "cpu-cores", 0, "cores to hold")
	f.Float64Var(&req.CPUPercent, "cpu-percent", 0, "CPU to hold in percent of one core")
	f.Float64Var(&req.RAMGB, "ram-gb", 0, "memory to hold in GiB")
	f.Int64Var(&req.RAMMB, "ram-mb", 0, "memory to hold in MiB")
	f.Int64Var(&req.DiskMB, "disk-mb", 0, "disk to hold in MiB")
	f.Int64Var(&req.DurationSeconds, "duration", 3600, "seconds until it expires")
	f.StringVar(&priority, "priority", "", "0-100 or low, normal (default), high, critical")
	f.StringVar(&req.Node, "node", "", "hold on this node (default: the scheduler picks)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newReleaseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "release ID",
		Short: "Release a reservation",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.client().Release(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "reservation %s released\n", args[0])
			return nil
		},
	}
}

func newReservationsCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "reservations",
		Short: "List live reservations",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			rs, err := g.client().Reservations(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), rs)
			}
			t := newTable(c.OutOrStdout(), "ID", "NODE", "CPU_CORES", "RAM", "DISK", "PRIORITY", "EXPIRES")
			for _, r := range rs {
				t.row(r.ID, r.Node, strconv.FormatFloat(r.CPUCores, 'f', -1, 64), humanMB(uint64(r.RAMMB)), humanMB(uint64(r.DiskMB)),
					strconv.Itoa(r.Priority), "in "+(time.Duration(r.RemainingS)*time.Second).String())
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return c
}

func newQuotaCmd(g *globals) *cobra.Command {
	q := &cobra.Command{
		Use:   "quota",
		Short: "Namespace quotas: set, show, rm",
	}
	var (
		spec   api.QuotaSpec
		asJSON bool
	)
	set := &cobra.Command{
		Use:   "set NAMESPACE [--max-cpu-cores N] [--max-ram-gb N] [--max-instances N] [--allow-cpu-burst --max-burst-percent P]",
		Short: "Set a namespace's quota (never exceeded, even under partition); only the limits given change",
		Example: `  constellation quota set team-backend --max-cpu-cores 16 --max-ram-gb 64 --max-instances 50
  constellation quota set team-backend --max-cpu-cores 16 --allow-cpu-burst --max-burst-percent 150`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var p api.QuotaPatch
			f := c.Flags()
			if f.Changed("max-cpu-cores") {
				p.MaxCPUCores = &spec.MaxCPUCores
			}
			if f.Changed("max-ram-gb") {
				p.MaxRAMGB = &spec.MaxRAMGB
			}
			if f.Changed("max-instances") {
				p.MaxInstances = &spec.MaxInstances
			}
			if f.Changed("allow-cpu-burst") {
				p.AllowCPUBurst = &spec.AllowCPUBurst
			}
			if f.Changed("allow-ram-borrow") {
				p.AllowRAMBorrow = &spec.AllowRAMBorrow
			}
			if f.Changed("max-burst-percent") {
				p.MaxBurstPercent = &spec.MaxBurstPercent
			}
			if p == (api.QuotaPatch{}) {
				return errors.New("give at least one limit, e.g. --max-instances 50 (0 removes one limit; 'quota rm' removes the quota)")
			}
			info, err := g.client().PatchQuota(c.Context(), args[0], p)
			if err != nil {
				return err
			}
			return printQuotas(c.OutOrStdout(), []api.QuotaInfo{info}, asJSON, false)
		},
	}
	set.Flags().Float64Var(&spec.MaxCPUCores, "max-cpu-cores", 0, "cores (0 = unlimited)")
	set.Flags().Float64Var(&spec.MaxRAMGB, "max-ram-gb", 0, "GiB of RAM (0 = unlimited)")
	set.Flags().IntVar(&spec.MaxInstances, "max-instances", 0, "instances (0 = unlimited)")
	set.Flags().BoolVar(&spec.AllowCPUBurst, "allow-cpu-burst", false, "allow CPU up to --max-burst-percent of the limit")
	set.Flags().BoolVar(&spec.AllowRAMBorrow, "allow-ram-borrow", false, "allow RAM up to --max-burst-percent of the limit")
	set.Flags().IntVar(&spec.MaxBurstPercent, "max-burst-percent", 0, "burst ceiling in percent of the limit, 100-1000")
	set.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var showJSON bool
	show := &cobra.Command{
		Use:   "show [NAMESPACE]",
		Short: "Show a namespace's quota and usage (all namespaces without NAMESPACE)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl := g.client()
			if len(args) == 1 {
				info, err := cl.Quota(c.Context(), args[0])
				if err != nil {
					return err
				}
				return printQuotas(c.OutOrStdout(), []api.QuotaInfo{info}, showJSON, false)
			}
			infos, err := cl.Quotas(c.Context())
			if err != nil {
				return err
			}
			return printQuotas(c.OutOrStdout(), infos, showJSON, true)
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")
	rm := &cobra.Command{
		Use:   "rm NAMESPACE",
		Short: "Remove a namespace's quota (its deployments are no longer limited)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.client().RemoveQuota(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "removed the quota of %s\n", args[0])
			return nil
		},
	}
	q.AddCommand(set, show, rm)
	return q
}

func printQuotas(w io.Writer, infos []api.QuotaInfo, asJSON, list bool) error {
	if asJSON {
		if list {
			return printJSON(w, infos)
		}
		if len(infos) == 0 {
			return errors.New("no quota")
		}
		return printJSON(w, infos[0])
	}
	lim := func(used, limit float64) string {
		if limit == 0 {
			return strconv.FormatFloat(used, 'f', -1, 64) + " / unlimited"
		}
		return strconv.FormatFloat(used, 'f', -1, 64) + " / " + strconv.FormatFloat(limit, 'f', -1, 64)
	}
	t := newTable(w, "NAMESPACE", "CPU_CORES", "RAM_GB", "INSTANCES", "BURST")
	for _, q := range infos {
		burst := "-"
		if q.AllowCPUBurst || q.AllowRAMBorrow {
			burst = fmt.Sprintf("%d%%", max(q.MaxBurstPercent, 100))
		}
		t.row(q.Namespace, lim(q.UsedCPUCores, q.LimitCPUCores), lim(q.UsedRAMGB, q.LimitRAMGB),
			lim(float64(q.UsedInstances), float64(q.LimitInstances)), burst)
	}
	return t.flush()
}
