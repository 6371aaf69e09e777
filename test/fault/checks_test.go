package fault

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rads-lang/constellation/api"
)

// healBound is how long after a fault ends the cluster must be exactly at the desired
// count again: detection (about 3 s), a node's catch-up after a restart (membership's
// settling window, 10 s at most), anti-entropy rounds and instance stops, with room for a
// loaded 2-core machine.
const healBound = 30 * time.Second

// waitSteady waits until the cluster is exactly at want: every node runs and sees every
// node alive; the deployment instance processes are exactly want per deployment; every
// node reports each deployment with running == instances == want, no pending claim and no
// move in progress, and each listed instance running on the node its process runs on.
// It returns the live processes by instance name.
func (c *cluster) waitSteady(want map[string]int, timeout time.Duration) (map[string]proc, error) {
	deadline := time.Now().Add(timeout)
	for {
		live, why := c.steady(want)
		if why == "" {
			return live, nil
		}
		if time.Now().After(deadline) {
			return live, fmt.Errorf("not steady after %v: %s", timeout, why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// steady checks the conditions of waitSteady once; why is empty when they hold.
func (c *cluster) steady(want map[string]int) (map[string]proc, string) {
	live := map[string]proc{}
	count := map[string]int{}
	for _, p := range scanProcs(c.marker) {
		live[p.inst] = p
		count[p.dep]++
	}
	for dep, k := range count {
		if k != want[dep] {
			return live, fmt.Sprintf("%d processes of deployment %s; want %d", k, dep, want[dep])
		}
	}
	for dep, k := range want {
		if count[dep] != k {
			return live, fmt.Sprintf("%d processes of deployment %s; want %d", count[dep], dep, k)
		}
	}
	for _, n := range c.nodes {
		if !n.reachable() {
			return live, fmt.Sprintf("node %s is down or frozen", n.name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ns, err := n.client.Nodes(ctx)
		var deps []api.DeploymentStatus
		if err == nil {
			deps, err = n.client.Deployments(ctx)
		}
		cancel()
		if err != nil {
			return live, fmt.Sprintf("node %s: %v", n.name, err)
		}
		for _, x := range ns {
			if x.Status != api.StatusAlive {
				return live, fmt.Sprintf("node %s sees %s", n.name, nodeStatuses(ns))
			}
		}
		if len(ns) != len(c.nodes) {
			return live, fmt.Sprintf("node %s knows %d nodes: %s", n.name, len(ns), nodeStatuses(ns))
		}
		seen := map[string]bool{}
		for _, d := range deps {
			k, ok := want[d.Name]
			if !ok {
				return live, fmt.Sprintf("node %s reports deployment %s, not wanted", n.name, d.Name)
			}
			seen[d.Name] = true
			if d.Instances != k || d.Running != k || d.Pending != 0 || d.Moves != 0 || len(d.InstanceList) != k {
				return live, fmt.Sprintf("node %s reports %s: instances %d running %d pending %d moves %d claims %d; want %d",
					n.name, d.Name, d.Instances, d.Running, d.Pending, d.Moves, len(d.InstanceList), k)
			}
			for _, di := range d.InstanceList {
				p, ok := live[di.Name]
				if di.Status != api.InstanceRunning || !ok || p.node != di.Node {
					return live, fmt.Sprintf("node %s reports %s %s on %s; its process: %+v", n.name, di.Name, di.Status, di.Node, p)
				}
			}
		}
		for dep := range want {
			if !seen[dep] {
				return live, fmt.Sprintf("node %s does not report deployment %s", n.name, dep)
			}
		}
	}
	return live, ""
}

// faultRun is what a fault tells the checks.
type faultRun struct {
	// affected are the nodes whose instances others may legitimately replace (killed,
	// frozen, partitioned away, restored).
	affected []string
	// sides are a partition's sides: each may replace what runs outside it, and no side
	// may run more than the desired count.
	sides [][]string
	// healed is when the fault ended (the node is back, the rules are gone).
	healed time.Time
	// want is the desired count after the fault when it changed it (nil: unchanged).
	want map[string]int
}

// eventResult is the record of one fault.
type eventResult struct {
	name   string
	starts map[string]int // instance processes started, per deployment
	// startsAfterHeal are the starts once the fault had ended: churn the heal caused.
	startsAfterHeal map[string]int
	allowed         map[string]int // true replacements the fault allows, per deployment
	peak            map[string]int
	newIDs          int
	toStable        time.Duration // from heal to exactly the desired count
}

// event runs one fault from a steady cluster at want and checks the scheduler's promises:
//   - placement is sticky: every instance running before runs after, as the same process
//     (on a node that stayed reachable this is "a healthy instance is never replaced"; on
//     an affected node it is "a replacement goes when the original is back");
//   - the instance processes never exceed desired + the moves the fault allows (the
//     instances on lost nodes; for a partition what runs outside each side), and no side of
//     a partition runs more than the desired count;
//   - starts are at most those moves (plus the instances the desired count grew by);
//   - the scheduler's own invariant running <= instances + moves holds in every answer;
//   - after the heal the count is exactly the desired one within healBound.
//
// It returns the desired counts after the fault.
func (c *cluster) event(name string, want map[string]int, inject func(f *faultRun)) (map[string]int, eventResult) {
	t := c.t
	t.Helper()
	before, err := c.waitSteady(want, 60*time.Second)
	if err != nil {
		t.Fatalf("%s: cluster not steady before the fault: %v\n%s", name, err, c.describeAll(want))
	}
	c.smp.sync() // every process and ID of the steady state is recorded before t0
	t0 := time.Now()
	t.Logf("%s: fault at %s", name, t0.Format("15:04:05.000"))
	var f faultRun
	inject(&f)
	if f.healed.IsZero() {
		f.healed = time.Now()
	}
	after := want
	if f.want != nil {
		after = f.want
	}
	live, err := c.waitSteady(after, healBound)
	stable := time.Now()
	time.Sleep(2 * sampleEvery) // the sampler's last scans
	w := c.smp.window(t0, time.Now())
	res := eventResult{name: name, starts: map[string]int{}, startsAfterHeal: map[string]int{}, allowed: map[string]int{}, peak: w.peak,
		newIDs: w.newIDs, toStable: stable.Sub(f.healed)}
	if err != nil {
		t.Errorf("%s: after the heal (%s): %v\nstarts:\n%s", name, f.healed.Format("15:04:05.000"), err, w.describe())
		if live, err = c.waitSteady(after, 30*time.Second); err != nil {
			for _, m := range c.smp.window(t0, time.Now()).metric {
				t.Errorf("%s: invariant broken: %s", name, m)
			}
			t.Fatalf("%s: still not steady 30s later: %v\n%s", name, err, c.describeAll(after))
		}
	}
	// Allowed moves, per deployment, from where the instances ran before.
	onNode := map[string]map[string]int{} // dep -> node -> instances before
	for _, p := range before {
		if onNode[p.dep] == nil {
			onNode[p.dep] = map[string]int{}
		}
		onNode[p.dep][p.node]++
	}
	for dep, k := range want {
		a := 0
		if f.sides != nil {
			for _, side := range f.sides {
				for nd, x := range onNode[dep] {
					if !contains(side, nd) {
						a += x
					}
				}
			}
		} else {
			for _, nd := range f.affected {
				a += onNode[dep][nd]
			}
		}
		res.allowed[dep] = a
		grow := max(0, after[dep]-k)
		top := max(k, after[dep])
		for _, p := range w.started {
			if p.dep == dep {
				res.starts[dep]++
				if p.first.After(f.healed) {
					res.startsAfterHeal[dep]++
				}
			}
		}
		if res.starts[dep] > a+grow {
			t.Errorf("%s: %d instance starts of %s; at most %d allowed (%d true replacements for the affected nodes %v + %d grown):\n%s",
				name, res.starts[dep], dep, a+grow, a, f.affected, grow, w.describe())
		}
		if w.peak[dep] > top+a {
			t.Errorf("%s: peak of %d processes of %s at %s; at most desired %d + moves %d:\n%s",
				name, w.peak[dep], dep, w.peakAt[dep].Format("15:04:05.000"), top, a, c.smp.describeProcs(dep))
		}
		for _, side := range f.sides {
			if sp := c.smp.sidePeak(dep, side, t0, f.healed); sp > top {
				t.Errorf("%s: the side %v of the partition ran %d processes of %s; at most the desired %d:\n%s",
					name, side, sp, dep, top, c.smp.describeProcs(dep))
			}
		}
	}
	// Stickiness.
	var moved []string
	for inst, p := range before {
		q, ok := live[inst]
		if ok && q.pid == p.pid {
			continue
		}
		where := "a node that stayed reachable"
		if contains(f.affected, p.node) {
			where = "an affected node"
		}
		now := "gone"
		if ok {
			now = fmt.Sprintf("running again as pid %d on %s", q.pid, q.node)
		}
		moved = append(moved, fmt.Sprintf("%s (pid %d on %s, %s): %s", inst, p.pid, p.node, where, now))
	}
	if len(moved) > 0 {
		sort.Strings(moved)
		t.Errorf("%s: placement not sticky: instances replaced:\n  %s\nstarts:\n%s", name, strings.Join(moved, "\n  "), w.describe())
	}
	for _, m := range w.metric {
		t.Errorf("%s: invariant broken: %s", name, m)
	}
	var fig []string
	for _, dep := range sortedKeys(want) {
		fig = append(fig, fmt.Sprintf("%s: desired %d, starts %d (true replacements allowed %d), peak %d processes, moves reported up to %d",
			dep, after[dep], res.starts[dep], res.allowed[dep], w.peak[dep], w.maxMoves[dep]))
	}
	t.Logf("%s: stable %.1fs after the heal; %s", name, res.toStable.Seconds(), strings.Join(fig, "; "))
	if len(w.started) > 0 {
		t.Logf("%s: starts:\n%s", name, w.describe())
	}
	return after, res
}

// describeAll is the cluster's view for a failure message: processes and each node's
// deployments.
func (c *cluster) describeAll(want map[string]int) string {
	var b strings.Builder
	for dep := range want {
		fmt.Fprintf(&b, "processes of %s:\n%s", dep, c.smp.describeProcs(dep))
	}
	for _, n := range c.nodes {
		if !n.reachable() {
			fmt.Fprintf(&b, "%s: not reachable\n", n.name)
			continue
		}
		out, err := c.cli(n, "deployments", "--json")
		fmt.Fprintf(&b, "%s deployments: %s %v\n", n.name, out, err)
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// partitionSeen polls node n during d and reports the worst status it gave another node
// ("dead", "suspect", or "" when it saw every node alive: the partition did not take effect).
func (c *cluster) partitionSeen(n *node, d time.Duration) string {
	worst := ""
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ns, err := n.client.Nodes(ctx)
		cancel()
		if err == nil {
			for _, x := range ns {
				if x.Name != n.name && x.Status != api.StatusAlive && worst != api.StatusDead {
					worst = x.Status
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return worst
}

// others lists the names of the nodes other than those given.
func (c *cluster) others(not ...string) []string {
	var out []string
	for _, n := range c.nodes {
		if !contains(not, n.name) {
			out = append(out, n.name)
		}
	}
	return out
}
