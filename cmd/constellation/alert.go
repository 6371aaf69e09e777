package main

import (
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

// addAlertCommands adds alerting to the monitor command: alert, alerts, silence, channel.
func addAlertCommands(g *globals, monitor *cobra.Command) {
	monitor.AddCommand(newAlertCmd(g), newAlertsCmd(g), newSilenceCmd(g), newChannelCmd(g))
}

// parseKV turns repeated K=V flags into a map.
func parseKV(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid --%s %q: want KEY=VALUE, e.g. --%s team=ops", flag, kv, flag)
		}
		m[k] = v
	}
	return m, nil
}

func newAlertCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "alert",
		Short: "Alert rules: add, list, rm",
		Long: `Alert rules are PromQL expressions evaluated by one alive node each (the rule's rendezvous
owner); every element of the result is an alert, pending until it has lasted --for, then
firing and notified on the rule's channels once (again every --repeat if set), and resolved
(notified once) when it leaves the result. See docs/alerts.md.`,
	}
	c.AddCommand(newAlertAddCmd(g), newAlertListCmd(g), newAlertRmCmd(g))
	return c
}

func newAlertAddCmd(g *globals) *cobra.Command {
	var (
		spec                api.AlertRuleSpec
		labels, annotations []string
		an                  api.AnomalySpec
		asJSON              bool
	)
	c := &cobra.Command{
		Use:   "add NAME --expr PROMQL [--for 5m] [--severity critical] [--channel ops] [--message TEXT]",
		Short: "Create or replace an alert rule",
		Long: `Create or replace an alert rule. The expression must parse: a syntax error is refused with
its position. --message is a template: {{ $value }}, {{ $labels.instance }}, or the short
forms {{value}} and {{instance}}. --kind anomaly watches the expression's series and fires
when one leaves its learned seasonal band (--season, --buckets, --window, --step,
--threshold, --min-samples, --direction).`,
		Example: `  constellation monitor alert add HighCPU --expr 'avg by (node) (constellation_node_cpu_percent) > 90' \
      --for 5m --severity critical --channel ops --message 'CPU at {{ $value }}% on {{ $labels.node }}'
  constellation monitor alert add Traffic --kind anomaly --expr 'sum(rate(http_requests_total[5m]))' --channel ops`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			spec.Name = args[0]
			var err error
			if spec.Labels, err = parseKV("label", labels); err != nil {
				return err
			}
			if spec.Annotations, err = parseKV("annotation", annotations); err != nil {
				return err
			}
			if spec.Kind == api.RuleAnomaly {
				spec.Anomaly = &an
			} else if c.Flags().Changed("season") || c.Flags().Changed("window") || c.Flags().Changed("threshold") ||
				c.Flags().Changed("buckets") || c.Flags().Changed("step") || c.Flags().Changed("min-samples") || c.Flags().Changed("direction") {
				return fmt.Errorf("--season, --buckets, --window, --step, --threshold, --min-samples and --direction need --kind anomaly")
			}
			r, err := g.client().AddAlertRule(c.Context(), spec)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), r)
			}
			fmt.Fprintf(c.OutOrStdout(), "alert rule %s saved (evaluated by %s)\n", r.Name, r.Owner)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&spec.Expr, "expr", "", "PromQL expression (required); the seed's 'EXPR for 5m' form is accepted")
	f.StringVar(&spec.Kind, "kind", "", "threshold (default) or anomaly")
	f.StringVar(&spec.For, "for", "", "how long an alert is pending before it fires (e.g. 5m; default at once)")
	f.StringVar(&spec.Severity, "severity", "", "critical, error, warning (default) or info")
	f.StringVar(&spec.Message, "message", "", "notification text (a template)")
	f.StringSliceVar(&spec.Channels, "channel", nil, "notification channel (repeatable or comma-separated)")
	f.StringArrayVar(&labels, "label", nil, "extra alert label KEY=VALUE (repeatable; templates allowed)")
	f.StringArrayVar(&annotations, "annotation", nil, "annotation KEY=VALUE (repeatable; templates allowed)")
	f.StringVar(&spec.Interval, "interval", "", "evaluation interval (default the node's, 15s)")
	f.StringVar(&spec.Repeat, "repeat", "", "re-notify a firing alert this often (default never)")
	f.StringVar(&an.Season, "season", "", "anomaly: baseline period (default 24h)")
	f.IntVar(&an.Buckets, "buckets", 0, "anomaly: baseline slots per season (default 24)")
	f.StringVar(&an.Window, "window", "", "anomaly: history learned from (default 7d)")
	f.StringVar(&an.Step, "step", "", "anomaly: history sample spacing (default 5m)")
	f.Float64Var(&an.Threshold, "threshold", 0, "anomaly: robust z-score that alerts (default 4)")
	f.IntVar(&an.MinSamples, "min-samples", 0, "anomaly: history points needed (default 48)")
	f.StringVar(&an.Direction, "direction", "", "anomaly: both (default), above or below")
	f.BoolVar(&asJSON, "json", false, "print the saved rule as JSON")
	_ = c.MarkFlagRequired("expr")
	return c
}

func newAlertListCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List alert rules",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			rs, err := g.client().AlertRules(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), rs)
			}
			t := newTable(c.OutOrStdout(), "NAME", "KIND", "SEVERITY", "FOR", "CHANNELS", "OWNER", "PENDING", "FIRING", "EVALUATED", "EXPR")
			for _, r := range rs {
				forS := r.For
				if forS == "" {
					forS = "0s"
				}
				ev := ago(r.EvaluatedAt)
				if r.LastError != "" {
					ev += " (error: " + r.LastError + ")"
				}
				t.row(r.Name, r.Kind, r.Severity, forS, dash(strings.Join(r.Channels, ",")), dash(r.Owner),
					strconv.Itoa(r.Pending), strconv.Itoa(r.Firing), ev, r.Expr)
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newAlertRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove an alert rule (and its alerts)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.client().RemoveAlertRule(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "alert rule %s removed\n", args[0])
			return nil
		},
	}
}

func newAlertsCmd(g *globals) *cobra.Command {
	var asJSON, all bool
	c := &cobra.Command{
		Use:   "alerts",
		Short: "List active alerts (pending and firing)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			as, err := g.client().Alerts(c.Context(), all)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), as)
			}
			return printAlerts(c.OutOrStdout(), as)
		},
	}
	c.Flags().BoolVar(&all, "all", false, "include alerts resolved in the last 15 minutes")
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return c
}

func printAlerts(w io.Writer, as []api.AlertInfo) error {
	t := newTable(w, "RULE", "STATE", "SEVERITY", "SINCE", "VALUE", "LABELS", "MESSAGE")
	for _, a := range as {
		st := a.State
		if a.Silenced {
			st += " (silenced)"
		}
		var ls []string
		for k, v := range a.Labels {
			if k != "alertname" && k != "severity" {
				ls = append(ls, k+"="+v)
			}
		}
		sort.Strings(ls)
		since := a.ActiveAt
		if a.State == api.AlertResolved {
			since = a.ResolvedAt
		}
		t.row(a.Rule, st, a.Severity, ago(since), strconv.FormatFloat(a.Value, 'g', 6, 64), dash(strings.Join(ls, ",")),
			strings.ReplaceAll(a.Annotations["message"], "\n", " "))
	}
	return t.flush()
}

func newSilenceCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "silence", Short: "Silences: add, list, rm (alerts matching a silence are not notified)"}
	var (
		spec   api.SilenceSpec
		asJSON bool
	)
	add := &cobra.Command{
		Use:     "add --match LABEL=VALUE [--match ...] --for 2h [--comment TEXT]",
		Short:   "Silence alerts whose labels match every --match until --for has passed",
		Example: "  constellation monitor silence add --match alertname=HighCPU --match 'instance=~web-.*' --for 2h --comment 'maintenance'",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := g.client().AddSilence(c.Context(), spec)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), s)
			}
			fmt.Fprintln(c.OutOrStdout(), s.ID)
			fmt.Fprintf(c.ErrOrStderr(), "silenced %s until %s\n", strings.Join(s.Matchers, ", "), s.EndsAt.Local().Format(time.DateTime))
			return nil
		},
	}
	add.Flags().StringArrayVar(&spec.Matchers, "match", nil, "label matcher: name=value, name!=value, name=~regex, name!~regex (repeatable)")
	add.Flags().StringVar(&spec.Duration, "for", "", "how long the silence lasts (e.g. 2h)")
	add.Flags().StringVar(&spec.Comment, "comment", "", "why")
	add.Flags().BoolVar(&asJSON, "json", false, "print the silence as JSON")
	var listJSON, all bool
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List silences (active and future; --all adds expired ones)",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ss, err := g.client().Silences(c.Context(), all)
			if err != nil {
				return err
			}
			if listJSON {
				return printJSON(c.OutOrStdout(), ss)
			}
			t := newTable(c.OutOrStdout(), "ID", "MATCHERS", "ACTIVE", "ENDS", "BY", "COMMENT")
			for _, s := range ss {
				t.row(s.ID, strings.Join(s.Matchers, ","), strconv.FormatBool(s.Active), s.EndsAt.Local().Format(time.DateTime), dash(s.CreatedBy), s.Comment)
			}
			return t.flush()
		},
	}
	list.Flags().BoolVar(&all, "all", false, "include expired silences")
	list.Flags().BoolVar(&listJSON, "json", false, "print a JSON array")
	rm := &cobra.Command{
		Use:   "rm ID",
		Short: "Remove a silence",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.client().RemoveSilence(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "silence %s removed\n", args[0])
			return nil
		},
	}
	c.AddCommand(add, list, rm)
	return c
}

func newChannelCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "channel", Short: "Notification channels: add, list, rm, test, history"}
	c.AddCommand(newChannelAddCmd(g), newChannelListCmd(g), newChannelRmCmd(g), newChannelTestCmd(g), newChannelHistoryCmd(g))
	return c
}

func newChannelAddCmd(g *globals) *cobra.Command {
	var (
		spec         api.ChannelSpec
		passwordFile string
		asJSON       bool
	)
	c := &cobra.Command{
		Use:   "add NAME --type webhook|slack|pagerduty|email|alertmanager ...",
		Short: "Create or replace a notification channel",
		Long: `Create or replace a notification channel:
  webhook       --url URL             generic JSON POST
  slack         --url URL             a Slack incoming webhook
  pagerduty     --routing-key KEY     Events API v2 (trigger/resolve with a dedup key); --url overrides the endpoint
  alertmanager  --url URL             Alertmanager's webhook payload (version 4)
  email         --smtp-host HOST:PORT --from ADDR --to ADDR [--username U --password-file F] [--starttls required|opportunistic|none]
URLs must be http or https. Secrets (password, routing key, a Slack URL) are never printed back.`,
		Example: `  constellation monitor channel add ops --type slack --url https://hooks.slack.com/services/T0/B0/XYZ
  constellation monitor channel add mail --type email --smtp-host smtp.example.com:587 --from alerts@example.com \
      --to oncall@example.com --username alerts --password-file /etc/constellation/smtp.pass`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			spec.Name = args[0]
			if passwordFile != "" {
				if spec.Password != "" {
					return fmt.Errorf("give --password or --password-file, not both")
				}
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return fmt.Errorf("--password-file: %w", err)
				}
				spec.Password = strings.TrimRight(string(b), "\r\n")
			}
			r, err := g.client().AddChannel(c.Context(), spec)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), r)
			}
			fmt.Fprintf(c.OutOrStdout(), "channel %s (%s) saved; try it with: constellation monitor channel test %s\n", r.Name, r.Type, r.Name)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&spec.Type, "type", "", "webhook, slack, pagerduty, email or alertmanager (required)")
	f.StringVar(&spec.URL, "url", "", "target URL (http or https)")
	f.StringVar(&spec.RoutingKey, "routing-key", "", "pagerduty integration key")
	f.StringVar(&spec.SMTPHost, "smtp-host", "", "email: SMTP server HOST:PORT")
	f.StringVar(&spec.From, "from", "", "email: sender address")
	f.StringSliceVar(&spec.To, "to", nil, "email: recipient (repeatable or comma-separated)")
	f.StringVar(&spec.Username, "username", "", "email: SMTP AUTH user")
	f.StringVar(&spec.Password, "password", "", "email: SMTP AUTH password (prefer --password-file)")
	f.StringVar(&passwordFile, "password-file", "", "email: read the SMTP password from this file")
	f.StringVar(&spec.StartTLS, "starttls", "", "email: required (default), opportunistic or none")
	f.BoolVar(&spec.InsecureSkipVerify, "insecure-skip-verify", false, "email: do not verify the SMTP server's certificate")
	f.BoolVar(&asJSON, "json", false, "print the channel as JSON (secrets masked)")
	_ = c.MarkFlagRequired("type")
	return c
}

func newChannelListCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List notification channels (secrets masked)",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cs, err := g.client().Channels(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), cs)
			}
			t := newTable(c.OutOrStdout(), "NAME", "TYPE", "TARGET")
			for _, ch := range cs {
				target := ch.URL
				if ch.Type == api.ChannelEmail {
					target = fmt.Sprintf("%s via %s (starttls %s)", strings.Join(ch.To, ","), ch.SMTPHost, ch.StartTLS)
					if ch.Username != "" {
						target += " as " + ch.Username
					}
				}
				t.row(ch.Name, ch.Type, target)
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return c
}

func newChannelRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a notification channel",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.client().RemoveChannel(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "channel %s removed\n", args[0])
			return nil
		},
	}
}

func newChannelTestCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "test NAME",
		Short: "Send a test notification over a channel (up to 3 attempts) and report the result",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := g.client().TestChannel(c.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(c.OutOrStdout(), r); err != nil {
					return err
				}
			} else if r.OK {
				fmt.Fprintf(c.OutOrStdout(), "test notification delivered over %s (attempt %d)\n", r.Channel, r.Attempts)
			}
			if !r.OK {
				return fmt.Errorf("test notification over %s failed after %d attempt(s): %s", r.Channel, r.Attempts, r.Error)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func newChannelHistoryCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "history NAME",
		Short: "Show the last delivery attempts on a channel, from every node, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			hs, err := g.client().ChannelHistory(c.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), hs)
			}
			t := newTable(c.OutOrStdout(), "TIME", "NODE", "RULE", "STATUS", "ATTEMPT", "RESULT", "MS")
			for _, h := range hs {
				res := "ok"
				if !h.OK {
					res = "error: " + h.Error
				}
				t.row(h.At.Local().Format(time.DateTime), h.Node, dash(h.Rule), h.Status, strconv.Itoa(h.Attempt), res,
					strconv.FormatFloat(h.DurationMs, 'f', 1, 64))
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return c
}
