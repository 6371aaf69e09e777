package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs/lincheck"
	"github.com/rads-lang/constellation/internal/testutil"
)

// strongCluster starts count nodes whose DFS has the lock service, creates the strong
// tree /s (R=2) and waits until a strong write commits (the Raft group elected a leader).
func strongCluster(t *testing.T, count int) ([]*testNode, []*api.Client) {
	t.Helper()
	ns := startCluster(t, count, func(i int, c *Config) {
		c.Liveness = "local"
		c.Locks.StableAfter = 300 * time.Millisecond
		c.DFS.StrongTimeout = 1500 * time.Millisecond
	})
	cls := make([]*api.Client, len(ns))
	for i, n := range ns {
		cls[i] = api.NewClient(n.cfg.DataDir, "", "")
	}
	testutil.WaitFor(t, 20*time.Second, "every node sees every node alive", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	ctx := context.Background()
	if _, err := cls[0].FSInit(ctx, api.FSTree{Prefix: "/s", Consistency: "strong", Replication: 2}); err != nil {
		t.Fatal(err)
	}
	// A partition test needs every node in the lock group: wait for n voters (the planner
	// adds members as they become stable, one change at a time).
	testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("%d voters in the lock group", min(count, 3)), func() (bool, string) {
		st, err := cls[0].LockStatus(ctx)
		return err == nil && len(st.Voters) == min(count, 3), fmt.Sprintf("%+v %v", st, err)
	})
	for i, cl := range cls {
		testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("a strong write through n%d", i), func() (bool, string) {
			e, err := cl.FSPut(ctx, fmt.Sprintf("/s/ready-%d", i), strings.NewReader("ok"), 2, api.FSPutOptions{})
			return err == nil, fmt.Sprintf("%+v %v", e, err)
		})
	}
	return ns, cls
}

func fsRead(ctx context.Context, cl *api.Client, path string) (string, error) {
	body, _, err := cl.FSGet(ctx, path, 0)
	if err != nil {
		return "", err
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	return string(b), err
}

func wantRemote(t *testing.T, err error, status int, code string, parts ...string) {
	t.Helper()
	var re *api.RemoteError
	if !errors.As(err, &re) || re.Status != status || re.Code != code {
		t.Fatalf("answer %v; want %d %s", err, status, code)
	}
	for _, p := range parts {
		if !strings.Contains(re.Error(), p) {
			t.Fatalf("message %q does not name %q", re.Error(), p)
		}
	}
}

// partition cuts the nodes of side a from the others (nil: heal).
func partition(ns []*testNode, a map[int]bool) {
	side := map[peer.ID]bool{}
	for i, n := range ns {
		side[n.ID()] = a[i]
	}
	for i, n := range ns {
		if a == nil {
			n.Host().SetPartition(nil)
			continue
		}
		mine := a[i]
		n.Host().SetPartition(func(p peer.ID) bool { s, ok := side[p]; return ok && s != mine })
	}
}

// TestDFSStrongStaleTokenAndMinority (3 real nodes, Raft lock group over the member-only
// host): a write with a fencing token older than one the path saw gets 409 stale_token
// naming both tokens; the node cut off from the Raft majority answers strong writes and
// reads with 503 unavailable naming the reason while its eventual tree still takes
// writes; the majority keeps writing; after the heal the minority reads the latest.
func TestDFSStrongStaleTokenAndMinority(t *testing.T) {
	ns, cls := strongCluster(t, 3)
	ctx := context.Background()
	if _, err := cls[0].FSPut(ctx, "/s/counter", strings.NewReader("7"), 1, api.FSPutOptions{LockToken: 7}); err != nil {
		t.Fatal(err)
	}
	_, err := cls[1].FSPut(ctx, "/s/counter", strings.NewReader("6"), 1, api.FSPutOptions{LockToken: 6})
	wantRemote(t, err, 409, "stale_token", "token 6", "token 7")
	_, err = cls[2].FSPut(ctx, "/s/counter", strings.NewReader("7"), 1, api.FSPutOptions{LockToken: 5}) // same bytes: the holders refuse
	wantRemote(t, err, 409, "stale_token", "token 5", "token 7")
	_, err = cls[2].FSRemoveFenced(ctx, "/s/counter", false, 6)
	wantRemote(t, err, 409, "stale_token", "6", "7")
	if got, err := fsRead(ctx, cls[2], "/s/counter"); err != nil || got != "7" {
		t.Fatalf("after refused writes: %q %v", got, err)
	}

	partition(ns, map[int]bool{2: true})
	// One bound over the three phases below (each WaitFor has its own 20 s): a shared 20 s
	// context ran out in the third phase when the first two were slow.
	tctx, cancel := context.WithTimeout(ctx, 70*time.Second)
	defer cancel()
	testutil.WaitFor(t, 20*time.Second, "the minority refuses strong writes", func() (bool, string) {
		_, err := cls[2].FSPut(tctx, "/s/counter", strings.NewReader("minority"), 8, api.FSPutOptions{})
		var re *api.RemoteError
		return errors.As(err, &re) && re.Status == 503 && re.Code == "unavailable", fmt.Sprint(err)
	})
	_, err = cls[2].FSPut(tctx, "/s/counter", strings.NewReader("minority"), 8, api.FSPutOptions{})
	wantRemote(t, err, 503, "unavailable", "/s/counter", "locks")
	_, err = fsRead(tctx, cls[2], "/s/counter")
	wantRemote(t, err, 503, "unavailable")
	testutil.WaitFor(t, 20*time.Second, "the minority's eventual write", func() (bool, string) {
		_, err := cls[2].FSPut(tctx, "/e/minority", strings.NewReader("eventual"), 8, api.FSPutOptions{Replication: 1})
		return err == nil, fmt.Sprint(err)
	})
	testutil.WaitFor(t, 20*time.Second, "the majority writes the strong tree", func() (bool, string) {
		_, err := cls[0].FSPut(tctx, "/s/counter", strings.NewReader("8"), 1, api.FSPutOptions{LockToken: 8})
		return err == nil, fmt.Sprint(err)
	})
	partition(ns, nil)
	testutil.WaitFor(t, 30*time.Second, "the healed node reads the majority's write", func() (bool, string) {
		got, err := fsRead(ctx, cls[2], "/s/counter")
		return err == nil && got == "8", fmt.Sprintf("%q %v", got, err)
	})
	testutil.WaitFor(t, 30*time.Second, "the minority's eventual file reaches n0", func() (bool, string) {
		got, err := fsRead(ctx, cls[0], "/e/minority")
		return err == nil && got == "eventual", fmt.Sprintf("%q %v", got, err)
	})
}

// TestDFSStrongLinearizable (3 real nodes): 4 clients read and write one strong file
// through the nodes' APIs while one node is cut off by a partition and healed, then another
// is killed; the recorded history passes porcupine's linearizability check.
func TestDFSStrongLinearizable(t *testing.T) {
	ns, cls := strongCluster(t, 3)
	rec := lincheck.New()
	var stop atomic.Bool
	var killed [3]atomic.Bool // a client of a killed node stops
	var wg sync.WaitGroup
	via := []int{0, 1, 2, 0}
	for ci, ni := range via {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(ci), 11))
			for i := 0; i < 100 && !stop.Load() && !killed[ni].Load(); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
				call := rec.Now()
				if rng.IntN(2) == 0 {
					v := fmt.Sprintf("c%d-%d", ci, i)
					_, err := cls[ni].FSPut(ctx, "/s/reg", strings.NewReader(v), int64(len(v)), api.FSPutOptions{Replication: 1})
					rec.Write(ci, v, call, rec.Now(), err == nil)
				} else {
					got, err := fsRead(ctx, cls[ni], "/s/reg")
					var re *api.RemoteError
					if errors.As(err, &re) && re.Status == 404 {
						got, err = "", nil
					}
					if err == nil {
						rec.Read(ci, got, call, rec.Now())
					}
				}
				cancel()
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	partition(ns, map[int]bool{2: true})
	time.Sleep(1500 * time.Millisecond)
	partition(ns, nil)
	time.Sleep(1000 * time.Millisecond)
	killed[1].Store(true)
	if err := ns[1].Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()
	reads, writes := rec.Len()
	t.Logf("%d reads, %d writes recorded", reads, writes)
	if reads < 20 || writes < 20 {
		t.Fatalf("only %d reads and %d writes succeeded or were recorded", reads, writes)
	}
	if err := rec.Check(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDFSStrongVsEventualWrite4KiB: 4 KiB puts through n0's API, alternately into an
// eventual and a strong tree (R=2 both), in the same run on 3 real nodes in one process
// over loopback (real block stores; the Raft lock group with its bbolt log): p50 and p99
// of each until the put returned. A strong put adds a linearizable read and a Raft commit
// (compare-and-set) to the eventual path.
func BenchmarkDFSStrongVsEventualWrite4KiB(b *testing.B) {
	ns := startCluster(b, 3, func(i int, c *Config) {
		c.Liveness = "local"
		c.Locks.StableAfter = 300 * time.Millisecond
	})
	testutil.WaitFor(b, 20*time.Second, "3 alive", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	cl := api.NewClient(ns[0].cfg.DataDir, "", "")
	ctx := context.Background()
	if _, err := cl.FSInit(ctx, api.FSTree{Prefix: "/s", Consistency: "strong", Replication: 2}); err != nil {
		b.Fatal(err)
	}
	testutil.WaitFor(b, 30*time.Second, "a strong write", func() (bool, string) {
		_, err := cl.FSPut(ctx, "/s/warm", strings.NewReader("x"), 1, api.FSPutOptions{})
		return err == nil, fmt.Sprint(err)
	})
	data := make([]byte, 4096)
	lat := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, tree := range []string{"/e", "/s"} {
			copy(data, fmt.Sprintf("%s%08d", tree, i))
			start := time.Now()
			if _, err := cl.FSPut(ctx, fmt.Sprintf("%s/f%d", tree, i%64), bytes.NewReader(data), int64(len(data)), api.FSPutOptions{Replication: 2}); err != nil {
				b.Fatal(err)
			}
			lat[tree] = append(lat[tree], time.Since(start))
		}
	}
	b.StopTimer()
	for name, tree := range map[string]string{"eventual": "/e", "strong": "/s"} {
		l := lat[tree]
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(l[len(l)*99/100].Microseconds())/1000, name+"-p99-ms")
	}
}
