package dfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

func put(t *testing.T, nd *tnode, path, data string, o PutOptions) api.FSEntry {
	t.Helper()
	e, err := nd.svc.Put(context.Background(), path, strings.NewReader(data), o)
	if err != nil {
		t.Fatalf("%s: put %s: %v", nd.name, path, err)
	}
	return e
}

func read(t *testing.T, nd *tnode, path string, version uint64) string {
	t.Helper()
	f, _, err := nd.svc.Open(context.Background(), path, version)
	if err != nil {
		t.Fatalf("%s: open %s@%d: %v", nd.name, path, version, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func names(es []api.FSEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Path)
	}
	return out
}

// TestWriteOnAReadOnC: a file written on a with R=2 is listed, stated and read on c,
// whatever nodes hold it; c caches what it read.
func TestWriteOnAReadOnC(t *testing.T) {
	n := newNet(t, []string{"a", "b", "c"}, tcfg{capacity: 1 << 30})
	a, c := n.nodes["a"], n.nodes["c"]
	e := put(t, a, "/cluster/config.json", `{"k":1}`, PutOptions{Replication: 2})
	if len(e.Holders) != 2 || len(e.Acked) < 2 || e.Version != 1 || e.Writer != "a" {
		t.Fatalf("put answer %+v; want 2 holders, 2 acks (majority of 2), version 1 by a", e)
	}
	n.settle(t)
	if got := read(t, c, "/cluster/config.json", 0); got != `{"k":1}` {
		t.Fatalf("c read %q", got)
	}
	ls, err := c.svc.List("/cluster", false)
	if err != nil || fmt.Sprint(names(ls)) != "[/cluster/config.json]" {
		t.Fatalf("c ls /cluster = %v, %v", names(ls), err)
	}
	root, _ := c.svc.List("/", false)
	if fmt.Sprint(names(root)) != "[/cluster/]" {
		t.Fatalf("c ls / = %v; want the directory /cluster/", names(root))
	}
	st, err := c.svc.Stat(context.Background(), "/cluster/config.json")
	if err != nil || len(st.Copies) != 2 {
		t.Fatalf("stat %+v %v; want 2 copies", st, err)
	}
	if !st.PinnedHere && !st.CachedHere {
		t.Fatalf("c read the file but stat says neither pinned nor cached here: %+v", st)
	}
	if _, err := c.svc.Stat(context.Background(), "/cluster/nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat of a missing file: %v; want ErrNotFound", err)
	}
}

// TestBadPaths: paths outside the rules are refused with a reason, and nothing is stored.
func TestBadPaths(t *testing.T) {
	n := newNet(t, []string{"a"}, tcfg{capacity: 1 << 30})
	a := n.nodes["a"]
	for _, p := range []string{"", "rel/x", "/a/../b", "/a/./b", "/a//b", "/", "/a/", "/x\xff", "/a\x01b", "/" + strings.Repeat("n", 256), "/x.conflict-b-1"} {
		_, err := a.svc.Put(context.Background(), p, strings.NewReader("x"), PutOptions{Replication: 1})
		if !errors.Is(err, ErrBadPath) {
			t.Errorf("Put(%q) = %v; want ErrBadPath", p, err)
		}
	}
	if ls, _ := a.svc.List("/", true); len(ls) != 0 {
		t.Fatalf("bad puts stored %v", names(ls))
	}
}

// TestWriteFailsWithoutPartialEntry: a file larger than any node's room, and a holder
// whose disk fails, fail the write with the node and bytes named; no entry appears.
func TestWriteFailsWithoutPartialEntry(t *testing.T) {
	n := newNet(t, []string{"a", "b"}, tcfg{capacity: 4096})
	a, b := n.nodes["a"], n.nodes["b"]
	_, err := a.svc.Put(context.Background(), "/big", bytes.NewReader(make([]byte, 10000)), PutOptions{Replication: 2})
	if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "10000 bytes") {
		t.Fatalf("oversized put: %v; want ErrNoRoom naming the size", err)
	}
	b.content.mu.Lock()
	b.content.full = true
	b.content.mu.Unlock()
	_, err = a.svc.Put(context.Background(), "/small", strings.NewReader("hello"), PutOptions{Replication: 2})
	if !errors.Is(err, ErrWriteFailed) || !strings.Contains(err.Error(), "node b") {
		t.Fatalf("put with b's disk failing: %v; want ErrWriteFailed naming node b", err)
	}
	n.settle(t)
	for _, nd := range []*tnode{a, b} {
		if ls, _ := nd.svc.List("/", true); len(ls) != 0 {
			t.Fatalf("%s shows %v after failed writes", nd.name, names(ls))
		}
	}
}

// TestRereplicationAfterHolderDies: R=2; a holder dies; once the grace is over the
// runner of the node the rendezvous hash picks copies the file: 2 good copies again,
// and the file stays readable throughout.
func TestRereplicationAfterHolderDies(t *testing.T) {
	n := newNet(t, []string{"a", "b", "c", "d"}, tcfg{capacity: 1 << 30, grace: time.Second})
	a := n.nodes["a"]
	e := put(t, a, "/data/f", "payload", PutOptions{Replication: 2})
	n.settle(t)
	victim := ""
	for _, h := range e.Holders {
		if h != "a" {
			victim = h
			break
		}
	}
	if victim == "" {
		victim = e.Holders[0]
	}
	var survivor *tnode
	for name, nd := range n.nodes {
		if name != victim {
			survivor = nd
		}
	}
	deadSince.Store(victim, time.Now().Add(-time.Hour)) // dead for longer than the grace
	defer deadSince.Delete(victim)
	n.mu.Lock()
	n.down[victim] = true
	n.mu.Unlock()
	if got := read(t, survivor, "/data/f", 0); got != "payload" {
		t.Fatalf("read after a holder died: %q", got)
	}
	pinned := 0
	for name, nd := range n.nodes {
		if name != victim {
			pinned += nd.svc.Repair()
		}
	}
	if pinned != 1 {
		t.Fatalf("%d nodes pinned the file; want exactly 1 new copy", pinned)
	}
	n.settle(t)
	st, _ := survivor.svc.Stat(context.Background(), "/data/f")
	good := 0
	for _, c := range st.Copies {
		if c.Status == api.StatusAlive {
			good++
		}
	}
	if good != 2 {
		t.Fatalf("copies after repair %+v; want 2 alive", st.Copies)
	}
	for name, nd := range n.nodes { // a second pass changes nothing
		if name != victim && nd.svc.Repair() != 0 {
			t.Fatalf("%s pinned again on a second pass", name)
		}
	}
}

// TestPartitionMerge: both sides of a partition write one path; after the heal every
// node shows the same result: the later write (last_write_wins) or both, the loser as a
// conflict copy (keep_both).
func TestPartitionMerge(t *testing.T) {
	for _, policy := range []string{LastWriteWins, KeepBoth} {
		t.Run(policy, func(t *testing.T) {
			n := newNet(t, []string{"a", "b"}, tcfg{capacity: 1 << 30})
			a, b := n.nodes["a"], n.nodes["b"]
			if _, err := a.svc.Init(api.FSTree{Prefix: "/shared", Replication: 1, Conflict: policy}); err != nil {
				t.Fatal(err)
			}
			put(t, a, "/shared/doc", "v0", PutOptions{})
			n.settle(t)
			n.setCut("a", "b", true)
			put(t, a, "/shared/doc", "from-a", PutOptions{})
			time.Sleep(2 * time.Millisecond)
			put(t, b, "/shared/doc", "from-b", PutOptions{})
			if got := read(t, a, "/shared/doc", 0); got != "from-a" {
				t.Fatalf("a during the partition reads %q", got)
			}
			n.setCut("a", "b", false)
			n.settle(t)
			la, _ := a.svc.List("/shared", true)
			lb, _ := b.svc.List("/shared", true)
			if fmt.Sprint(names(la)) != fmt.Sprint(names(lb)) {
				t.Fatalf("nodes disagree after heal: a %v, b %v", names(la), names(lb))
			}
			for _, nd := range []*tnode{a, b} {
				if got := read(t, nd, "/shared/doc", 0); got != "from-b" {
					t.Fatalf("%s reads %q after heal; want the later write from-b", nd.name, got)
				}
			}
			switch policy {
			case LastWriteWins:
				if len(la) != 1 {
					t.Fatalf("last_write_wins shows %v", names(la))
				}
			case KeepBoth:
				if len(la) != 2 || !strings.HasPrefix(la[1].Path, "/shared/doc.conflict-a-") || !la[1].Conflict {
					t.Fatalf("keep_both shows %v; want doc and doc.conflict-a-<time>", names(la))
				}
				if got := read(t, b, la[1].Path, 0); got != "from-a" {
					t.Fatalf("conflict copy reads %q", got)
				}
				if _, err := b.svc.Remove(la[1].Path, false); err != nil {
					t.Fatal(err)
				}
				n.settle(t)
				la, _ = a.svc.List("/shared", true)
				if len(la) != 1 || read(t, a, "/shared/doc", 0) != "from-b" {
					t.Fatalf("after rm of the conflict copy a shows %v", names(la))
				}
			}
		})
	}
}

// TestVersionsRevertMoveRemove: versions are kept (K per tree), read by number and
// reverted; mv renames a directory; rm -r tombstones and keeps versions.
func TestVersionsRevertMoveRemove(t *testing.T) {
	n := newNet(t, []string{"a", "b"}, tcfg{capacity: 1 << 30})
	a, b := n.nodes["a"], n.nodes["b"]
	if _, err := a.svc.Init(api.FSTree{Prefix: "/v", Replication: 1, Versions: 3}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		put(t, a, "/v/f", fmt.Sprintf("content %d", i), PutOptions{})
	}
	n.settle(t)
	vs, err := b.svc.Versions("/v/f")
	if err != nil || len(vs) != 3 || vs[0].Version != 4 || vs[2].Version != 2 || !vs[0].Current {
		t.Fatalf("versions %+v %v; want 4,3,2 (K=3)", vs, err)
	}
	if got := read(t, b, "/v/f", 2); got != "content 2" {
		t.Fatalf("version 2 reads %q", got)
	}
	if _, _, err := b.svc.Open(context.Background(), "/v/f", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("version 1 (beyond K) opened: %v", err)
	}
	if e, err := b.svc.Revert("/v/f", 2); err != nil || e.Version != 5 {
		t.Fatalf("revert: %+v %v", e, err)
	}
	n.settle(t)
	if got := read(t, a, "/v/f", 0); got != "content 2" {
		t.Fatalf("after revert a reads %q", got)
	}
	put(t, a, "/v/dir/x", "x", PutOptions{})
	if _, err := a.svc.Move("/v", "/w"); err != nil {
		t.Fatal(err)
	}
	n.settle(t)
	ls, _ := b.svc.List("/", true)
	if fmt.Sprint(names(ls)) != "[/w/dir/x /w/f]" {
		t.Fatalf("after mv b shows %v", names(ls))
	}
	if _, err := b.svc.Remove("/w", false); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("rm of a directory without -r: %v", err)
	}
	if k, err := b.svc.Remove("/w", true); err != nil || k != 2 {
		t.Fatalf("rm -r: %d %v", k, err)
	}
	n.settle(t)
	if ls, _ := a.svc.List("/", true); len(ls) != 0 {
		t.Fatalf("after rm -r a shows %v", names(ls))
	}
	if vs, err := a.svc.Versions("/w/f"); err != nil || !vs[0].Deleted || read(t, a, "/w/f", vs[1].Version) != "content 2" {
		t.Fatalf("a deleted file's versions %+v %v", vs, err)
	}
}

// TestInitRefusesBadSettings: every bad setting is refused, naming the right values.
func TestInitRefusesBadSettings(t *testing.T) {
	n := newNet(t, []string{"a"}, tcfg{capacity: 1 << 30})
	_, err := n.nodes["a"].svc.Init(api.FSTree{Prefix: "/s", Consistency: "linearizable"})
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "eventual or strong") {
		t.Fatalf("init with consistency linearizable: %v", err)
	}
	for _, bad := range []api.FSTree{{Prefix: "rel"}, {Prefix: "/x", Conflict: "merge"}, {Prefix: "/x", Replication: 99}, {Prefix: "/x", Versions: -1}} {
		if _, err := n.nodes["a"].svc.Init(bad); err == nil {
			t.Errorf("Init(%+v) accepted", bad)
		}
	}
}

// TestSnapshotSurvivesDeletion: a snapshot keeps its files' blocks pinned after the files
// are deleted and the runner collected, and restores them elsewhere.
func TestSnapshotSurvivesDeletion(t *testing.T) {
	n := newNet(t, []string{"a", "b"}, tcfg{capacity: 1 << 30})
	a, b := n.nodes["a"], n.nodes["b"]
	// one version per path: a deleted file keeps no older version referencing its blocks
	if _, err := a.svc.Init(api.FSTree{Prefix: "/", Replication: 2, Versions: 1}); err != nil {
		t.Fatal(err)
	}
	put(t, a, "/data/x", "xx", PutOptions{Replication: 2})
	put(t, a, "/data/sub/y", "yyy", PutOptions{Replication: 2})
	snap, err := a.svc.Snapshot("/data", "backup-2026-01-12")
	if err != nil || snap.Files != 2 || snap.Bytes != 5 {
		t.Fatalf("snapshot %+v %v", snap, err)
	}
	if _, err := a.svc.Snapshot("/data", "backup-2026-01-12"); err == nil {
		t.Fatal("a second snapshot of the same name was accepted")
	}
	n.settle(t)
	if _, err := b.svc.Remove("/data", true); err != nil {
		t.Fatal(err)
	}
	n.settle(t)
	a.svc.Repair()
	b.svc.Repair()
	if !a.content.pinned(rawCID([]byte("xx")).String()) {
		t.Fatal("a dropped the pin of a snapshotted file")
	}
	if got := b.svc.Snapshots(); len(got) != 1 || got[0].Name != "backup-2026-01-12" {
		t.Fatalf("b lists snapshots %+v", got)
	}
	if k, err := b.svc.Restore("backup-2026-01-12", "/restored"); err != nil || k != 2 {
		t.Fatalf("restore: %d %v", k, err)
	}
	n.settle(t)
	if got := read(t, a, "/restored/sub/y", 0); got != "yyy" {
		t.Fatalf("restored file reads %q", got)
	}
	// once the snapshot and the restored files are gone, the pins go too
	if err := a.svc.DeleteSnapshot("backup-2026-01-12"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Remove("/restored", true); err != nil {
		t.Fatal(err)
	}
	n.settle(t)
	time.Sleep(2 * time.Millisecond) // GCDelay
	a.svc.Repair()
	if a.content.pinned(rawCID([]byte("xx")).String()) {
		t.Fatal("a kept the pin of a root nothing references")
	}
	if err := a.svc.DeleteSnapshot("backup-2026-01-12"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting a deleted snapshot: %v", err)
	}
}

// TestWatchExactlyOnceInOrder: every node sees every change of a watched prefix once, in
// order, whoever wrote it; anti-entropy resending deltas adds nothing.
func TestWatchExactlyOnceInOrder(t *testing.T) {
	n := newNet(t, []string{"a", "b"}, tcfg{capacity: 1 << 30})
	a, b := n.nodes["a"], n.nodes["b"]
	chA, _, cancelA, err := a.svc.Watch("/w")
	if err != nil {
		t.Fatal(err)
	}
	defer cancelA()
	chB, _, cancelB, _ := b.svc.Watch("/w/")
	defer cancelB()
	put(t, a, "/w/f", "1", PutOptions{Replication: 1})
	n.settle(t)
	put(t, b, "/w/f", "2", PutOptions{Replication: 1})
	n.settle(t)
	put(t, a, "/other", "x", PutOptions{Replication: 1})
	if _, err := a.svc.Remove("/w/f", false); err != nil {
		t.Fatal(err)
	}
	n.settle(t)
	n.settle(t)
	want := "created:/w/f:a:1 modified:/w/f:b:2 deleted:/w/f:a:3"
	for name, ch := range map[string]<-chan api.FSEvent{"a": chA, "b": chB} {
		var got []string
		timeout := time.After(5 * time.Second)
		for len(got) < 3 {
			select {
			case e := <-ch:
				got = append(got, fmt.Sprintf("%s:%s:%s:%d", e.Type, e.Path, e.Node, e.Version))
			case <-timeout:
				t.Fatalf("%s saw %v; want %s", name, got, want)
			}
		}
		select {
		case e := <-ch:
			t.Fatalf("%s saw an extra event %+v", name, e)
		case <-time.After(50 * time.Millisecond):
		}
		if strings.Join(got, " ") != want {
			t.Fatalf("%s saw %v; want %s", name, got, want)
		}
	}
}

// TestDuByNode: du sums a prefix and shows how its files spread over the holders.
func TestDuByNode(t *testing.T) {
	n := newNet(t, []string{"a", "b", "c"}, tcfg{capacity: 1 << 30})
	a := n.nodes["a"]
	for i := 0; i < 12; i++ {
		put(t, a, fmt.Sprintf("/ds/part-%02d", i), fmt.Sprintf("content-%02d", i), PutOptions{Replication: 1})
	}
	n.settle(t)
	du, err := n.nodes["b"].svc.Du("/ds", true)
	if err != nil || du.Files != 12 || du.Bytes != 120 {
		t.Fatalf("du %+v %v", du, err)
	}
	sum := 0
	for _, x := range du.ByNode {
		sum += x.Files
	}
	if sum != 12 || len(du.ByNode) < 2 {
		t.Fatalf("by node %+v; want 12 files spread over more than one node", du.ByNode)
	}
}

// TestSmallClusterTakesWrites: a cluster with fewer nodes than R (a lone node after `make
// run`) takes writes with the copies it can have; the entry keeps R, so repair adds copies
// as nodes join. A file larger than every node's room still fails.
func TestSmallClusterTakesWrites(t *testing.T) {
	n := newNet(t, []string{"a"}, tcfg{capacity: 1 << 20})
	a := n.nodes["a"]
	e := put(t, a, "/cluster/one.txt", "alone", PutOptions{Replication: 3})
	if len(e.Holders) != 1 || len(e.Acked) != 1 || e.Replication != 3 {
		t.Fatalf("put on a 1-node cluster with R=3: %+v; want 1 holder, 1 ack, R kept at 3", e)
	}
	if got := read(t, a, "/cluster/one.txt", 0); got != "alone" {
		t.Fatalf("read %q", got)
	}
	big := strings.Repeat("x", 2<<20)
	if _, err := a.svc.Put(context.Background(), "/cluster/big.bin", strings.NewReader(big), PutOptions{Replication: 3}); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("a file larger than the node's room: %v; want ErrNoRoom", err)
	}
}
