package dfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs/lincheck"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
)

func strongNet(t *testing.T, names ...string) (*tnet, *fakeConsensus) {
	t.Helper()
	fc := newFakeConsensus()
	n := newNet(t, names, tcfg{capacity: 1 << 30, consensus: fc})
	if _, err := n.nodes[names[0]].svc.Init(api.FSTree{Prefix: "/s", Consistency: Strong, Replication: 2}); err != nil {
		t.Fatal(err)
	}
	n.settle(t)
	return n, fc
}

func readErr(nd *tnode, path string) (string, error) {
	f, _, err := nd.svc.Open(context.Background(), path, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

// wantStatus checks err's API answer.
func wantStatus(t *testing.T, err error, status int, code string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %d %s", status, code)
	}
	st, c, msg := httpapi.Status(err)
	if st != status || c != code {
		t.Fatalf("answer %d %s (%s); want %d %s", st, c, msg, status, code)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Fatalf("message %q does not name %q", msg, p)
		}
	}
}

// TestStrongWriteVisibleEverywhereAtOnce: a write acknowledged on a is read on b and c
// before any namespace delta reached them (the read goes through the lock service), and
// its committed record names the version, CID and token; once the deltas arrive the
// listing and versions agree.
func TestStrongWriteVisibleEverywhereAtOnce(t *testing.T) {
	n, fc := strongNet(t, "a", "b", "c")
	a, b, c := n.nodes["a"], n.nodes["b"], n.nodes["c"]
	n.setCut("a", "c", true) // no delta from a reaches c; c still reaches the holders? not a
	e1 := put(t, a, "/s/f", "one", PutOptions{LockToken: 3})
	e2 := put(t, b, "/s/f", "two", PutOptions{LockToken: 3})
	if e1.Version != 1 || e2.Version != 2 {
		t.Fatalf("versions %d, %d; want 1, 2", e1.Version, e2.Version)
	}
	if got := read(t, b, "/s/f", 0); got != "two" {
		t.Fatalf("b reads %q", got)
	}
	val, rev := fc.record(StrongKey("/s/f"))
	rec, err := decodeStrong("/s/f", val)
	if err != nil || rec.Cur.CID != e2.CID || rec.Token != 3 || rec.Cur.Number != 2 || rev == 0 {
		t.Fatalf("committed record %+v rev %d (%v); want CID %s, token 3, version 2", rec, rev, err, e2.CID)
	}
	st, err := a.svc.Stat(context.Background(), "/s/f")
	if err != nil || st.CID != e2.CID || st.Tree.Consistency != Strong {
		t.Fatalf("a stats %+v (%v) before b's delta; want the committed CID %s", st.FSEntry, err, e2.CID)
	}
	n.setCut("a", "c", false)
	n.settle(t)
	if got := read(t, c, "/s/f", 0); got != "two" {
		t.Fatalf("c reads %q", got)
	}
	ls, _ := c.svc.List("/s", true)
	if len(ls) != 1 || ls[0].CID != e2.CID || ls[0].Version != 2 {
		t.Fatalf("c lists %+v; want version 2 only", ls)
	}
	vs, err := c.svc.Versions("/s/f")
	if err != nil || len(vs) != 2 || vs[1].CID != e1.CID {
		t.Fatalf("versions %+v (%v)", vs, err)
	}
	if got := read(t, c, "/s/f", 1); got != "one" {
		t.Fatalf("version 1 reads %q", got)
	}
}

// TestStrongWithoutLockService: with no lock service a strong tree refuses writes and
// reads with 503 unavailable naming it, stores no entry; an eventual tree works.
func TestStrongWithoutLockService(t *testing.T) {
	n := newNet(t, []string{"a", "b"}, tcfg{capacity: 1 << 30})
	a := n.nodes["a"]
	if _, err := a.svc.Init(api.FSTree{Prefix: "/s", Consistency: Strong}); err != nil {
		t.Fatal(err)
	}
	_, err := a.svc.Put(context.Background(), "/s/f", strings.NewReader("x"), PutOptions{})
	wantStatus(t, err, http.StatusServiceUnavailable, "unavailable", "no lock service", "/s/f")
	_, err = readErr(a, "/s/f")
	wantStatus(t, err, http.StatusServiceUnavailable, "unavailable", "no lock service")
	if ls, _ := a.svc.List("/s", true); len(ls) != 0 {
		t.Fatalf("a refused write left %+v", ls)
	}
	if a.content.UsedBytes() != 0 {
		t.Fatalf("a refused write stored %d bytes", a.content.UsedBytes())
	}
	put(t, a, "/e/f", "eventual", PutOptions{})
}

// TestStrongStaleToken: a write with a token older than one already seen gets 409
// stale_token naming both tokens, whether a holder or the lock service refuses it; the
// committed version stays the newer writer's.
func TestStrongStaleToken(t *testing.T) {
	n, fc := strongNet(t, "a", "b", "c")
	a, b := n.nodes["a"], n.nodes["b"]
	e := put(t, b, "/s/counter", "7", PutOptions{LockToken: 7})
	// the holders of this content saw token 7 for the path: the same bytes with token 6
	_, err := a.svc.Put(context.Background(), "/s/counter", strings.NewReader("7"), PutOptions{LockToken: 6})
	wantStatus(t, err, http.StatusConflict, "stale_token", "token 6", "token 7", "node ")
	// the lock service saw token 9 (another holder wrote meanwhile): new bytes, holders that
	// never saw the path's token, the compare-and-set refuses
	fc.fence(StrongKey("/s/counter"), 9)
	_, err = a.svc.Put(context.Background(), "/s/counter", strings.NewReader("8"), PutOptions{LockToken: 8})
	wantStatus(t, err, http.StatusConflict, "stale_token", "8", "9")
	if got := read(t, a, "/s/counter", 0); got != "7" {
		t.Fatalf("after refused writes the file reads %q; want 7", got)
	}
	if st, _ := a.svc.Stat(context.Background(), "/s/counter"); st.Version != e.Version {
		t.Fatalf("version %d; want %d", st.Version, e.Version)
	}
	_, err = a.svc.RemoveFenced(context.Background(), "/s/counter", false, 8)
	wantStatus(t, err, http.StatusConflict, "stale_token")
	// a newer token passes; an unfenced write is not checked
	put(t, a, "/s/counter", "10", PutOptions{LockToken: 10})
	put(t, a, "/s/counter", "11", PutOptions{})
}

// TestStrongMinorityUnavailable: the node cut from the Raft majority answers 503
// unavailable with the lock service's reason for strong reads and writes, loses nothing,
// and keeps writing eventual trees; the majority side keeps writing strong trees.
func TestStrongMinorityUnavailable(t *testing.T) {
	n, fc := strongNet(t, "a", "b", "c")
	a, c := n.nodes["a"], n.nodes["c"]
	put(t, a, "/s/f", "before", PutOptions{})
	n.setCut("a", "c", true)
	n.setCut("b", "c", true)
	fc.setDown("c", "voters a, b unreachable from c")
	_, err := c.svc.Put(context.Background(), "/s/f", strings.NewReader("minority"), PutOptions{})
	wantStatus(t, err, http.StatusServiceUnavailable, "unavailable", "no quorum", "voters a, b unreachable", "/s/f")
	_, err = readErr(c, "/s/f")
	wantStatus(t, err, http.StatusServiceUnavailable, "unavailable", "no quorum")
	_, err = c.svc.RemoveFenced(context.Background(), "/s/f", false, 0)
	wantStatus(t, err, http.StatusServiceUnavailable, "unavailable")
	_, err = c.svc.MoveFenced(context.Background(), "/s/f", "/s/g", 0)
	wantStatus(t, err, http.StatusServiceUnavailable, "unavailable")
	_, err = c.svc.RevertFenced(context.Background(), "/s/f", 1, 0)
	wantStatus(t, err, http.StatusServiceUnavailable, "unavailable")
	put(t, c, "/e/minority", "eventual works", PutOptions{Replication: 1})
	put(t, a, "/e/majority", "eventual works", PutOptions{Replication: 1})
	put(t, a, "/s/f", "majority", PutOptions{})
	n.setCut("a", "c", false)
	n.setCut("b", "c", false)
	fc.setDown("c", "")
	n.settle(t)
	if got := read(t, c, "/s/f", 0); got != "majority" {
		t.Fatalf("after heal c reads %q", got)
	}
	if got := read(t, a, "/e/minority", 0); got != "eventual works" {
		t.Fatalf("a reads the minority's eventual file as %q", got)
	}
}

// TestStrongRemoveMoveRevert: every mutation of a strong tree goes through the lock
// service.
func TestStrongRemoveMoveRevert(t *testing.T) {
	n, fc := strongNet(t, "a", "b")
	a, b := n.nodes["a"], n.nodes["b"]
	put(t, a, "/s/f", "v1", PutOptions{})
	put(t, a, "/s/f", "v2", PutOptions{})
	if _, err := b.svc.RevertFenced(context.Background(), "/s/f", 1, 0); err != nil {
		t.Fatal(err)
	}
	if got := read(t, a, "/s/f", 0); got != "v1" {
		t.Fatalf("after revert %q", got)
	}
	if k, err := a.svc.MoveFenced(context.Background(), "/s/f", "/s/g", 0); err != nil || k != 1 {
		t.Fatalf("move: %d %v", k, err)
	}
	if _, err := readErr(b, "/s/f"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("moved-away path reads: %v", err)
	}
	if got := read(t, b, "/s/g", 0); got != "v1" {
		t.Fatalf("moved file reads %q", got)
	}
	val, _ := fc.record(StrongKey("/s/f"))
	if rec, err := decodeStrong("/s/f", val); err != nil || !rec.Cur.Deleted {
		t.Fatalf("committed record of the old name %+v (%v); want a deletion", rec, err)
	}
	// a strong file moved into an eventual tree and back
	if _, err := a.svc.MoveFenced(context.Background(), "/s/g", "/e/g", 0); err != nil {
		t.Fatal(err)
	}
	n.settle(t)
	if got := read(t, b, "/e/g", 0); got != "v1" {
		t.Fatalf("eventual copy reads %q", got)
	}
	put(t, a, "/s/d/x", "x", PutOptions{})
	put(t, a, "/s/d/y", "y", PutOptions{})
	n.settle(t)
	if _, err := b.svc.RemoveFenced(context.Background(), "/s/d", false, 0); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("rm of a directory without -r: %v", err)
	}
	if k, err := b.svc.RemoveFenced(context.Background(), "/s/d", true, 0); err != nil || k != 2 {
		t.Fatalf("rm -r: %d %v", k, err)
	}
	if _, err := readErr(a, "/s/d/x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed file reads: %v", err)
	}
	if _, err := a.svc.RemoveFenced(context.Background(), "/s/d/x", false, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second rm: %v", err)
	}
	n.settle(t)
	if ls, _ := b.svc.List("/s", true); len(ls) != 0 {
		t.Fatalf("b lists %v after everything was moved or removed", names(ls))
	}
}

// TestInitConsistencyChange: a tree's consistency changes only while no file is under it.
func TestInitConsistencyChange(t *testing.T) {
	fc := newFakeConsensus()
	n := newNet(t, []string{"a"}, tcfg{capacity: 1 << 30, consensus: fc})
	a := n.nodes["a"]
	put(t, a, "/t/f", "x", PutOptions{Replication: 1})
	_, err := a.svc.Init(api.FSTree{Prefix: "/t", Consistency: Strong})
	wantStatus(t, err, http.StatusConflict, "conflict", "/t/f", "eventual", "fs rm -r /t")
	if tr := a.svc.Trees(); len(tr) != 0 {
		t.Fatalf("refused init left %+v", tr)
	}
	if got := read(t, a, "/t/f", 0); got != "x" {
		t.Fatalf("refused init lost the file: %q", got)
	}
	if _, err := a.svc.Init(api.FSTree{Prefix: "/t/sub", Consistency: Strong}); err != nil {
		t.Fatalf("a strong subtree without files: %v", err)
	}
	put(t, a, "/t/sub/g", "y", PutOptions{Replication: 1})
	if _, err := a.svc.Init(api.FSTree{Prefix: "/t/sub", Consistency: Eventual}); err == nil {
		t.Fatal("a strong tree with a file became eventual")
	}
	if _, err := a.svc.Init(api.FSTree{Prefix: "/t/sub", Consistency: Strong, Versions: 3}); err != nil {
		t.Fatalf("other settings of a strong tree with files: %v", err)
	}
	if _, err := a.svc.RemoveFenced(context.Background(), "/t", true, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Init(api.FSTree{Prefix: "/t", Consistency: Strong}); err != nil {
		t.Fatalf("an emptied tree: %v", err)
	}
}

// TestStrongLinearizableFake: 4 clients on 3 nodes read and write one strong file while
// the lock service refuses calls and loses answers at random (and the namespace deltas are
// cut between two nodes); the history passes porcupine's linearizability check.
func TestStrongLinearizableFake(t *testing.T) {
	n, fc := strongNet(t, "a", "b", "c")
	fc.inject(0.05, 0.05)
	n.setCut("a", "b", true)
	nodes := []*tnode{n.nodes["a"], n.nodes["b"], n.nodes["c"], n.nodes["a"]}
	rec := lincheck.New()
	const opsPerClient = 75
	var wg sync.WaitGroup
	for ci, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(ci), 7))
			for i := range opsPerClient {
				call := rec.Now()
				if rng.IntN(2) == 0 {
					v := fmt.Sprintf("c%d-%d", ci, i)
					_, err := nd.svc.Put(context.Background(), "/s/reg", strings.NewReader(v), PutOptions{Replication: 1})
					rec.Write(ci, v, call, rec.Now(), err == nil)
					continue
				}
				got, err := readErr(nd, "/s/reg")
				if errors.Is(err, ErrNotFound) {
					got, err = "", nil
				}
				if err == nil {
					rec.Read(ci, got, call, rec.Now())
				}
			}
		}()
	}
	wg.Wait()
	reads, writes := rec.Len()
	if reads < 50 || writes < 50 {
		t.Fatalf("only %d reads and %d writes recorded", reads, writes)
	}
	if err := rec.Check(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reads, %d writes linearizable; %d commits", reads, writes, fc.applied)
}

// FuzzDecodeStrong: a committed record from the lock service never panics the decoder,
// and what it accepts names the path and is bounded.
func FuzzDecodeStrong(f *testing.F) {
	f.Add([]byte{0xa1, 0x01, 0x62, 0x2f, 0x61})
	f.Add([]byte{})
	for _, r := range []StrongRecord{{Path: "/a", Cur: Version{CID: "bafy", Size: 3, Number: 2, Rev: 9, Holders: []string{"x"}}, Token: 4}, {Path: "/a", Cur: Version{Deleted: true}}} {
		b, err := state.Encode(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeStrong("/a", b)
		if err != nil {
			return
		}
		if r.Path != "/a" || r.Cur.Size < 0 || len(r.Cur.Holders) > MaxReplication || (!r.Cur.Deleted && r.Cur.CID == "") {
			t.Fatalf("accepted %+v", r)
		}
	})
}
