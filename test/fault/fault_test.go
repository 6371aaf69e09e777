package fault

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

// TestFaultEvents runs a deployment of 20 over 5 nodes through one fault of each kind and
// checks after each that nothing healthy moved, the process count stayed within desired +
// moves, and the count is exact again after the heal. The starts each fault caused are
// logged as figures (issue 11's measure: starts caused by an owner restart and by a heal).
func TestFaultEvents(t *testing.T) {
	requireRoot(t)
	c := newCluster(t, 5)
	c.deploy(c.nodes[0], "web", "default", 20)
	want := map[string]int{"web": 20}
	var results []eventResult
	run := func(name string, inject func(f *faultRun)) {
		var r eventResult
		want, r = c.event(name, want, inject)
		results = append(results, r)
	}

	run("owner kill -9, back after 1s", func(f *faultRun) {
		o := c.owner("web")
		f.affected = []string{o.name}
		o.kill9()
		time.Sleep(time.Second)
		o.start()
	})
	run("owner kill -9, back after 8s (declared dead)", func(f *faultRun) {
		o := c.owner("web")
		f.affected = []string{o.name}
		o.kill9()
		time.Sleep(8 * time.Second)
		o.start()
	})
	run("owner frozen 8s (SIGSTOP, SIGCONT)", func(f *faultRun) {
		o := c.owner("web")
		f.affected = []string{o.name}
		o.signal(syscall.SIGSTOP)
		time.Sleep(8 * time.Second)
		o.signal(syscall.SIGCONT)
	})
	// Partitions last longer than the isolated side's suspicion timeout (8 s at most):
	// both sides judge the other dead and replace what it runs; the heal must keep the
	// originals and remove every replacement.
	run("owner isolated 14s (full partition), healed", func(f *faultRun) {
		o := c.owner("web")
		f.affected = []string{o.name}
		f.sides = [][]string{{o.name}, c.others(o.name)}
		c.fw.isolate(o.port)
		if w := c.partitionSeen(o, 14*time.Second); w != api.StatusDead {
			t.Errorf("the isolated owner %s saw the others at worst %q; want dead: the partition did not take effect", o.name, w)
		}
		c.fw.heal()
	})
	run("node deaf 14s (one-way partition), healed", func(f *faultRun) {
		o := c.owner("web")
		n := c.anyReachable(o.name)
		f.affected = []string{n.name}
		f.sides = [][]string{{n.name}, c.others(n.name)}
		c.fw.deafen(n.port)
		if w := c.partitionSeen(n, 14*time.Second); w != api.StatusDead {
			t.Errorf("the deaf node %s saw the others at worst %q; want dead: the partition did not take effect", n.name, w)
		}
		c.fw.heal()
	})
	run("owner cut from one node 8s (partial partition), healed", func(f *faultRun) {
		o := c.owner("web")
		n := c.anyReachable(o.name)
		f.affected = []string{o.name, n.name}
		c.fw.cut(o.port, n.port)
		time.Sleep(8 * time.Second)
		c.fw.heal()
	})

	logFigures(t, "web", results)
}

// logFigures logs the starts each fault caused (issue 11's measure).
func logFigures(t *testing.T, dep string, results []eventResult) {
	t.Logf("figures for deployment %s (starts: instance processes started; after heal: of those, started once the fault had ended):", dep)
	for _, r := range results {
		t.Logf("  %-52s starts %2d (after heal %d), true replacements allowed %2d, peak %2d, new IDs %2d, stable %.1fs after the heal",
			r.name, r.starts[dep], r.startsAfterHeal[dep], r.allowed[dep], r.peak[dep], r.newIDs, r.toStable.Seconds())
	}
}

// TestRestoreFromOldBackup restarts a deployment's owner from an old backup of its data
// dir (state and managed list) after the cluster moved on (a scale and a quota acknowledged
// since): nothing may move, and nothing acknowledged may be lost.
func TestRestoreFromOldBackup(t *testing.T) {
	requireRoot(t)
	c := newCluster(t, 3)
	c.deploy(c.nodes[0], "web", "default", 6)
	want := map[string]int{"web": 6}
	var results []eventResult
	run := func(name string, inject func(f *faultRun)) {
		var r eventResult
		want, r = c.event(name, want, inject)
		results = append(results, r)
	}
	// A backup of a crashed node (kill -9, then copy) and one of a cleanly stopped node:
	// each is restored after the cluster moved on (a scale and a quota acknowledged since).
	restore := func(clean bool, scaleTo int, quota int) func(f *faultRun) {
		return func(f *faultRun) {
			o := c.owner("web")
			other := c.anyReachable(o.name)
			f.affected = []string{o.name}
			bak := filepath.Join(c.base, fmt.Sprintf("backup-%s-%v", o.name, clean))
			if clean {
				o.stop()
			} else {
				o.kill9()
			}
			o.backup(bak)
			o.start()
			var st api.DeploymentStatus
			c.mustJSON(other, &st, "scale", "web", "--instances", fmt.Sprint(scaleTo))
			var q api.QuotaInfo
			c.mustJSON(other, &q, "quota", "set", "acks", "--max-instances", fmt.Sprint(quota), "--max-ram-gb", "50")
			f.want = map[string]int{"web": scaleTo}
			if _, err := c.waitSteady(f.want, healBound); err != nil {
				t.Fatalf("after scaling to %d: %v", scaleTo, err)
			}
			o.kill9()
			o.restore(bak)
			o.start()
		}
	}
	checkQuota := func(max int) {
		for _, n := range c.nodes {
			var q api.QuotaInfo
			c.mustJSON(n, &q, "quota", "show", "acks")
			if q.MaxInstances != max || q.MaxRAMGB != 50 {
				t.Errorf("node %s after the restore shows quota %+v; want the acknowledged max_instances %d, max_ram_gb 50", n.name, q, max)
			}
		}
	}
	run("owner restored from a backup taken after a crash", restore(false, 8, 100))
	checkQuota(100)
	run("owner restored from a backup taken after a clean stop", restore(true, 10, 120))
	checkQuota(120)
	logFigures(t, "web", results)
}
