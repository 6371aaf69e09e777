package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
)

// newFSCmd is `constellation fs ...`: the distributed file system (docs/dfs.md).
func newFSCmd(g *globals) *cobra.Command {
	fs := &cobra.Command{Use: "fs", Short: "The distributed file system: put, get, list, watch, version and snapshot cluster files"}
	fs.AddCommand(fsPutCmd(g), fsGetCmd(g), fsCatCmd(g), fsLsCmd(g), fsRmCmd(g), fsMvCmd(g), fsStatCmd(g),
		fsDuCmd(g), fsInitCmd(g), fsVersionsCmd(g), fsRevertCmd(g), fsWatchCmd(g), fsSnapshotCmd(g),
		fsSnapshotsCmd(g), fsRestoreCmd(g), fsExportCmd(g), fsImportCmd(g))
	fs.AddCommand(fsShareCmds(g)...)
	fs.AddCommand(fsMountCmds(g)...)
	return fs
}

// progress prints bytes moved, rate and ETA on stderr (only on a terminal, not with --json).
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	total int64
	done  int64
	start time.Time
	last  time.Time
	label string
}

func newProgress(label string, total int64, quiet bool) *progress {
	if quiet || total < 1<<20 || !isTerminal(os.Stderr) {
		return nil
	}
	return &progress{w: os.Stderr, total: total, start: time.Now(), label: label}
}

func (p *progress) add(n int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	if time.Since(p.last) < 200*time.Millisecond && p.done < p.total {
		return
	}
	p.last = time.Now()
	el := time.Since(p.start).Seconds()
	rate := float64(p.done) / max(el, 1e-3)
	eta := "-"
	if rate > 0 && p.total > p.done {
		eta = (time.Duration(float64(p.total-p.done)/rate) * time.Second / time.Second).Round(time.Second).String()
	}
	pct := 100 * float64(p.done) / float64(max(p.total, 1))
	fmt.Fprintf(p.w, "\r%s %5.1f%% %s/%s %s/s ETA %s   ", p.label, pct, humanBytes(p.done), humanBytes(p.total), humanBytes(int64(rate)), eta)
}

func (p *progress) finish() {
	if p != nil {
		fmt.Fprintln(p.w)
	}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (r progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(n)
	return n, err
}

func fsPutCmd(g *globals) *cobra.Command {
	var (
		o      api.FSPutOptions
		asJSON bool
		mode   string
		tok    string
	)
	c := &cobra.Command{
		Use:   "put LOCAL|- PATH",
		Short: "Store a local file (or stdin) under a cluster path, replicated on its holders",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			if mode != "" {
				m, err := strconv.ParseUint(mode, 8, 32)
				if err != nil || m > 0o7777 {
					return fmt.Errorf("invalid --mode %q: octal permission bits such as 0644", mode)
				}
				o.Mode = uint32(m)
			}
			var r io.Reader = os.Stdin
			size := int64(-1)
			var err error
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("cannot read the local file: %w", err)
				}
				defer f.Close()
				fi, err := f.Stat()
				if err != nil {
					return err
				}
				if fi.IsDir() {
					return fmt.Errorf("%s is a directory; put files one by one (e.g. for f in %s/*; do constellation fs put \"$f\" %s/$(basename \"$f\"); done)", args[0], args[0], args[1])
				}
				r, size = f, fi.Size()
				if o.Mode == 0 {
					o.Mode = uint32(fi.Mode().Perm())
				}
			}
			p := newProgress("put", size, asJSON)
			if p != nil {
				r = progressReader{r, p}
			}
			if o.LockToken, err = lockToken(tok); err != nil {
				return err
			}
			e, err := g.client().FSPut(c.Context(), args[1], r, size, o)
			p.finish()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), e)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s version %d, %s, %s, on %s\n", e.Path, e.Version, humanBytes(e.Size), e.CID, strings.Join(e.Holders, ", "))
			return nil
		},
	}
	c.Flags().IntVar(&o.Replication, "replication", 0, "copies to keep (default: the tree's, see fs init)")
	c.Flags().IntVar(&o.Ack, "ack", 0, "holders that must confirm before the put returns (default: a majority)")
	c.Flags().StringVar(&o.Chunker, "chunker", "", "chunking: size-N (fixed, default size-262144) or buzhash (content-defined, dedups edits)")
	c.Flags().StringVar(&mode, "mode", "", "permission bits in octal (default: the local file's)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the entry as JSON")
	lockTokenFlag(c, &tok)
	return c
}

func fsGetCmd(g *globals) *cobra.Command {
	var (
		version uint64
		asJSON  bool
	)
	c := &cobra.Command{
		Use:   "get PATH [LOCAL|-]",
		Short: "Read a cluster file into a local file (default: its base name here) or stdout (-)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			dst := filepath.Base(args[0])
			if len(args) == 2 {
				dst = args[1]
			}
			return fsDownload(c, g, args[0], version, dst, asJSON)
		},
	}
	c.Flags().Uint64Var(&version, "version", 0, "read this kept version (see fs versions)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the entry as JSON (to stderr when writing to stdout)")
	return c
}

func fsDownload(c *cobra.Command, g *globals, path string, version uint64, dst string, asJSON bool) error {
	body, e, err := g.client().FSGet(c.Context(), path, version)
	if err != nil {
		return err
	}
	defer body.Close()
	var w io.Writer = c.OutOrStdout()
	var f *os.File
	if dst != "-" {
		tmp := dst + ".part"
		if f, err = os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644); err != nil {
			return fmt.Errorf("cannot write the local file: %w", err)
		}
		defer os.Remove(tmp)
		defer f.Close()
		w = f
	}
	p := newProgress("get", e.Size, asJSON || dst == "-")
	var r io.Reader = body
	if p != nil {
		r = progressReader{body, p}
	}
	n, err := io.Copy(w, r)
	p.finish()
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if e.Size > 0 && n != e.Size {
		return fmt.Errorf("reading %s: got %d of %d bytes", path, n, e.Size)
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(dst+".part", dst); err != nil {
			return err
		}
	}
	if asJSON {
		out := c.OutOrStdout()
		if dst == "-" {
			out = c.ErrOrStderr()
		}
		return printJSON(out, e)
	}
	return nil
}

func fsCatCmd(g *globals) *cobra.Command {
	var version uint64
	c := &cobra.Command{
		Use:   "cat PATH",
		Short: "Print a cluster file",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return fsDownload(c, g, args[0], version, "-", false)
		},
	}
	c.Flags().Uint64Var(&version, "version", 0, "print this kept version")
	return c
}

func fsLsCmd(g *globals) *cobra.Command {
	var asJSON, long, recursive bool
	c := &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List the files under a prefix (default /)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			prefix := "/"
			if len(args) == 1 {
				prefix = args[0]
			}
			es, err := g.client().FSList(c.Context(), prefix, recursive)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), es)
			}
			if !long {
				for _, e := range es {
					fmt.Fprintln(c.OutOrStdout(), e.Path)
				}
				return nil
			}
			t := newTable(c.OutOrStdout(), "MODE", "SIZE", "VERSION", "WRITER", "MODIFIED", "PATH")
			for _, e := range es {
				if strings.HasSuffix(e.Path, "/") {
					t.row("d", humanBytes(e.Size), "-", "-", ago(e.MTime), e.Path)
					continue
				}
				name := e.Path
				if e.Conflict {
					name += " (conflict)"
				}
				t.row(fmt.Sprintf("%04o", e.Mode), humanBytes(e.Size), strconv.FormatUint(e.Version, 10), e.Writer, ago(e.MTime), name)
			}
			return t.flush()
		},
	}
	c.Flags().BoolVarP(&long, "long", "l", false, "show size, version, writer and time")
	c.Flags().BoolVarP(&recursive, "recursive", "R", false, "list every file below the prefix")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func fsRmCmd(g *globals) *cobra.Command {
	var recursive bool
	var tok string
	c := &cobra.Command{
		Use:   "rm PATH",
		Short: "Delete a file (its versions are kept), or with -r every file under a prefix",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			t, err := lockToken(tok)
			if err != nil {
				return err
			}
			n, err := g.client().FSRemoveFenced(c.Context(), args[0], recursive, t)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "removed %d file(s)\n", n.Count)
			return nil
		},
	}
	c.Flags().BoolVarP(&recursive, "recursive", "r", false, "remove every file under the prefix")
	lockTokenFlag(c, &tok)
	return c
}

func fsMvCmd(g *globals) *cobra.Command {
	var tok string
	c := &cobra.Command{
		Use:   "mv FROM TO",
		Short: "Rename a file or a directory prefix",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			t, err := lockToken(tok)
			if err != nil {
				return err
			}
			n, err := g.client().FSMoveWith(c.Context(), api.FSMoveRequest{From: args[0], To: args[1], LockToken: t})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "moved %d file(s)\n", n.Count)
			return nil
		},
	}
	lockTokenFlag(c, &tok)
	return c
}

func fsStatCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "stat PATH",
		Short: "Show a file's entry, where its copies are and whether it is cached here",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			st, err := g.client().FSStat(c.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), st)
			}
			w := c.OutOrStdout()
			var copies []string
			for _, cp := range st.Copies {
				copies = append(copies, cp.Node+" ("+cp.Status+")")
			}
			fmt.Fprintf(w, "path:        %s\ncid:         %s\nsize:        %s (%d bytes)\nmode:        %04o\nversion:     %d by %s at %s\nreplication: %d (tree %s, %s)\ncopies:      %s\nhere:        %s\n",
				st.Path, st.CID, humanBytes(st.Size), st.Size, st.Mode, st.Version, st.Writer, st.MTime.Format(time.RFC3339),
				st.Replication, st.Tree.Prefix, st.Tree.Conflict, orDash(strings.Join(copies, ", ")), hereOf(st))
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func hereOf(st api.FSStat) string {
	switch {
	case st.PinnedHere:
		return "pinned (a holder)"
	case st.CachedHere:
		return "cached"
	}
	return "not stored here"
}

func fsDuCmd(g *globals) *cobra.Command {
	var asJSON, byNode bool
	c := &cobra.Command{
		Use:   "du [PREFIX]",
		Short: "Sum the files under a prefix; --by-node shows how they spread over the holders",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			prefix := "/"
			if len(args) == 1 {
				prefix = args[0]
			}
			du, err := g.client().FSDu(c.Context(), prefix, byNode)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), du)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: %d file(s), %s\n", du.Prefix, du.Files, humanBytes(du.Bytes))
			if byNode {
				t := newTable(c.OutOrStdout(), "NODE", "FILES", "BYTES")
				for _, n := range du.ByNode {
					t.row(n.Node, strconv.Itoa(n.Files), humanBytes(n.Bytes))
				}
				return t.flush()
			}
			return nil
		},
	}
	c.Flags().BoolVar(&byNode, "by-node", false, "show what each node holds")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func fsInitCmd(g *globals) *cobra.Command {
	var t api.FSTree
	var asJSON bool
	c := &cobra.Command{
		Use:   "init PREFIX",
		Short: "Set a tree's replication, consistency, cache, versions and conflict policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			t.Prefix = args[0]
			got, err := g.client().FSInit(c.Context(), t)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), got)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: replication %d, %s, versions %d, %s\n", got.Prefix, got.Replication, got.Consistency, got.Versions, got.Conflict)
			return nil
		},
	}
	c.Flags().IntVar(&t.Replication, "replication", 0, "copies of each file (default 3)")
	c.Flags().StringVar(&t.Consistency, "consistency", "", "eventual or strong (writes commit through the Raft lock service; linearizable reads); default: eventual, or the tree's current mode")
	c.Flags().Int64Var(&t.CacheMB, "cache-mb", 0, "cache size hint for the tree in MB")
	c.Flags().IntVar(&t.Versions, "versions", 0, "versions kept per file (default 10)")
	c.Flags().StringVar(&t.Conflict, "conflict", "last_write_wins", "concurrent writes: last_write_wins or keep_both")
	c.Flags().IntVar(&t.Ack, "ack", 0, "holders that must confirm a write (default: a majority)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func fsVersionsCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "versions PATH",
		Short: "List a file's kept versions, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			vs, err := g.client().FSVersions(c.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), vs)
			}
			t := newTable(c.OutOrStdout(), "VERSION", "SIZE", "WRITER", "MODIFIED", "CID", "")
			for _, v := range vs {
				note := ""
				switch {
				case v.Current:
					note = "current"
				case v.Deleted:
					note = "deleted"
				}
				t.row(strconv.FormatUint(v.Version, 10), humanBytes(v.Size), v.Writer, ago(v.MTime), orDash(v.CID), note)
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func fsRevertCmd(g *globals) *cobra.Command {
	var tok string
	c := &cobra.Command{
		Use:   "revert PATH VERSION",
		Short: "Make a kept version the current content again (as a new version)",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			n, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil || n == 0 {
				return fmt.Errorf("invalid VERSION %q: a version number from fs versions %s", args[1], args[0])
			}
			t, err := lockToken(tok)
			if err != nil {
				return err
			}
			e, err := g.client().FSRevertWith(c.Context(), api.FSRevertRequest{Path: args[0], Version: n, LockToken: t})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s is version %d (the content of version %d)\n", e.Path, e.Version, n)
			return nil
		},
	}
	lockTokenFlag(c, &tok)
	return c
}

func fsWatchCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "watch PATH|PREFIX",
		Short: "Print every change of a file or of the files under a prefix as this node sees it",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.client().FSWatch(c.Context(), args[0], func(e api.FSEvent) error {
				if asJSON {
					return printJSON(c.OutOrStdout(), e)
				}
				_, err := fmt.Fprintf(c.OutOrStdout(), "%s %-8s %s by %s (version %d)\n", e.Time.Format(time.RFC3339), e.Type, e.Path, e.Node, e.Version)
				return err
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON event per line")
	return c
}

func fsSnapshotCmd(g *globals) *cobra.Command {
	var save, del string
	c := &cobra.Command{
		Use:   "snapshot [PREFIX] --save NAME | --delete NAME",
		Short: "Save the files under a prefix as a named snapshot (no data copied), or delete one",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case del != "" && save == "" && len(args) == 0:
				if err := g.client().FSDeleteSnapshot(c.Context(), del); err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "deleted snapshot %s\n", del)
				return nil
			case save != "" && del == "" && len(args) == 1:
				s, err := g.client().FSSnapshot(c.Context(), args[0], save)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "snapshot %s of %s: %d file(s), %s\n", s.Name, s.Prefix, s.Files, humanBytes(s.Bytes))
				return nil
			}
			return errors.New("give PREFIX --save NAME to take a snapshot, or --delete NAME to delete one")
		},
	}
	c.Flags().StringVar(&save, "save", "", "name of the new snapshot")
	c.Flags().StringVar(&del, "delete", "", "delete this snapshot")
	return c
}

func fsSnapshotsCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "snapshots",
		Short: "List the snapshots",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ss, err := g.client().FSSnapshots(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), ss)
			}
			t := newTable(c.OutOrStdout(), "NAME", "PREFIX", "FILES", "BYTES", "NODE", "CREATED")
			for _, s := range ss {
				t.row(s.Name, s.Prefix, strconv.Itoa(s.Files), humanBytes(s.Bytes), s.Node, ago(s.Created))
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func fsRestoreCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restore NAME PREFIX",
		Short: "Write a snapshot's files under a prefix",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			n, err := g.client().FSRestore(c.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "restored %d file(s) under %s\n", n.Count, args[1])
			return nil
		},
	}
}

func fsExportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "export PATH",
		Short: "Write a file as a CAR to stdout (fs export /a > a.car)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := g.client().FSExport(c.Context(), args[0])
			if err != nil {
				return err
			}
			defer r.Close()
			_, err = io.Copy(c.OutOrStdout(), r)
			return err
		},
	}
}

func fsImportCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "import CAR PATH",
		Short: "Store the file of a CAR (v1 or v2, one root; every block verified) under a path",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("cannot read the CAR: %w", err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			e, err := g.client().FSImport(c.Context(), args[1], f, fi.Size())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), e)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s version %d, %s, %s\n", e.Path, e.Version, humanBytes(e.Size), e.CID)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the entry as JSON")
	return c
}
