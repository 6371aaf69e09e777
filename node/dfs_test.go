package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestDFSHolderKilled: a file written on n0 with R=2 stays readable when one holder is
// killed, and is back to 2 alive copies once the grace is over and a third node copied it.
func TestDFSHolderKilled(t *testing.T) {
	ns := startCluster(t, 3, func(i int, c *Config) {
		c.Liveness = "local"
		c.DFS.Grace = 500 * time.Millisecond
		c.DFS.RepairInterval = 200 * time.Millisecond
	})
	ctx := context.Background()
	cls := make([]*api.Client, len(ns))
	for i, n := range ns {
		cls[i] = api.NewClient(n.cfg.DataDir, "", "")
	}
	testutil.WaitFor(t, 20*time.Second, "every node sees 3 alive", func() (bool, string) {
		return allSee(ns, ns, api.StatusAlive)
	})
	data := make([]byte, 1<<20+123)
	rand.Read(data)
	var e api.FSEntry
	testutil.WaitFor(t, 20*time.Second, "a put with 2 holders", func() (bool, string) {
		var err error
		e, err = cls[0].FSPut(ctx, "/cluster/f.bin", bytes.NewReader(data), int64(len(data)), api.FSPutOptions{Replication: 2})
		return err == nil && len(e.Holders) == 2, fmt.Sprintf("%+v %v", e, err)
	})
	// kill a holder other than n0 if there is one (n0 is the API we read through)
	victim := -1
	for i := len(ns) - 1; i >= 0 && victim < 0; i-- {
		for _, h := range e.Holders {
			if h == ns[i].cfg.Node && i != 0 {
				victim = i
			}
		}
	}
	if victim < 0 {
		t.Fatalf("holders %v: both on n0?", e.Holders)
	}
	reader := 0
	for i := range ns {
		if i != victim && i != 0 {
			reader = i
		}
	}
	killed := time.Now()
	if err := ns[victim].Kill(); err != nil {
		t.Fatal(err)
	}
	// The entry may still be on its way to the reader (gossip batches deltas): wait for it
	// to be visible there, then read it with one holder dead.
	read := func(c *api.Client) []byte {
		var b []byte
		testutil.WaitFor(t, 10*time.Second, "the file readable after the kill", func() (bool, string) {
			body, _, err := c.FSGet(ctx, "/cluster/f.bin", 0)
			if err != nil {
				return false, err.Error()
			}
			defer body.Close()
			b, err = io.ReadAll(body)
			return err == nil, fmt.Sprint(err)
		})
		return b
	}
	if !bytes.Equal(read(cls[reader]), data) {
		t.Fatal("the surviving node read other bytes")
	}
	testutil.WaitFor(t, 30*time.Second, "2 alive copies again", func() (bool, string) {
		st, err := cls[0].FSStat(ctx, "/cluster/f.bin")
		if err != nil {
			return false, err.Error()
		}
		alive := 0
		for _, c := range st.Copies {
			if c.Status == api.StatusAlive {
				alive++
			}
		}
		return alive == 2, fmt.Sprintf("copies %+v", st.Copies)
	})
	t.Logf("back to 2 copies %v after the kill (detection + grace 500ms + copy)", time.Since(killed).Round(time.Millisecond))
	if !bytes.Equal(read(cls[0]), data) {
		t.Fatal("n0 read other bytes after the repair")
	}
}
