package fault

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The sampler records, every sampleEvery, the deployment instance processes running on the
// machine (found by the test's marker in their command line; their environment names the
// instance and its node), the instance IDs the cluster lists, the claims its deployments
// show (with replaces=, and the owner that wrote them), and checks the scheduler's own
// invariant running <= instances + moves on every answer.

const sampleEvery = 150 * time.Millisecond

// proc is one deployment instance process (the instance's `sh`, PID 1 of its namespace).
type proc struct {
	pid         int
	inst, node  string
	dep         string
	first, last time.Time
}

// scanProcs finds the instance processes whose command line holds marker: the instance's
// own `sh`, not the copies it forks for a moment before they exec a command.
func scanProcs(marker string) []proc {
	var found []proc
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || !bytes.HasPrefix(b, []byte("sh\x00-c\x00")) || !bytes.Contains(b, []byte(marker)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...: comm may hold anything, so parse after the last ')'.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 {
			if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
				parent[pid], _ = strconv.Atoi(f[1])
			}
		}
		p := proc{pid: pid}
		env, _ := os.ReadFile(filepath.Join(dir, "environ"))
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("CONSTELLATION_INSTANCE=")); ok {
				p.inst = string(v)
			}
			if v, ok := bytes.CutPrefix(kv, []byte("CONSTELLATION_NODE=")); ok {
				p.node = string(v)
			}
		}
		p.dep = depOf(p.inst)
		found = append(found, p)
	}
	var out []proc
	for _, p := range found {
		if _, forked := parent[parent[p.pid]]; !forked {
			out = append(out, p)
		}
	}
	return out
}

// depOf is the deployment of an instance name (NAME-INDEX).
func depOf(inst string) string {
	if i := strings.LastIndexByte(inst, '-'); i > 0 {
		return inst[:i]
	}
	return inst
}

// sample is one scan: live processes per deployment and node.
type sample struct {
	at     time.Time
	byNode map[string]map[string]int // dep -> node -> processes
}

// claimSeen is a claim as a deployment's instance list shows it (at: first seen).
type claimSeen struct {
	at                          time.Time
	name, node, replaces, owner string
}

type sampler struct {
	c    *cluster
	stop chan struct{}
	wg   sync.WaitGroup

	mu        sync.Mutex // guards the following fields
	procs     map[int]*proc
	samples   []sample
	ids       map[string]time.Time    // instance ID -> first seen
	claims    map[claimSeen]time.Time // claim (without at) -> first seen
	moves     []movesSeen
	metric    []violation // of running <= instances + moves
	rr        int         // round robin over nodes
	closed    bool
	lastScan  time.Time
	lastQuery time.Time // end of the last query()
}

type movesSeen struct {
	at    time.Time
	dep   string
	moves int
	by    string
}

func newSampler(c *cluster) *sampler {
	s := &sampler{c: c, stop: make(chan struct{}), procs: map[int]*proc{}, ids: map[string]time.Time{},
		claims: map[claimSeen]time.Time{}}
	s.wg.Add(1)
	go s.loop()
	return s
}

func (s *sampler) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
}

func (s *sampler) loop() {
	defer s.wg.Done()
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.scan()
		s.query()
	}
}

// scan records the live instance processes.
func (s *sampler) scan() {
	now := time.Now()
	ps := scanProcs(s.c.marker)
	smp := sample{at: now, byNode: map[string]map[string]int{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		if old, ok := s.procs[p.pid]; ok && old.inst == p.inst {
			old.last = now
		} else {
			p.first, p.last = now, now
			s.procs[p.pid] = &p
		}
		if smp.byNode[p.dep] == nil {
			smp.byNode[p.dep] = map[string]int{}
		}
		smp.byNode[p.dep][p.node]++
	}
	s.samples = append(s.samples, smp)
	s.lastScan = now
}

// query asks the next reachable node for its instance list and deployments.
func (s *sampler) query() {
	var n *node
	s.mu.Lock()
	for i := 0; i < len(s.c.nodes); i++ {
		cand := s.c.nodes[(s.rr+i)%len(s.c.nodes)]
		if cand.reachable() {
			n = cand
			s.rr = (s.rr + i + 1) % len(s.c.nodes)
			break
		}
	}
	s.mu.Unlock()
	if n == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	defer func() {
		s.mu.Lock()
		s.lastQuery = time.Now()
		s.mu.Unlock()
	}()
	insts, err1 := n.client.Instances(ctx)
	deps, err2 := n.client.Deployments(ctx)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err1 == nil {
		for _, in := range insts {
			if _, ok := s.ids[in.ID]; !ok {
				s.ids[in.ID] = now
			}
		}
	}
	if err2 != nil {
		return
	}
	for _, d := range deps {
		if d.Running > d.Instances+d.Moves {
			s.metric = append(s.metric, violation{now, fmt.Sprintf("%s: node %s reports deployment %s running %d > instances %d + moves %d: %+v",
				now.Format("15:04:05.000"), n.name, d.Name, d.Running, d.Instances, d.Moves, d.InstanceList)})
		}
		if d.Moves > 0 {
			s.moves = append(s.moves, movesSeen{at: now, dep: d.Name, moves: d.Moves, by: n.name})
		}
		for _, di := range d.InstanceList {
			k := claimSeen{name: di.Name, node: di.Node, replaces: di.Replaces, owner: d.Owner}
			if _, ok := s.claims[k]; !ok {
				s.claims[k] = now
			}
		}
	}
}

// sync waits until the sampler has scanned and queried once more.
func (s *sampler) sync() {
	from := time.Now()
	for i := 0; i < 100; i++ {
		time.Sleep(sampleEvery / 3)
		s.mu.Lock()
		done := s.lastQuery.After(from)
		s.mu.Unlock()
		if done {
			return
		}
	}
}

// live returns the live processes by instance name (from the latest scan).
func (s *sampler) live() map[string]proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]proc{}
	for _, p := range s.procs {
		if !p.last.Before(s.lastScan) {
			out[p.inst] = *p
		}
	}
	return out
}

// window is what the sampler saw between two instants.
type window struct {
	from, to time.Time
	peak     map[string]int // dep -> highest process count
	peakAt   map[string]time.Time
	started  []proc      // processes first seen in the window
	newIDs   int         // instance IDs first listed in the window
	claims   []claimSeen // claims first seen in the window
	metric   []string
	maxMoves map[string]int
}

// window summarises [from, to].
func (s *sampler) window(from, to time.Time) window {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := window{from: from, to: to, peak: map[string]int{}, peakAt: map[string]time.Time{}, maxMoves: map[string]int{}}
	for _, smp := range s.samples {
		if smp.at.Before(from) || smp.at.After(to) {
			continue
		}
		for dep, byNode := range smp.byNode {
			total := 0
			for _, k := range byNode {
				total += k
			}
			if total > w.peak[dep] {
				w.peak[dep], w.peakAt[dep] = total, smp.at
			}
		}
	}
	for _, p := range s.procs {
		if !p.first.Before(from) && !p.first.After(to) {
			w.started = append(w.started, *p)
		}
	}
	sort.Slice(w.started, func(i, j int) bool { return w.started[i].first.Before(w.started[j].first) })
	for _, at := range s.ids {
		if !at.Before(from) && !at.After(to) {
			w.newIDs++
		}
	}
	for c, at := range s.claims {
		if !at.Before(from) && !at.After(to) {
			c.at = at
			w.claims = append(w.claims, c)
		}
	}
	sort.Slice(w.claims, func(i, j int) bool { return w.claims[i].at.Before(w.claims[j].at) })
	for _, m := range s.metric {
		if !m.at.Before(from) && !m.at.After(to) {
			w.metric = append(w.metric, m.msg)
		}
	}
	for _, m := range s.moves {
		if !m.at.Before(from) && !m.at.After(to) && m.moves > w.maxMoves[m.dep] {
			w.maxMoves[m.dep] = m.moves
		}
	}
	return w
}

// sidePeak is the highest process count of dep on the nodes of side within [from, to].
func (s *sampler) sidePeak(dep string, side []string, from, to time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	peak := 0
	for _, smp := range s.samples {
		if smp.at.Before(from) || smp.at.After(to) {
			continue
		}
		total := 0
		for nd, k := range smp.byNode[dep] {
			if contains(side, nd) {
				total += k
			}
		}
		peak = max(peak, total)
	}
	return peak
}

// violation is a moment the scheduler reported more running instances than desired
// plus moves.
type violation struct {
	at  time.Time
	msg string
}

// describe explains the starts of a window: which instance started where, and the claim
// that asked for it (replaces=, written by which owner).
func (w window) describe() string {
	var b strings.Builder
	for _, p := range w.started {
		fmt.Fprintf(&b, "  %s started %s on %s (pid %d)", p.first.Format("15:04:05.000"), p.inst, p.node, p.pid)
		for _, c := range w.claims {
			if c.name == p.inst && c.node == p.node && c.at.Before(p.first.Add(5*time.Second)) {
				fmt.Fprintf(&b, "; claim seen %s: replaces=%q, owner=%s", c.at.Format("15:04:05.000"), c.replaces, c.owner)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// describeProcs lists every process of a deployment ever seen (for failures).
func (s *sampler) describeProcs(dep string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []*proc
	for _, p := range s.procs {
		if p.dep == dep {
			ps = append(ps, p)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].first.Before(ps[j].first) })
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  %s pid %d on %s: %s .. %s\n", p.inst, p.pid, p.node, p.first.Format("15:04:05.000"), p.last.Format("15:04:05.000"))
	}
	return b.String()
}
