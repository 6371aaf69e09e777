package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/node"
)

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show this node: name, peer ID, cluster, addresses, nodes alive",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := g.client().Status(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), st)
			}
			t := newTable(c.OutOrStdout(), "FIELD", "VALUE")
			t.row("name", st.Name)
			t.row("id", st.ID)
			t.row("cluster", st.Cluster)
			t.row("nodes", fmt.Sprintf("%d alive / %d known", st.NodesAlive, st.NodesTotal))
			t.row("peers admitted", fmt.Sprint(st.Admitted))
			t.row("cluster key", map[bool]string{true: "set", false: "none (open cluster)"}[st.Keyed])
			t.row("labels", orDash(node.FormatLabels(st.Labels)))
			t.row("uptime", (time.Duration(st.UptimeS) * time.Second).String())
			t.row("data dir", st.DataDir)
			if st.APIAddr != "" {
				t.row("api (tcp, tls)", st.APIAddr)
				t.row("api fingerprint", st.APIFingerprint)
			}
			t.row("version", st.Version)
			t.row("reachability", orDash(st.Reachability))
			t.row("nat type", orDash(st.NATType))
			t.row("relay service", map[bool]string{true: "on (members only)", false: "off"}[st.RelayService])
			if len(st.Relays) == 0 {
				t.row("relay reservations", "-")
			}
			for i, r := range st.Relays {
				k := ""
				if i == 0 {
					k = "relay reservations"
				}
				t.row(k, fmt.Sprintf("%s (until %s)", r.Relay, r.Expires.Local().Format(time.TimeOnly)))
			}
			for i, a := range st.ObservedAddrs {
				k := ""
				if i == 0 {
					k = "observed addresses"
				}
				t.row(k, a)
			}
			for i, a := range st.Addresses {
				k := ""
				if i == 0 {
					k = "addresses"
				}
				t.row(k, a)
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newNodesCmd(g *globals) *cobra.Command {
	var (
		asJSON, wide, rtt bool
		status            string
	)
	c := &cobra.Command{
		Use:   "nodes",
		Short: "List the cluster's nodes with their status as this node judges it",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			switch status {
			case "", api.StatusAlive, api.StatusSuspect, api.StatusDead, api.StatusLeft:
			default:
				return fmt.Errorf("invalid --status %q: one of alive, suspect, dead, left", status)
			}
			ns, err := g.client().Nodes(c.Context())
			if err != nil {
				return err
			}
			if status != "" {
				kept := ns[:0]
				for _, n := range ns {
					if n.Status == status {
						kept = append(kept, n)
					}
				}
				ns = kept
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), ns)
			}
			if rtt {
				return printRTTTable(c.OutOrStdout(), ns)
			}
			cols := []string{"NAME", "ID", "STATUS", "ADDRESS", "CPU", "RAM", "DISK", "INSTANCES", "LABELS", "LAST SEEN"}
			if wide {
				cols = append(cols, "CONNECTION", "TRANSPORT", "RTT", "REACHABILITY", "NAT")
			}
			t := newTable(c.OutOrStdout(), cols...)
			for _, n := range ns {
				addr := orDash(n.Address)
				name := n.Name
				if n.Self {
					name += " (self)"
				}
				st := n.Status
				if n.Draining {
					st += ", draining"
				}
				row := []string{name, shortID(n.ID), st, addr, fmt.Sprint(n.CPUTotal), humanMB(n.RAMTotalMB), humanMB(n.DiskTotalMB),
					fmt.Sprint(n.Instances), orDash(node.FormatLabels(n.Labels)), ago(n.LastSeen)}
				if wide {
					conn, rtt := "-", "-"
					switch {
					case n.Self:
						conn = "self"
					case n.Connection != "":
						conn = n.Connection
					}
					if n.RTTMs > 0 {
						rtt = fmt.Sprintf("%.1fms", n.RTTMs)
					}
					row = append(row, conn, orDash(n.Transport), rtt, orDash(n.Reachability), orDash(n.NATType))
				}
				t.row(row...)
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&wide, "wide", false, "also show how this node reaches each node (connection direct, relayed or hole-punched; transport; round-trip time) and each node's reachability and NAT type")
	c.Flags().BoolVar(&rtt, "rtt", false, "print the cluster's round-trip time table (ms, row node to column node, as each node measured it)")
	c.Flags().StringVar(&status, "status", "", "only nodes with this status (alive, suspect, dead, left)")
	return c
}

// parseData accepts any JSON value; a bare word that is not JSON is an error naming the fix.
func parseData(s string) (json.RawMessage, error) {
	if s == "" {
		return nil, fmt.Errorf("--data is required: a JSON value, e.g. --data '{\"key\":\"value\"}'")
	}
	if s == "-" {
		b, err := readAllLimited(os.Stdin, 1<<20)
		if err != nil {
			return nil, err
		}
		s = string(b)
	}
	if !json.Valid([]byte(s)) {
		return nil, fmt.Errorf("--data %q is not valid JSON; quote strings (--data '\"text\"') or pass an object (--data '{\"key\":\"value\"}')", s)
	}
	return json.RawMessage(s), nil
}

func readAllLimited(f *os.File, n int64) ([]byte, error) {
	b := make([]byte, 0, 4096)
	buf := make([]byte, 4096)
	for int64(len(b)) <= n {
		k, err := f.Read(buf)
		b = append(b, buf[:k]...)
		if err != nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("--data from stdin exceeds %d bytes", n)
}

func newSendCmd(g *globals) *cobra.Command {
	var typ, data string
	var asJSON bool
	c := &cobra.Command{
		Use:     "send NODE --type T --data JSON",
		Short:   "Deliver a message event to one node (at least once, de-duplicated by ID)",
		Example: `  constellation send node-2 --type sync_request --data '{"table":"users"}'`,
		Args:    exactArgs(1, "NODE (a node name or peer ID from 'constellation nodes')"),
		RunE: func(c *cobra.Command, args []string) error {
			if typ == "" {
				return fmt.Errorf("--type is required, e.g. --type sync_request")
			}
			d, err := parseData(data)
			if err != nil {
				return err
			}
			r, err := g.client().Send(c.Context(), args[0], typ, d)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), r)
			}
			fmt.Fprintf(c.OutOrStdout(), "delivered message %s to %s\n", r.ID, strings.Join(r.Nodes, ", "))
			return nil
		},
	}
	c.Flags().StringVar(&typ, "type", "", "message type (required)")
	c.Flags().StringVar(&data, "data", "", "message data: a JSON value, or - to read it from stdin (required)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newBroadcastCmd(g *globals) *cobra.Command {
	var typ, data string
	var asJSON bool
	c := &cobra.Command{
		Use:     "broadcast --type T --data JSON",
		Short:   "Deliver a message event to every node (at least once, de-duplicated by ID)",
		Example: `  constellation broadcast --type config_update --data '{"log_level":"debug"}'`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if typ == "" {
				return fmt.Errorf("--type is required, e.g. --type config_update")
			}
			d, err := parseData(data)
			if err != nil {
				return err
			}
			r, err := g.client().Broadcast(c.Context(), typ, d)
			if err != nil && r.ID == "" {
				return err
			}
			if asJSON {
				if perr := printJSON(c.OutOrStdout(), r); perr != nil {
					return perr
				}
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "delivered message %s to %d nodes: %s\n", r.ID, len(r.Nodes), strings.Join(r.Nodes, ", "))
			return err
		},
	}
	c.Flags().StringVar(&typ, "type", "", "message type (required)")
	c.Flags().StringVar(&data, "data", "", "message data: a JSON value, or - to read it from stdin (required)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newEventsCmd(g *globals) *cobra.Command {
	var (
		asJSON bool
		types  []string
		since  uint64
		count  int
	)
	c := &cobra.Command{
		Use:   "events",
		Short: "Stream cluster events (node_join, node_leave, node_suspect, node_dead, message, instance) until interrupted",
		Example: `  constellation events
  constellation events --type node_join,node_dead --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			out := c.OutOrStdout()
			seen := 0
			var tw *table
			if !asJSON {
				tw = newTable(out, "TIME", "EVENT", "NODE", "DETAIL")
				tw.flush()
			}
			err := g.client().Events(ctx, types, c.Flags().Changed("since"), since, func(e api.Event) error {
				if asJSON {
					b, _ := json.Marshal(e)
					fmt.Fprintln(out, string(b))
				} else {
					who, detail := "-", ""
					if e.Node != nil {
						who = e.Node.Name + " (" + shortID(e.Node.ID) + ")"
					}
					if e.Type == api.EventInstance {
						var ie api.InstanceEvent
						if json.Unmarshal(e.Data, &ie) == nil {
							detail = fmt.Sprintf("instance %s %s", ie.Name, ie.Status)
							if ie.ExitCode != nil && ie.Status != api.InstanceRunning {
								detail += fmt.Sprintf(" (%s, code %d)", ie.ExitReason, *ie.ExitCode)
							}
						}
					}
					if e.Msg != nil {
						who = orDash(e.Msg.FromName)
						detail = fmt.Sprintf("type=%s id=%s data=%s", e.Msg.Type, e.Msg.ID, string(e.Msg.Data))
					}
					tw.row(e.Time.Local().Format("15:04:05.000"), e.Type, who, detail)
					tw.flush()
				}
				seen++
				if count > 0 && seen >= count {
					return errEnough // no more: the events already buffered are not printed
				}
				return nil
			})
			if ctx.Err() != nil || errors.Is(err, errEnough) {
				return nil
			}
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per line")
	c.Flags().StringSliceVar(&types, "type", nil, "only these event types (comma-separated)")
	c.Flags().Uint64Var(&since, "since", 0, "first replay the retained events after this sequence number (0: all retained)")
	c.Flags().IntVar(&count, "count", 0, "exit after this many events (0: run until interrupted)")
	return c
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %d argument: %s (got %d)", c.CommandPath(), n, what, len(args))
		}
		return nil
	}
}

// errEnough stops an event stream once --count events were printed.
var errEnough = errors.New("enough events")

// printRTTTable prints the replicated RTT table: one row per node, one column per node,
// the round-trip time the row node measured to the column node ("-": not measured).
func printRTTTable(w io.Writer, ns []api.NodeInfo) error {
	cols := []string{"FROM \\ TO"}
	for _, n := range ns {
		cols = append(cols, n.Name)
	}
	t := newTable(w, cols...)
	for _, from := range ns {
		row := []string{from.Name}
		for _, to := range ns {
			cell := "-"
			if to.ID == from.ID {
				cell = "·"
			} else if ms, ok := from.RTTs[to.ID]; ok {
				cell = fmt.Sprintf("%.1f", ms)
			}
			row = append(row, cell)
		}
		t.row(row...)
	}
	return t.flush()
}
