package node

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs/share"
	"github.com/rads-lang/constellation/internal/testutil"
)

// readTree is a directory's regular files (relative path -> content).
func readTree(tb testing.TB, root string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == share.MarkerName {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil {
			rel, _ := filepath.Rel(root, p)
			out[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	return out
}

func treeString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q ", k, m[k])
	}
	return b.String()
}

// syncRound asks a node's share for a round and waits until it completed.
func syncRound(tb testing.TB, n *testNode, dir string) {
	tb.Helper()
	rounds := func() uint64 {
		for _, s := range n.Shares().List() {
			if s.LocalDir == dir {
				return s.Rounds
			}
		}
		return 0
	}
	before := rounds()
	if err := n.Shares().Sync(dir); err != nil {
		tb.Fatal(err)
	}
	testutil.WaitFor(tb, 20*time.Second, "a share round on "+n.cfg.Node, func() (bool, string) {
		return rounds() > before, fmt.Sprintf("rounds %d", rounds())
	})
}

// TestDFSShareTwoNodes: a directory shared on two nodes to the same DFS path, writable:
// files written, modified and deleted on either side reach the other (realtime), and a file
// edited on both sides before either synced resolves by the policy (periodic shares whose
// rounds the test drives, so that the conflict is certain): last_write_wins keeps the newer
// edit everywhere, keep_both keeps the loser as NAME.conflict-<node>-<time> on both sides.
func TestDFSShareTwoNodes(t *testing.T) {
	ns := startCluster(t, 2, func(i int, c *Config) { c.Liveness = "local" })
	ctx := context.Background()
	testutil.WaitFor(t, 20*time.Second, "both nodes see 2 alive", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	cls := []*api.Client{api.NewClient(ns[0].cfg.DataDir, "", ""), api.NewClient(ns[1].cfg.DataDir, "", "")}
	shareDir := func(i int, path, sync, policy string) string {
		dir, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		s, err := cls[i].FSShare(ctx, api.FSShareRequest{LocalDir: dir, Path: path, Sync: sync, Interval: "1h", Conflict: policy, Writable: true})
		if err != nil {
			t.Fatalf("share on n%d: %v", i, err)
		}
		if s.LocalDir != dir || s.Path != path {
			t.Fatalf("share answer %+v", s)
		}
		return dir
	}
	converged := func(what string, a, b string, want map[string]string) {
		t.Helper()
		testutil.WaitFor(t, 30*time.Second, what, func() (bool, string) {
			ta, tb := readTree(t, a), readTree(t, b)
			ok := maps.Equal(ta, tb) && (want == nil || maps.Equal(ta, want))
			return ok, "n0: " + treeString(ta) + "\nn1: " + treeString(tb)
		})
	}
	write := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("realtime", func(t *testing.T) {
		a, b := shareDir(0, "/shared/rt", "realtime", "last_write_wins"), shareDir(1, "/shared/rt", "realtime", "last_write_wins")
		write(filepath.Join(a, "a.txt"), "from n0")
		write(filepath.Join(b, "sub/dir/b.txt"), "from n1")
		converged("new files on both sides reach the other", a, b, map[string]string{"a.txt": "from n0", "sub/dir/b.txt": "from n1"})
		write(filepath.Join(b, "a.txt"), "n1 edited it")
		os.Remove(filepath.Join(a, "sub/dir/b.txt"))
		converged("an edit on n1 and a delete on n0", a, b, map[string]string{"a.txt": "n1 edited it"})
		if _, err := os.Stat(filepath.Join(b, "sub")); err == nil {
			t.Errorf("the directory the delete left empty is still on n1")
		}
		// an editor's save: write a temp file, rename it over the original
		tmp := filepath.Join(a, ".a.txt.swp")
		write(tmp, "saved by an editor")
		if err := os.Rename(tmp, filepath.Join(a, "a.txt")); err != nil {
			t.Fatal(err)
		}
		converged("an editor's save (temp + rename)", a, b, map[string]string{"a.txt": "saved by an editor"})
		var st api.FSShare
		testutil.WaitFor(t, 10*time.Second, "the share reports its lag", func() (bool, string) {
			ss, _ := cls[1].FSShares(ctx)
			for _, s := range ss {
				if s.LocalDir == b {
					st = s
				}
			}
			return st.Status == "ok" && st.Applied > 0 && st.Files == 1 && !st.LastSync.IsZero(), fmt.Sprintf("%+v", st)
		})
		if st.LagMS <= 0 {
			t.Errorf("lag %v ms after applied changes", st.LagMS)
		}
	})

	// the attacker's link and the read-only side: a link in a shared directory pointing
	// outside it never publishes its target; a read-only share's local edits are overwritten
	// and its local-only files stay local
	t.Run("read-only and links", func(t *testing.T) {
		a := shareDir(0, "/shared/ro", "realtime", "last_write_wins")
		dir, _ := filepath.EvalSymlinks(t.TempDir())
		if _, err := cls[1].FSShare(ctx, api.FSShareRequest{LocalDir: dir, Path: "/shared/ro"}); err != nil {
			t.Fatal(err)
		}
		secret := filepath.Join(t.TempDir(), "secret")
		write(secret, "not for the cluster")
		if err := os.Symlink(secret, filepath.Join(a, "escape")); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(a, "doc.txt"), "the DFS version")
		testutil.WaitFor(t, 30*time.Second, "doc.txt on the read-only side", func() (bool, string) {
			got := readTree(t, dir)
			return maps.Equal(got, map[string]string{"doc.txt": "the DFS version"}), treeString(got)
		})
		write(filepath.Join(dir, "doc.txt"), "a local edit")
		write(filepath.Join(dir, "local-only.txt"), "stays here")
		if err := ns[1].Shares().Sync(dir); err != nil {
			t.Fatal(err)
		}
		var st api.FSShare
		testutil.WaitFor(t, 30*time.Second, "the local edit overwritten, the local file reported", func() (bool, string) {
			got := readTree(t, dir)
			for _, s := range ns[1].Shares().List() {
				if s.LocalDir == dir {
					st = s
				}
			}
			return maps.Equal(got, map[string]string{"doc.txt": "the DFS version", "local-only.txt": "stays here"}) &&
				len(st.Skipped) == 1 && strings.Contains(st.Skipped[0], "read-only"), treeString(got) + fmt.Sprintf(" %+v", st)
		})
		es, _ := ns[0].DFS().List("/shared/ro", true)
		if len(es) != 1 || es[0].Path != "/shared/ro/doc.txt" {
			t.Fatalf("the DFS holds %v: only doc.txt should be there (no link target, no read-only upload)", es)
		}
		for _, s := range ns[0].Shares().List() {
			if s.LocalDir == a && (len(s.Skipped) != 1 || !strings.Contains(s.Skipped[0], "escaping")) {
				t.Errorf("n0's share should report the escaping link: %+v", s.Skipped)
			}
		}
	})

	// the fault: the directory's disk is not mounted (the directory is empty, its marker
	// gone): nothing is deleted anywhere, the share reports why
	t.Run("unmounted", func(t *testing.T) {
		a, b := shareDir(0, "/shared/mnt", "realtime", "last_write_wins"), shareDir(1, "/shared/mnt", "realtime", "last_write_wins")
		write(filepath.Join(a, "keep.txt"), "precious")
		converged("keep.txt on both", a, b, map[string]string{"keep.txt": "precious"})
		os.Remove(filepath.Join(a, "keep.txt"))
		os.Remove(filepath.Join(a, share.MarkerName))
		var st api.FSShare
		testutil.WaitFor(t, 30*time.Second, "n0's share reports the missing marker", func() (bool, string) {
			ns[0].Shares().Sync(a)
			for _, s := range ns[0].Shares().List() {
				if s.LocalDir == a {
					st = s
				}
			}
			return st.Status == "error" && len(st.LastErrors) == 1 && strings.Contains(st.LastErrors[0], "marker"), fmt.Sprintf("%+v", st)
		})
		syncRound(t, ns[1], b)
		if got := readTree(t, b); !maps.Equal(got, map[string]string{"keep.txt": "precious"}) {
			t.Fatalf("n1 lost files while n0's directory was unmounted: %s", treeString(got))
		}
		if es, _ := ns[1].DFS().List("/shared/mnt", true); len(es) != 1 {
			t.Fatalf("the DFS lost files while n0's directory was unmounted: %v", es)
		}
	})

	for _, policy := range []string{"last_write_wins", "keep_both"} {
		t.Run(policy, func(t *testing.T) {
			path := "/shared/" + policy
			a, b := shareDir(0, path, "periodic", policy), shareDir(1, path, "periodic", policy)
			write(filepath.Join(a, "f.txt"), "v1")
			syncRound(t, ns[0], a)
			testutil.WaitFor(t, 20*time.Second, "n1's DFS has f.txt", func() (bool, string) {
				es, err := ns[1].DFS().List(path, true)
				return err == nil && len(es) == 1, fmt.Sprint(es, err)
			})
			syncRound(t, ns[1], b)
			converged("v1 on both", a, b, map[string]string{"f.txt": "v1"})
			// both edit f.txt before either syncs; n1's edit is the newer for last_write_wins
			// and the older (so the loser, kept as a conflict copy) for keep_both
			write(filepath.Join(a, "f.txt"), "edited on n0")
			write(filepath.Join(b, "f.txt"), "edited on n1")
			bTime := time.Now().Add(time.Hour)
			if policy == "keep_both" {
				bTime = time.Now().Add(-time.Hour)
			}
			if err := os.Chtimes(filepath.Join(b, "f.txt"), bTime, bTime); err != nil {
				t.Fatal(err)
			}
			syncRound(t, ns[0], a) // n0 uploads its edit
			testutil.WaitFor(t, 20*time.Second, "n1's DFS has n0's edit", func() (bool, string) {
				es, err := ns[1].DFS().List(path, true)
				return err == nil && len(es) == 1 && es[0].Writer == "n0" && es[0].Version == 2, fmt.Sprint(es, err)
			})
			syncRound(t, ns[1], b) // n1 finds both sides changed
			testutil.WaitFor(t, 20*time.Second, "n0's DFS has n1's outcome", func() (bool, string) {
				es, err := ns[0].DFS().List(path, true)
				if policy == "keep_both" { // n0's edit stays, n1's is the copy
					return err == nil && len(es) == 2 && es[1].Writer == "n1", fmt.Sprint(es, err)
				}
				return err == nil && len(es) == 1 && es[0].Writer == "n1", fmt.Sprint(es, err)
			})
			syncRound(t, ns[0], a)
			if policy == "last_write_wins" {
				converged("the newer edit (n1's) on both sides", a, b, map[string]string{"f.txt": "edited on n1"})
				return
			}
			ta := readTree(t, a)
			converged("both edits on both sides", a, b, ta)
			if len(ta) != 2 || ta["f.txt"] != "edited on n0" {
				t.Fatalf("keep_both: n0 has %s", treeString(ta))
			}
			for name, c := range ta {
				if name != "f.txt" && (!strings.HasPrefix(name, "f.txt.conflict-n1-") || c != "edited on n1") {
					t.Fatalf("keep_both: the loser should be kept as f.txt.conflict-n1-<time>: %s", treeString(ta))
				}
			}
			ss, _ := cls[1].FSShares(ctx)
			conflicts := uint64(0)
			for _, s := range ss {
				if s.LocalDir == b {
					conflicts = s.Conflicts
				}
			}
			if conflicts != 1 {
				t.Errorf("n1's share reports %d conflicts, want 1", conflicts)
			}
		})
	}
}
