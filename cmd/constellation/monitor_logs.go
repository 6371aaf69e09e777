package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/node"
)

// addLogsTracesCommands adds `logs search`, `monitor log`, `monitor traces` and
// `monitor trace` (the `monitor` command is shared with the metrics and alert commands:
// found when it exists, else created).
func addLogsTracesCommands(root *cobra.Command, g *globals) {
	for _, c := range root.Commands() {
		if c.Name() == "logs" {
			c.AddCommand(newLogsSearchCmd(g))
		}
	}
	var mon *cobra.Command
	for _, c := range root.Commands() {
		if c.Name() == "monitor" {
			mon = c
		}
	}
	if mon == nil {
		mon = &cobra.Command{Use: "monitor", Short: "Monitoring: logs, traces, metrics and alerts of the cluster"}
		root.AddCommand(mon)
	}
	mon.AddCommand(newMonitorLogCmd(g), newMonitorTracesCmd(g), newMonitorTraceCmd(g))
}

func newLogsSearchCmd(g *globals) *cobra.Command {
	var (
		since, until string
		limit        int
		asJSON       bool
		follow       bool
		local        bool
	)
	c := &cobra.Command{
		Use:   "search QUERY",
		Short: "Search the logs of every node (instances' output, nodes' own logs, submitted entries)",
		Long: `Search the logs of every alive node; the newest matches come first, merged by time.

Query: words (whole words, case-insensitive; err* for a prefix), "quoted phrases",
field:value or field=value (level, instance, node, service, deployment, namespace,
stream, or any structured field), AND, OR, NOT (or -term), parentheses. Words next to
each other are ANDed. An empty query ('') matches everything.

With -f, prints the matching entries as they are written on every node until interrupted.`,
		Example: `  constellation logs search 'error AND service=payment' --since 24h --limit 100
  constellation logs search 'level:error OR "connection refused"' --json
  constellation logs search 'instance=web-1' -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s := api.LogSearch{Query: args[0], Limit: limit, Local: local}
			if since != "" {
				d, err := parseSinceFlag(since)
				if err != nil {
					return err
				}
				s.Since = d
			}
			if until != "" {
				t, err := time.Parse(time.RFC3339, until)
				if err != nil {
					return fmt.Errorf("invalid --until %q: want an RFC 3339 time like 2026-01-02T15:04:05Z", until)
				}
				s.Until = t
			}
			if limit < 1 || limit > 10000 {
				return fmt.Errorf("invalid --limit %d: want 1 to 10000", limit)
			}
			out, errw := c.OutOrStdout(), c.ErrOrStderr()
			if follow {
				ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				enc := json.NewEncoder(out)
				err := g.client().FollowLogs(ctx, s, func(e api.LogEntry) error {
					if asJSON {
						return enc.Encode(e)
					}
					printLogLine(out, e)
					return nil
				}, func(w string) { fmt.Fprintln(errw, "warning:", w) })
				if ctx.Err() != nil || errors.Is(err, context.Canceled) {
					return nil
				}
				return err
			}
			res, err := g.client().SearchLogs(c.Context(), s)
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(errw, "warning:", w)
			}
			if asJSON {
				return printJSON(out, res)
			}
			// Oldest first on a terminal, like a log file.
			for i := len(res.Entries) - 1; i >= 0; i-- {
				printLogLine(out, res.Entries[i])
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&since, "since", "", "only entries newer than this long ago (15m, 24h, 7d)")
	f.StringVar(&until, "until", "", "only entries not newer than this RFC 3339 time")
	f.IntVar(&limit, "limit", 100, "newest entries to print (1 to 10000), after merging the nodes")
	f.BoolVar(&asJSON, "json", false, "print JSON (with -f: one entry per line)")
	f.BoolVarP(&follow, "follow", "f", false, "print matching entries as they are written, until interrupted")
	f.BoolVar(&local, "local", false, "this node only")
	return c
}

func parseSinceFlag(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var d int
		if _, err := fmt.Sscanf(n, "%d", &d); err == nil && d > 0 && fmt.Sprint(d) == n {
			return time.Duration(d) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid --since %q: want a positive duration like 15m, 24h or 7d", s)
	}
	return d, nil
}

func printLogLine(w io.Writer, e api.LogEntry) {
	src := e.Node
	if e.Instance != "" {
		src += "/" + e.Instance
	}
	lvl := e.Level
	if lvl == "" {
		lvl = "-"
	}
	var fields []string
	for k, v := range e.Fields {
		if strings.ContainsAny(v, " \t\"") {
			v = fmt.Sprintf("%q", v)
		}
		fields = append(fields, k+"="+v)
	}
	sort.Strings(fields)
	line := fmt.Sprintf("%s %s %-5s %s", e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), src, lvl, e.Message)
	if len(fields) > 0 {
		line += "  " + strings.Join(fields, " ")
	}
	fmt.Fprintln(w, line)
}

func newMonitorLogCmd(g *globals) *cobra.Command {
	var instance string
	c := &cobra.Command{
		Use:   "log LEVEL MESSAGE [KEY=VALUE...]",
		Short: "Write a structured log entry into this node's log store",
		Long: `Write a structured log entry (the seed's monitor.log("info", "User logged in", {user_id: 123})).
LEVEL is debug, info, warn or error. A VALUE that is a JSON number, true, false or null is
stored as such; anything else as a string.`,
		Example: `  constellation monitor log info "User logged in" user_id=123`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			e := api.LogSubmit{Level: args[0], Message: args[1], Instance: instance}
			for _, kv := range args[2:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("invalid field %q: want KEY=VALUE", kv)
				}
				if e.Fields == nil {
					e.Fields = map[string]json.RawMessage{}
				}
				if json.Valid([]byte(v)) && !strings.HasPrefix(v, "{") && !strings.HasPrefix(v, "[") && !strings.HasPrefix(v, `"`) {
					e.Fields[k] = json.RawMessage(v)
				} else {
					b, _ := json.Marshal(v)
					e.Fields[k] = b
				}
			}
			_, err := g.client().SubmitLogs(c.Context(), e)
			return err
		},
	}
	c.Flags().StringVar(&instance, "instance", "", "the instance the entry is about (admin callers)")
	return c
}

func newMonitorTracesCmd(g *globals) *cobra.Command {
	var (
		s      api.TraceSearch
		since  string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "traces",
		Short: "List traces over the cluster with a span matching the filters",
		Example: `  constellation monitor traces --service checkout --min-duration 1s --since 1h
  constellation monitor traces --status error --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if since != "" {
				d, err := parseSinceFlag(since)
				if err != nil {
					return err
				}
				s.Since = d
			}
			switch s.Status {
			case "", "unset", "ok", "error":
			default:
				return fmt.Errorf("invalid --status %q: unset, ok or error", s.Status)
			}
			if s.Limit < 1 || s.Limit > 1000 {
				return fmt.Errorf("invalid --limit %d: want 1 to 1000", s.Limit)
			}
			res, err := g.client().Traces(c.Context(), s)
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(c.ErrOrStderr(), "warning:", w)
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), res)
			}
			t := newTable(c.OutOrStdout(), "TRACE", "SERVICE", "OPERATION", "START", "DURATION", "SPANS", "NODES", "STATUS")
			for _, tr := range res.Traces {
				t.row(tr.TraceID, tr.Service, tr.Operation, tr.Start.Local().Format("15:04:05.000"),
					fmtSpanMs(tr.DurationMs), fmt.Sprint(tr.Spans), strings.Join(tr.Nodes, ","), tr.Status)
			}
			return t.flush()
		},
	}
	f := c.Flags()
	f.StringVar(&s.Service, "service", "", "spans of this service")
	f.StringVar(&s.Operation, "operation", "", "spans of this operation (span name)")
	f.DurationVar(&s.MinDuration, "min-duration", 0, "spans lasting at least this long (250ms, 1s)")
	f.StringVar(&s.Status, "status", "", "spans of this status: unset, ok or error")
	f.StringVar(&since, "since", "1h", "spans that ended less than this long ago (15m, 24h, 7d)")
	f.IntVar(&s.Limit, "limit", 20, "newest traces to list (1 to 1000)")
	f.BoolVar(&s.Local, "local", false, "this node only")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func fmtSpanMs(ms float64) string {
	return time.Duration(ms * float64(time.Millisecond)).Round(time.Microsecond * 10).String()
}

func newMonitorTraceCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "trace TRACEID",
		Short:   "Show a trace's spans over the cluster as a waterfall",
		Example: `  constellation monitor trace 4bf92f3577b34da6a3ce929d0e0e4736`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			tr, err := g.client().Trace(c.Context(), args[0])
			if err != nil {
				return err
			}
			for _, w := range tr.Warnings {
				fmt.Fprintln(c.ErrOrStderr(), "warning:", w)
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), tr)
			}
			width := 40
			if os.Getenv("COLUMNS") != "" {
				var cols int
				if _, err := fmt.Sscanf(os.Getenv("COLUMNS"), "%d", &cols); err == nil && cols > 100 {
					width = min(cols-60, 100)
				}
			}
			return printWaterfall(c.OutOrStdout(), tr, width)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// printWaterfall prints spans in tree order (children under their parent, by start),
// indented by depth, each with a bar placed and scaled on the trace's time line.
func printWaterfall(w io.Writer, tr api.Trace, width int) error {
	if len(tr.Spans) == 0 {
		return nil
	}
	start, end := tr.Spans[0].Start, tr.Spans[0].End
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
		if s.Start.Before(start) {
			start = s.Start
		}
		if s.End.After(end) {
			end = s.End
		}
	}
	kids := map[string][]api.Span{}
	var roots []api.Span
	for _, s := range tr.Spans {
		if s.ParentID == "" || !ids[s.ParentID] || s.ParentID == s.SpanID {
			roots = append(roots, s)
		} else {
			kids[s.ParentID] = append(kids[s.ParentID], s)
		}
	}
	byStart := func(a, b api.Span) int { return a.Start.Compare(b.Start) }
	slices.SortFunc(roots, byStart)
	type row struct {
		s     api.Span
		depth int
	}
	var rows []row
	seen := map[string]bool{}
	var walk func(s api.Span, d int)
	walk = func(s api.Span, d int) {
		if seen[s.SpanID] {
			return
		}
		seen[s.SpanID] = true
		rows = append(rows, row{s, d})
		ks := kids[s.SpanID]
		slices.SortFunc(ks, byStart)
		for _, k := range ks {
			walk(k, d+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	total := end.Sub(start)
	fmt.Fprintf(w, "trace %s  %s  %d spans  nodes %s\n", tr.TraceID, total.Round(10*time.Microsecond), len(tr.Spans), strings.Join(tr.Nodes, ","))
	labelW := 0
	labels := make([]string, len(rows))
	for i, r := range rows {
		l := strings.Repeat("  ", r.depth) + r.s.Name
		if r.s.Service != "" {
			l = strings.Repeat("  ", r.depth) + r.s.Service + ": " + r.s.Name
		}
		if r.s.Status == "error" {
			l += " !"
		}
		labels[i] = l
		labelW = max(labelW, len(l))
	}
	labelW = min(labelW, 60)
	for i, r := range rows {
		off, n := 0, width
		if total > 0 {
			off = int(float64(r.s.Start.Sub(start)) / float64(total) * float64(width))
			n = max(1, int(float64(r.s.End.Sub(r.s.Start))/float64(total)*float64(width)+0.5))
		}
		off = min(off, width-1)
		n = min(n, width-off)
		bar := strings.Repeat(" ", off) + strings.Repeat("█", n) + strings.Repeat(" ", width-off-n)
		l := labels[i]
		if len(l) > labelW {
			l = l[:labelW]
		}
		fmt.Fprintf(w, "%-*s %10s |%s| %s\n", labelW, l, fmtSpanMs(r.s.DurationMs), bar, r.s.Node)
	}
	return nil
}

// addLogsTracesFlags adds the peer flags of the log and span stores.
func addLogsTracesFlags(f *pflag.FlagSet, c *node.Config) {
	f.DurationVar(&c.LogsMaxAge, "logs-max-age", 7*24*time.Hour, "remove log segments whose newest entry is older than this")
	f.Int64Var(&c.LogsMaxMB, "logs-max-mb", 1024, "bound of the log store on disk, in MiB (the oldest segments go first)")
	f.IntVar(&c.MaxSpans, "max-spans", 100000, "spans kept in memory for trace queries (the oldest go first)")
	f.Float64Var(&c.TraceSampleRatio, "trace-sample-ratio", 1, "fraction of new traces recorded (0 or 1: every trace)")
	f.StringVar(&c.OTLPEndpoint, "otlp-endpoint", "", "also export spans to this OpenTelemetry collector over OTLP/HTTP JSON (e.g. http://collector:4318)")
}
