package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/rads-lang/constellation/api"
)

// fsMountCmds are `fs mount`, `fs mounts` and `fs umount` (docs/dfs.md, "Mounting").
func fsMountCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{fsMountCmd(g), fsMountsCmd(g), fsUmountCmd(g)}
}

func fsMountCmd(g *globals) *cobra.Command {
	var (
		q          api.FSMountRequest
		background bool
	)
	c := &cobra.Command{
		Use:   "mount DIR",
		Short: "Mount the DFS (or --prefix) at an empty local directory with FUSE until interrupted",
		Long: "The node (on this machine: DIR is on its host) mounts the DFS prefix at DIR and serves it;\n" +
			"ls, cat, write, rename, rm, mkdir and stat map onto the DFS. Ctrl-C (SIGINT/SIGTERM) unmounts;\n" +
			"with --background the mount stays until `fs umount DIR` or the node stops.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			q.Dir = dir
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cl := g.client()
			q.Hold = !background
			m, err := cl.FSMount(ctx, q)
			if err != nil {
				return err
			}
			mode := "read-write"
			if m.ReadOnly {
				mode = "read-only"
			}
			if background {
				fmt.Fprintf(c.OutOrStdout(), "mounted %s at %s (%s); fs umount %s unmounts it\n", m.Prefix, m.Dir, mode, m.Dir)
				return nil
			}
			fmt.Fprintf(c.OutOrStdout(), "mounted %s at %s (%s); Ctrl-C unmounts\n", m.Prefix, m.Dir, mode)
			// the node unmounts when this hold ends, also if this process is killed
			gone, err := cl.FSHold(ctx, m.Dir)
			if gone {
				fmt.Fprintf(c.OutOrStdout(), "%s was unmounted (fs umount or the node stopping)\n", m.Dir)
				return nil
			}
			uctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			uerr := cl.FSUnmount(uctx, m.Dir)
			var re *api.RemoteError
			if uerr != nil && !(errors.As(uerr, &re) && re.Status == http.StatusNotFound) {
				return fmt.Errorf("unmount %s: %w", m.Dir, uerr)
			}
			if ctx.Err() == nil && err != nil {
				return fmt.Errorf("lost the node while holding %s (the node unmounts it): %w", m.Dir, err)
			}
			waitUnmounted(m.Dir, 10*time.Second)
			fmt.Fprintf(c.OutOrStdout(), "unmounted %s\n", m.Dir)
			return nil
		},
	}
	c.Flags().StringVar(&q.Prefix, "prefix", "/", "DFS directory shown at the mount's root")
	c.Flags().BoolVar(&q.ReadOnly, "ro", false, "mount read-only (every change answers EROFS)")
	c.Flags().BoolVar(&background, "background", false, "return once mounted; the mount stays until fs umount")
	return c
}

func fsMountsCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "mounts",
		Short: "List the FUSE mounts this node hosts (fs mount and instances' --mount-fs)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ms, err := g.client().FSMounts(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), ms)
			}
			t := newTable(c.OutOrStdout(), "DIR", "PREFIX", "MODE", "OWNER", "SINCE")
			for _, m := range ms {
				mode := "rw"
				if m.ReadOnly {
					mode = "ro"
				}
				t.row(m.Dir, m.Prefix, mode, m.Owner, ago(m.Since))
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func fsUmountCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "umount DIR",
		Short: "Unmount a mount made with fs mount",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if err := g.client().FSUnmount(c.Context(), dir); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "unmounted %s\n", dir)
			return nil
		},
	}
}

// fuseMagic is FUSE_SUPER_MAGIC, the f_type of a FUSE mount.
const fuseMagic = 0x65735546

// waitUnmounted waits (at most d) until dir, on this machine, is no FUSE mount any more:
// the node may still be unmounting when its answer arrives.
func waitUnmounted(dir string, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) != nil || st.Type != fuseMagic {
			return
		}
	}
}
