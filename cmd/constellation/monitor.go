package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
)

// monitorCommands are `constellation monitor ...` and `constellation debug pprof`.
func monitorCommands(g *globals) []*cobra.Command {
	mon := &cobra.Command{Use: "monitor", Short: "Cluster metrics: PromQL queries, the dashboard, custom metrics"}
	mon.AddCommand(newMonitorQueryCmd(g), newMonitorDashboardCmd(g), newMonitorPushCmd(g), newMonitorCheckCmd(g))
	addAlertCommands(g, mon)
	dbg := &cobra.Command{Use: "debug", Short: "Debugging tools (profiles of any node)"}
	dbg.AddCommand(newPprofCmd(g))
	return []*cobra.Command{mon, dbg}
}

func newMonitorQueryCmd(g *globals) *cobra.Command {
	var q api.MonitorQuery
	var asJSON bool
	var groupBy string
	c := &cobra.Command{
		Use:   "query [PROMQL]",
		Short: "Evaluate PromQL over every alive node's metrics, merged",
		Long: `Evaluate a PromQL expression over the metrics of every alive node (each series
carries its node label). Without --range it is an instant query; with --range it is
a range query ending now (or --time) at --step (default range/60, at least the
sampling interval). Instead of PROMQL, --metric with --aggregation and --group-by
build the query (the seed's structured form).

  constellation monitor query 'avg by (node) (constellation_node_cpu_percent)'
  constellation monitor query 'rate(constellation_instance_cpu_seconds_total[1m])' --range 1h --step 1m
  constellation monitor query --metric constellation_node_cpu_percent --aggregation avg --group-by node --range 1h`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				q.Query = args[0]
			}
			if groupBy != "" {
				q.GroupBy = strings.Split(groupBy, ",")
			}
			res, err := g.client().MonitorQuery(c.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), res)
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(c.ErrOrStderr(), "warning:", w)
			}
			return printQueryResult(c.OutOrStdout(), res)
		},
	}
	f := c.Flags()
	f.StringVar(&q.TimeRange, "range", "", "range query over this long up to now (e.g. 15m, 1h, 7d); empty: instant query")
	f.StringVar(&q.Step, "step", "", "step of a range query (default range/60, at least the sampling interval)")
	f.StringVar(&q.Time, "time", "", "evaluation (end) time: RFC 3339 or Unix seconds (default now)")
	f.StringVar(&q.Metric, "metric", "", "structured form: the metric name (instead of PROMQL)")
	f.StringVar(&q.Aggregation, "aggregation", "", "structured form: avg, sum, min, max, count, stddev, stdvar, p50, p90, p95 or p99")
	f.StringVar(&groupBy, "group-by", "", "structured form: labels to group by, comma-separated (e.g. node,namespace)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func seriesName(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return m["__name__"] + "{" + strings.Join(parts, ", ") + "}"
}

func fmtValue(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

func printQueryResult(w io.Writer, res api.MonitorQueryResult) error {
	if len(res.Result) == 0 {
		fmt.Fprintf(w, "no data for %s\n", res.PromQL)
		return nil
	}
	switch res.ResultType {
	case "matrix":
		t := newTable(w, "SERIES", "POINTS", "FIRST", "LAST", "MIN", "MAX")
		for _, s := range res.Result {
			if len(s.Values) == 0 {
				continue
			}
			lo, hi := s.Values[0].V, s.Values[0].V
			for _, p := range s.Values {
				lo, hi = min(lo, p.V), max(hi, p.V)
			}
			t.row(seriesName(s.Metric), strconv.Itoa(len(s.Values)), fmtValue(s.Values[0].V), fmtValue(s.Values[len(s.Values)-1].V), fmtValue(lo), fmtValue(hi))
		}
		return t.flush()
	default:
		t := newTable(w, "SERIES", "VALUE")
		for _, s := range res.Result {
			if s.Value != nil {
				t.row(seriesName(s.Metric), fmtValue(s.Value.V))
			}
		}
		return t.flush()
	}
}

func newMonitorDashboardCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "dashboard",
		Short: "The cluster at a glance: health, nodes, instances, CPU, RAM, network",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			d, err := g.client().Dashboard(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), d)
			}
			t := newTable(c.OutOrStdout(), "FIELD", "VALUE")
			t.row("health", d.Health)
			t.row("nodes_total", strconv.Itoa(d.NodesTotal))
			t.row("nodes_healthy", strconv.Itoa(d.NodesHealthy))
			t.row("instances_total", strconv.Itoa(d.InstancesTotal))
			t.row("cpu_percent", fmt.Sprintf("%.1f", d.CPUPercent))
			t.row("ram_percent", fmt.Sprintf("%.1f", d.RAMPercent))
			t.row("network_in_mbps", fmt.Sprintf("%.3f", d.NetworkInMbps))
			t.row("network_out_mbps", fmt.Sprintf("%.3f", d.NetworkOutMbps))
			for _, r := range d.Reasons {
				t.row("reason", r)
			}
			for _, h := range d.Checks {
				t.row("check "+h.Name, h.Status+" on "+orDash(h.Node))
			}
			if err := t.flush(); err != nil {
				return err
			}
			for _, w := range d.Warnings {
				fmt.Fprintln(c.ErrOrStderr(), "warning:", w)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the dashboard as JSON")
	return c
}

func newMonitorPushCmd(g *globals) *cobra.Command {
	var kind, instance string
	var tags []string
	c := &cobra.Command{
		Use:   "push NAME VALUE",
		Short: "Push a custom metric (gauge, counter or histogram observation)",
		Long: `Push one custom metric value, as instances do through their loopback API
(monitor.gauge("active_users", 1234)). Run inside an instance it is that instance's;
an admin names a local instance with --instance, or pushes the node's own.`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			v, err := strconv.ParseFloat(args[1], 64)
			if err != nil {
				return fmt.Errorf("VALUE %q is not a number", args[1])
			}
			tm := map[string]string{}
			for _, t := range tags {
				k, val, ok := strings.Cut(t, "=")
				if !ok {
					return fmt.Errorf("--tag %q: want KEY=VALUE", t)
				}
				tm[k] = val
			}
			res, err := g.client().PushMetrics(c.Context(), api.MetricsPushRequest{Instance: instance,
				Metrics: []api.MetricSample{{Name: args[0], Kind: kind, Value: v, Tags: tm}}})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "recorded; %d of %d custom series used\n", res.Series, res.Limit)
			return nil
		},
	}
	c.Flags().StringVar(&kind, "kind", "gauge", "gauge, counter or histogram")
	c.Flags().StringVar(&instance, "instance", "", "the local instance the metric belongs to (admin only)")
	c.Flags().StringArrayVar(&tags, "tag", nil, "KEY=VALUE label (repeatable)")
	return c
}

func newPprofCmd(g *globals) *cobra.Command {
	var profile, out string
	var seconds int
	c := &cobra.Command{
		Use:   "pprof NODE",
		Short: "Take a Go profile of any node (admin only); write it to stdout or --output",
		Long: `Take a profile of the named node's process, forwarded over the cluster protocol:
  constellation debug pprof n2 --profile cpu --seconds 10 > cpu.pb.gz
  go tool pprof cpu.pb.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			w := c.OutOrStdout()
			if out != "" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			} else if f, ok := w.(*os.File); ok && isTerminal(f) {
				return errors.New("the profile is binary: redirect stdout (> cpu.pb.gz) or use --output FILE")
			}
			start := time.Now()
			n, err := g.client().Pprof(c.Context(), args[0], profile, seconds, w)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.ErrOrStderr(), "%s profile of %s: %d bytes in %s\n", profile, args[0], n, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	c.Flags().StringVar(&profile, "profile", "cpu", "cpu, heap, goroutine, mutex, allocs or block")
	c.Flags().IntVar(&seconds, "seconds", 10, "duration of a cpu or mutex profile (1-300)")
	c.Flags().StringVarP(&out, "output", "o", "", "write the profile to FILE instead of stdout")
	return c
}

func newMonitorCheckCmd(g *globals) *cobra.Command {
	chk := &cobra.Command{Use: "check", Short: "Named health checks (http, tcp, exec) of nodes and instances"}
	var spec api.HealthCheckSpec
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add (or replace) a health check",
		Long: `Add a named health check (the seed's monitor.health_check(name, ...)):
  constellation monitor check add web --kind http --target http://10.213.0.5:8080/health --instance web-1
  constellation monitor check add db --kind tcp --target 127.0.0.1:5432 --node n2
  constellation monitor check add disk --kind exec --target 'test $(df --output=pcent / | tail -1 | tr -dc 0-9) -lt 90'
A node check runs on --node (default the node asked); an instance check on the node that
runs the instance. Failing checks make the dashboard's health degraded.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			spec.Name = args[0]
			h, err := g.client().AddHealthCheck(c.Context(), spec)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "health check %s (%s %s) on %s\n", h.Name, h.Kind, h.Target, orDash(h.Node+h.Instance))
			return nil
		},
	}
	f := add.Flags()
	f.StringVar(&spec.Kind, "kind", "", "http (GET, 2xx/3xx passes), tcp (HOST:PORT opens) or exec (sh -c on the node's host exits 0)")
	f.StringVar(&spec.Target, "target", "", "URL, HOST:PORT or shell command")
	f.StringVar(&spec.Node, "node", "", "the node the check runs on (default the node asked)")
	f.StringVar(&spec.Instance, "instance", "", "the instance the check belongs to (runs where the instance runs; http and tcp)")
	f.StringVar(&spec.Interval, "interval", "", "how often (default 30s)")
	f.StringVar(&spec.Timeout, "timeout", "", "how long one probe may take (default 5s)")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the cluster's health checks and their status",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			hs, err := g.client().HealthChecks(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), hs)
			}
			t := newTable(c.OutOrStdout(), "NAME", "STATUS", "NODE", "INSTANCE", "KIND", "TARGET", "SINCE", "OUTPUT")
			for _, h := range hs {
				since := "-"
				if !h.Since.IsZero() {
					since = ago(h.Since)
				}
				t.row(h.Name, h.Status, orDash(h.Node), orDash(h.Instance), h.Kind, h.Target, since, orDash(h.Output))
			}
			return t.flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a health check",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.client().RemoveHealthCheck(c.Context(), args[0])
		},
	}
	chk.AddCommand(add, list, rm)
	return chk
}
