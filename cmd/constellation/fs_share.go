package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
)

// fsShareCmds are `fs share`, `fs shares` and `fs unshare`: shared directories
// (docs/dfs.md, "Shared directories").
func fsShareCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{fsShareCmd(g), fsSharesCmd(g), fsUnshareCmd(g)}
}

func fsShareCmd(g *globals) *cobra.Command {
	var req api.FSShareRequest
	var interval time.Duration
	var asJSON bool
	c := &cobra.Command{
		Use:   "share LOCALDIR PATH",
		Short: "Keep a local directory of the node in two-way sync with a DFS tree (the node runs the sync)",
		Long: `Registers a share on the node the command talks to: the node process keeps LOCALDIR (a
directory on its machine) and the DFS tree PATH in sync until fs unshare, across restarts.
Without --writable the share is read-only: the DFS side wins and local edits are overwritten.`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return fmt.Errorf("local directory %q: %w", args[0], err)
			}
			req.LocalDir, req.Path = dir, args[1]
			if c.Flags().Changed("interval") {
				req.Interval = interval.String()
			}
			s, err := g.client().FSShare(c.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), s)
			}
			mode := "read-only (DFS to local)"
			if s.Writable {
				mode = "writable (two-way)"
			}
			fmt.Fprintf(c.OutOrStdout(), "share %s: %s <-> %s, %s, %s, %s\n", s.ID, s.LocalDir, s.Path, syncOf(s), s.Conflict, mode)
			return nil
		},
	}
	c.Flags().StringVar(&req.Sync, "sync", "realtime", "realtime (file and DFS events) or periodic (a full scan every --interval)")
	c.Flags().DurationVar(&interval, "interval", 30*time.Second, "full-scan period (periodic; realtime's safety net), 1s..24h")
	c.Flags().StringVar(&req.Conflict, "conflict", "last_write_wins", "a file changed on both sides: last_write_wins or keep_both (the loser kept as NAME.conflict-<node>-<time>)")
	c.Flags().BoolVar(&req.Writable, "writable", false, "send local changes to the DFS (default: DFS to local only)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func syncOf(s api.FSShare) string {
	if s.Sync == "periodic" {
		return "periodic every " + s.Interval
	}
	return s.Sync
}

func fsSharesCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "shares",
		Short: "List the node's shared directories with status, lag and errors",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ss, err := g.client().FSShares(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), ss)
			}
			t := newTable(c.OutOrStdout(), "ID", "LOCAL DIR", "DFS PATH", "MODE", "CONFLICT", "WRITABLE", "STATUS", "LAG", "LAST SYNC", "FILES", "ERRORS")
			for _, s := range ss {
				last := "-"
				if !s.LastSync.IsZero() {
					last = ago(s.LastSync)
				}
				t.row(s.ID, s.LocalDir, s.Path, syncOf(s), s.Conflict, strconv.FormatBool(s.Writable), s.Status,
					(time.Duration(s.LagMS * float64(time.Millisecond))).Round(time.Millisecond).String(), last,
					strconv.Itoa(s.Files), strconv.Itoa(s.Errors))
			}
			if err := t.flush(); err != nil {
				return err
			}
			for _, s := range ss {
				for _, e := range s.LastErrors {
					fmt.Fprintf(c.OutOrStdout(), "%s error: %s\n", s.ID, e)
				}
				for _, e := range s.Skipped {
					fmt.Fprintf(c.OutOrStdout(), "%s skipped: %s\n", s.ID, e)
				}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func fsUnshareCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unshare LOCALDIR|ID",
		Short: "Stop syncing a shared directory (the files stay on both sides)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if !strings.HasPrefix(name, "sh-") {
				if abs, err := filepath.Abs(name); err == nil {
					name = abs
				}
			}
			s, err := g.client().FSUnshare(c.Context(), name)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "unshared %s (%s <-> %s); the files stay on both sides\n", s.ID, s.LocalDir, s.Path)
			return nil
		},
	}
}
