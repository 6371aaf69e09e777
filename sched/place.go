package sched

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Strategy chooses among feasible nodes.
type Strategy string

// Strategies. The empty Strategy is StrategySpread.
const (
	// StrategySpread evens out the deployment's instances: fewest instances of the deployment
	// in the node's SpreadBy group first, then on the node, then the least loaded node.
	StrategySpread Strategy = "spread"
	// StrategyBinpack fills the fullest feasible node first (highest mean utilisation of CPU,
	// RAM and, when asked for, disk after placement), so work lands on as few nodes as
	// possible.
	StrategyBinpack Strategy = "binpack"
	// StrategyRandom picks uniformly among the best nodes by affinity, drawing from
	// Options.Rand.
	StrategyRandom Strategy = "random"
)

// ParseStrategy accepts spread, binpack, random and the empty string (spread).
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(s) {
	case "", StrategySpread:
		return StrategySpread, nil
	case StrategyBinpack, StrategyRandom:
		return Strategy(s), nil
	}
	return "", invalidf("strategy %q: want spread, binpack or random", s)
}

// Request asks for instances of one deployment to be placed. Every instance gets the same
// resources and rules.
type Request struct {
	Deployment string
	Namespace  string
	// Labels are the deployment's labels, which its instances carry (with the implicit
	// deployment and namespace labels) for other deployments' affinity terms — and for its
	// own: a deployment with anti-affinity on its own service spreads one per node.
	Labels map[string]string
	// Instances are the IDs of the instances to place (the delta), in order. When empty,
	// Count instances named <Deployment>-0 .. <Deployment>-<Count-1> are placed.
	Instances []string
	Count     int
	// Resources is what each instance needs.
	Resources Resources
	Strategy  Strategy
	// SpreadBy is a node label key (e.g. "region"); with StrategySpread, the deployment's
	// instances are first evened out across the label's values (nodes without the label form
	// one more group), then across nodes.
	SpreadBy     string
	Constraints  []Constraint
	Affinity     []Term
	AntiAffinity []Term
	// Priority (0-100) allows preempting instances with priority <= Priority-PreemptionGap.
	Priority int
	// Avoid lists nodes to use only when no other node is feasible, e.g. nodes where the
	// instance failed repeatedly.
	Avoid []string
}

// IDs returns the instance IDs the request places.
func (r *Request) IDs() []string {
	if len(r.Instances) > 0 {
		return r.Instances
	}
	ids := make([]string, r.Count)
	for i := range ids {
		ids[i] = InstanceID(r.Deployment, i)
	}
	return ids
}

// Validate reports whether the request can be placed (errors wrap ErrInvalid).
func (r *Request) Validate() error {
	switch {
	case r.Deployment == "":
		return invalidf("request without a deployment")
	case len(r.Instances) == 0 && r.Count <= 0:
		return invalidf("request for %s places no instances (set Instances or Count)", r.Deployment)
	case len(r.Instances) > 0 && r.Count != 0 && r.Count != len(r.Instances):
		return invalidf("request for %s: Count %d disagrees with %d Instances", r.Deployment, r.Count, len(r.Instances))
	case r.Resources.negative():
		return invalidf("request for %s: negative resources", r.Deployment)
	case r.Priority < MinPriority || r.Priority > MaxPriority:
		return invalidf("request for %s: priority %d outside 0-100", r.Deployment, r.Priority)
	}
	if _, err := ParseStrategy(string(r.Strategy)); err != nil {
		return err
	}
	seen := make(map[string]bool, len(r.Instances))
	for _, id := range r.Instances {
		if id == "" || seen[id] {
			return invalidf("request for %s: empty or duplicate instance ID %q", r.Deployment, id)
		}
		seen[id] = true
	}
	for _, c := range r.Constraints {
		if c.Attr == "" || c.Op < OpEq || c.Op > OpNotIn || len(c.Values) == 0 {
			return invalidf("request for %s: malformed constraint %v (use ParseConstraint)", r.Deployment, c)
		}
	}
	for _, ts := range [][]Term{r.Affinity, r.AntiAffinity} {
		for _, t := range ts {
			if t.Key == "" || t.Op < OpEq || t.Op > OpNotIn || len(t.Values) == 0 ||
				!t.Hard && (t.Weight < 1 || t.Weight > MaxTermWeight) {
				return invalidf("request for %s: malformed affinity term %v (use ParseTerm)", r.Deployment, t)
			}
		}
	}
	return nil
}

// Instance returns the Instance record of one of the request's instances.
func (r *Request) Instance(id string) Instance {
	return Instance{ID: id, Deployment: r.Deployment, Namespace: r.Namespace, Labels: r.Labels,
		Priority: r.Priority, Resources: r.Resources}
}

// Options tune Place.
type Options struct {
	// Rand drives StrategyRandom (math/rand/v2; required for it, unused otherwise). Seed it
	// identically on every node that must compute the same plan, e.g. from the deployment ID
	// and its generation.
	Rand *rand.Rand
	// DisablePreemption turns preemption off.
	DisablePreemption bool
}

// Plan is the outcome of Place: where each placed instance goes, and which instances must be
// evicted first to make room (preemption). The caller evicts, then claims, then places the
// evicted instances again (they are ordinary Instances) where possible.
type Plan struct {
	Deployment string
	Placements []Placement
	Evictions  []Eviction
}

// Placement assigns one instance to a node.
type Placement struct {
	Instance string
	Node     string
	// Preempts lists the IDs of the instances evicted to make room for this one (also in
	// Plan.Evictions).
	Preempts []string
}

// Eviction is an instance preempted by the plan.
type Eviction struct {
	Instance Instance // with its implicit labels merged in
	Node     string
	By       string // the placed instance that needs the room
}

// Place is the pure placement function: it builds a Cluster from nodes (and their
// Instances) and calls Cluster.Place. Callers making many decisions should keep a Cluster.
func Place(req Request, nodes []Node, opts Options) (Plan, error) {
	c, err := NewCluster(nodes)
	if err != nil {
		return Plan{Deployment: req.Deployment}, err
	}
	return c.Place(req, opts)
}

// cand is a node that passed the constraints, with the plan's running view of it.
// The node fields the hot loop needs are copied in so it scans one array instead of chasing
// a pointer per node.
type cand struct {
	n       *nodeState
	capc    Resources // n.Capacity
	free    Resources // capacity - reserved - used, after this plan so far
	hash    uint64    // n.hash
	count   int32     // instances on the node, after this plan so far
	dcount  int32     // instances of the request's deployment on the node
	group   int32     // SpreadBy group index
	maxInst int32     // n.MaxInstances (0: no cap)
	avoid   bool
}

type termState struct {
	t        Term
	anti     bool
	selfHit  bool    // the request's own instances match the term
	counts   []int32 // matching instances per cand
	keys     []string
	negation bool // != or not in: count = instances - matching(keys)
}

// placer holds one Place call's working state.
type placer struct {
	c           *Cluster
	req         *Request
	opts        *Options
	self        map[string]string // request labels merged with the implicit ones
	cands       []cand
	terms       []termState // hard terms first (nHard of them), then soft
	nHard       int
	groups      []int32 // instances of the deployment per SpreadBy group
	kh          uint64  // keyHash(deployment)
	filtered    []int   // nodes ruled out per constraint
	schedulable int
	evicted     map[string]bool
	plan        Plan
}

// Place computes where to put req's instances without changing the Cluster (Apply commits the
// plan). Filtering removes draining nodes, nodes failing a constraint or a hard term, and nodes
// without the free resources (capacity - reserved - used, and MaxInstances); a returned plan
// never uses an infeasible node. Among the feasible nodes the best is the one with, in order:
//
//  1. not in Request.Avoid;
//  2. the highest affinity score: the sum of the weights of the soft affinity terms the node
//     matches minus those of the soft anti-affinity terms it matches (weights only rank terms
//     against each other: any affinity difference outranks the strategy);
//  3. the strategy's preference (see Strategy);
//  4. the highest rendezvous weight of (deployment, node), then the smallest node ID,
//
// so the same inputs give the same plan on every node, whatever order the nodes were added
// in. Instances are placed one at a time, each seeing the previous ones.
//
// When no node fits an instance and the request's priority allows it (and preemption is not
// disabled), Place looks for victims among instances with priority <= req.Priority -
// PreemptionGap on the nodes that pass the filters other than free resources. It first looks
// for a single victim that makes room (the lowest-priority one on each node); failing that it
// builds a victim set per node, lowest priority first (largest first within a priority),
// dropping any that turn out unnecessary. It picks the node with the fewest victims, then the
// lowest highest victim priority, then the lowest sum of victim priorities, then as above.
// Hard terms must still hold once the victims are gone.
//
// When an instance cannot be placed, Place returns the plan for the instances before it and a
// *PlacementError (errors.Is ErrUnsatisfiable or ErrInsufficient) saying why; an invalid
// request returns an error wrapping ErrInvalid, and an empty cluster ErrNoNodes.
func (c *Cluster) Place(req Request, opts Options) (Plan, error) {
	p := placer{c: c, req: &req, opts: &opts, plan: Plan{Deployment: req.Deployment}}
	if err := req.Validate(); err != nil {
		return p.plan, err
	}
	if req.Strategy == StrategyRandom && opts.Rand == nil {
		return p.plan, invalidf("random strategy needs Options.Rand")
	}
	ids := req.IDs()
	p.setup()
	if p.schedulable == 0 {
		return p.plan, ErrNoNodes
	}
	for i, id := range ids {
		j := p.best()
		var victims []*instState
		if j < 0 {
			j, victims = p.preempt()
			if j < 0 {
				return p.plan, p.diagnose(id, len(ids)-i)
			}
		}
		p.commit(j, id, victims)
	}
	return p.plan, nil
}

func (p *placer) setup() {
	c, req := p.c, p.req
	p.self = mergedLabels(req.Labels, req.Deployment, req.Namespace)
	p.kh = keyHash(req.Deployment)
	p.filtered = make([]int, len(req.Constraints))
	if cap(c.posOf) < len(c.nodes) {
		c.posOf = make([]int32, len(c.nodes))
	}
	posOf := c.posOf[:len(c.nodes)]
	cands := c.cands[:0]
	var avoid map[string]bool
	if len(req.Avoid) > 0 {
		avoid = make(map[string]bool, len(req.Avoid))
		for _, a := range req.Avoid {
			avoid[a] = true
		}
	}
	var groupOf map[string]int32
	if req.SpreadBy != "" {
		groupOf = make(map[string]int32)
	}
	masks := make([][]bool, len(req.Constraints))
	for ci := range req.Constraints {
		masks[ci] = c.mask(&req.Constraints[ci])
	}
nodes:
	for slot, n := range c.nodes {
		posOf[slot] = -1
		if n == nil || n.Draining {
			continue
		}
		p.schedulable++
		for ci, m := range masks {
			if !m[slot] {
				p.filtered[ci]++
				continue nodes
			}
		}
		posOf[slot] = int32(len(cands))
		cd := cand{n: n, capc: n.Capacity, free: n.Capacity.Sub(n.Reserved).Sub(n.used), hash: n.hash,
			count: n.count, maxInst: int32(min(n.MaxInstances, math.MaxInt32))}
		if avoid != nil {
			cd.avoid = avoid[n.ID]
		}
		if groupOf != nil {
			// Group indices follow first appearance in slot order, which differs between
			// nodes; only group counts are compared, never indices, so plans still agree.
			v, ok := n.labels[req.SpreadBy]
			gk := "\x00missing"
			if ok {
				gk = v
			}
			g, seen := groupOf[gk]
			if !seen {
				g = int32(len(groupOf))
				groupOf[gk] = g
			}
			cd.group = g
		}
		cands = append(cands, cd)
	}
	c.cands = cands
	p.cands = cands
	// Per-deployment counts from the label index: O(nodes running the deployment).
	if sc := c.index[labelKey("deployment", req.Deployment)]; sc != nil {
		for _, e := range sc.entries {
			if j := posOf[e.slot]; j >= 0 {
				cands[j].dcount = e.n
			}
		}
	}
	if groupOf != nil {
		p.groups = make([]int32, len(groupOf))
		for j := range cands {
			p.groups[cands[j].group] += cands[j].dcount
		}
	}
	// Terms: hard ones first.
	add := func(ts []Term, anti, hard bool) {
		for _, t := range ts {
			if t.Hard != hard {
				continue
			}
			p.terms = append(p.terms, p.termState(t, anti))
		}
	}
	add(req.Affinity, false, true)
	add(req.AntiAffinity, true, true)
	p.nHard = len(p.terms)
	add(req.Affinity, false, false)
	add(req.AntiAffinity, true, false)
}

func (p *placer) termState(t Term, anti bool) termState {
	ts := termState{t: t, anti: anti, selfHit: t.Matches(p.self), negation: t.Op == OpNe || t.Op == OpNotIn}
	ts.counts = make([]int32, len(p.cands))
	posOf := p.c.posOf
	for _, v := range t.Values {
		if sc := p.c.index[labelKey(t.Key, v)]; sc != nil {
			for _, e := range sc.entries {
				if j := posOf[e.slot]; j >= 0 {
					ts.counts[j] += e.n
				}
			}
		}
	}
	if ts.negation {
		for j := range ts.counts {
			ts.counts[j] = p.cands[j].count - ts.counts[j]
		}
	}
	return ts
}

// key is a candidate's rank; higher fields win, compared in order.
type key struct {
	notAvoided bool
	aff        int64
	s1, s2, s3 int64
}

func (a *key) cmp(b *key) int {
	switch {
	case a.notAvoided != b.notAvoided:
		if a.notAvoided {
			return 1
		}
		return -1
	case a.aff != b.aff:
		return sign(a.aff > b.aff)
	case a.s1 != b.s1:
		return sign(a.s1 > b.s1)
	case a.s2 != b.s2:
		return sign(a.s2 > b.s2)
	case a.s3 != b.s3:
		return sign(a.s3 > b.s3)
	}
	return 0
}

func sign(gt bool) int {
	if gt {
		return 1
	}
	return -1
}

// feasible reports whether cand j passes the hard terms and has room for one instance.
func (p *placer) feasible(j int) bool {
	cd := &p.cands[j]
	if !p.req.Resources.Fits(cd.free) {
		return false
	}
	if cd.maxInst > 0 && cd.count >= cd.maxInst {
		return false
	}
	for ti := 0; ti < p.nHard; ti++ {
		ts := &p.terms[ti]
		if (ts.counts[j] > 0) == ts.anti {
			return false
		}
	}
	return true
}

// util is the summed utilisation in parts per million of CPU, RAM and (when requested) disk
// after adding one instance to cand j.
func (p *placer) util(j int) int64 {
	cd := &p.cands[j]
	r := &p.req.Resources
	capc := &cd.capc
	u := frac(capc.CPUMilli-cd.free.CPUMilli+r.CPUMilli, capc.CPUMilli) +
		frac(capc.RAMMB-cd.free.RAMMB+r.RAMMB, capc.RAMMB)
	if r.DiskMB > 0 {
		u += frac(capc.DiskMB-cd.free.DiskMB+r.DiskMB, capc.DiskMB)
	}
	return u
}

func frac(used, capacity int64) int64 {
	if capacity <= 0 {
		return 1_000_000
	}
	return used * 1_000_000 / capacity
}

func (p *placer) rank(j int, rnd uint64) key {
	cd := &p.cands[j]
	k := key{notAvoided: !cd.avoid}
	for ti := p.nHard; ti < len(p.terms); ti++ {
		ts := &p.terms[ti]
		if ts.counts[j] > 0 {
			if ts.anti {
				k.aff -= int64(ts.t.Weight)
			} else {
				k.aff += int64(ts.t.Weight)
			}
		}
	}
	switch p.req.Strategy {
	case StrategyBinpack:
		k.s1 = p.util(j)
	case StrategyRandom:
		k.s1 = int64(mix64(rnd^cd.hash) >> 1)
	default:
		if p.groups != nil {
			k.s1 = -int64(p.groups[cd.group])
		}
		k.s2 = -int64(cd.dcount)
		k.s3 = -p.util(j)
	}
	return k
}

// better reports whether cand j with key kj beats cand b with key kb.
func (p *placer) better(j int, kj key, b int, kb key) bool {
	if d := kj.cmp(&kb); d != 0 {
		return d > 0
	}
	wj, wb := combine(p.kh, p.cands[j].hash), combine(p.kh, p.cands[b].hash)
	if wj != wb {
		return wj > wb
	}
	return p.cands[j].n.ID < p.cands[b].n.ID
}

// best returns the best feasible cand, or -1.
func (p *placer) best() int {
	var rnd uint64
	if p.req.Strategy == StrategyRandom {
		rnd = p.opts.Rand.Uint64()
	}
	best, bestKey := -1, key{}
	for j := range p.cands {
		if !p.feasible(j) {
			continue
		}
		k := p.rank(j, rnd)
		if best < 0 || p.better(j, k, best, bestKey) {
			best, bestKey = j, k
		}
	}
	return best
}

// commit places instance id on cand j after evicting victims.
func (p *placer) commit(j int, id string, victims []*instState) {
	cd := &p.cands[j]
	pl := Placement{Instance: id, Node: cd.n.ID}
	for _, v := range victims {
		p.evict(j, v)
		pl.Preempts = append(pl.Preempts, v.ID)
		p.plan.Evictions = append(p.plan.Evictions, Eviction{Instance: v.copy(), Node: cd.n.ID, By: id})
	}
	cd.free = cd.free.Sub(p.req.Resources)
	cd.count++
	cd.dcount++
	if p.groups != nil {
		p.groups[cd.group]++
	}
	for ti := range p.terms {
		ts := &p.terms[ti]
		if ts.selfHit {
			ts.counts[j]++
		}
	}
	p.plan.Placements = append(p.plan.Placements, pl)
}

func (p *placer) evict(j int, v *instState) {
	if p.evicted == nil {
		p.evicted = make(map[string]bool)
	}
	p.evicted[v.ID] = true
	cd := &p.cands[j]
	cd.free = cd.free.Add(v.Resources)
	cd.count--
	if v.Deployment == p.req.Deployment {
		cd.dcount--
		if p.groups != nil {
			p.groups[cd.group]--
		}
	}
	for ti := range p.terms {
		ts := &p.terms[ti]
		if ts.t.Matches(v.Labels) {
			ts.counts[j]--
		}
	}
}

// preempt finds the best cand and victim set, or -1. A single victim that makes room is
// looked for first (on every node); only when there is none does it build multi-victim sets.
func (p *placer) preempt() (int, []*instState) {
	maxPrio := p.req.Priority - PreemptionGap
	if p.opts.DisablePreemption || maxPrio < MinPriority {
		return -1, nil
	}
	if j, v := p.preemptOne(maxPrio); j >= 0 {
		return j, []*instState{v}
	}
	return p.preemptMany(maxPrio)
}

// victimsOK reports whether cand j, once victims are gone, has room and still satisfies the
// hard terms.
func (p *placer) victimsOK(j int, victims ...*instState) bool {
	cd := &p.cands[j]
	freed := cd.free
	for _, v := range victims {
		freed = freed.Add(v.Resources)
	}
	if !p.req.Resources.Fits(freed) || cd.n.MaxInstances > 0 && int(cd.count)-len(victims) >= cd.n.MaxInstances {
		return false
	}
	for ti := 0; ti < p.nHard; ti++ {
		ts := &p.terms[ti]
		cnt := ts.counts[j]
		for _, v := range victims {
			if ts.t.Matches(v.Labels) {
				cnt--
			}
		}
		if (cnt > 0) == ts.anti {
			return false
		}
	}
	return true
}

// preemptable reports whether cand j could hold the request at all (once emptied).
func (p *placer) preemptable(j int) bool {
	cd := &p.cands[j]
	return p.req.Resources.Fits(cd.n.Capacity.Sub(cd.n.Reserved))
}

type victimChoice struct {
	j          int
	maxP, sumP int
	k          key
}

// beats orders victim choices of the same size: lowest highest priority, lowest sum, then
// the placement order.
func (p *placer) beats(a, b *victimChoice) bool {
	if a.maxP != b.maxP {
		return a.maxP < b.maxP
	}
	if a.sumP != b.sumP {
		return a.sumP < b.sumP
	}
	return p.better(a.j, a.k, b.j, b.k)
}

func (p *placer) preemptOne(maxPrio int) (int, *instState) {
	var best victimChoice
	var bestV *instState
	for j := range p.cands {
		if !p.preemptable(j) {
			continue
		}
		var nodeBest *instState
		for _, in := range p.cands[j].n.insts {
			if in.Priority > maxPrio || p.evicted[in.ID] || !p.victimsOK(j, in) {
				continue
			}
			if nodeBest == nil || in.Priority < nodeBest.Priority || in.Priority == nodeBest.Priority && in.ID < nodeBest.ID {
				nodeBest = in
			}
		}
		if nodeBest == nil {
			continue
		}
		ch := victimChoice{j: j, maxP: nodeBest.Priority, sumP: nodeBest.Priority, k: p.rank(j, 0)}
		if bestV == nil || p.beats(&ch, &best) {
			best, bestV = ch, nodeBest
		}
	}
	if bestV == nil {
		return -1, nil
	}
	return best.j, bestV
}

type victimCand struct {
	in   *instState
	size int64 // how much of the missing resources it frees, in ppm per dimension
}

// victimLess orders victims: lowest priority, then largest, then by ID.
func victimLess(a, b *victimCand) bool {
	if a.in.Priority != b.in.Priority {
		return a.in.Priority < b.in.Priority
	}
	if a.size != b.size {
		return a.size > b.size
	}
	if a.in.idHash != b.in.idHash {
		return a.in.idHash < b.in.idHash
	}
	return a.in.ID < b.in.ID
}

func (p *placer) preemptMany(maxPrio int) (int, []*instState) {
	var (
		best    victimChoice
		bestVs  []*instState
		scratch []victimCand
		r       = p.req.Resources
	)
	for j := range p.cands {
		if !p.preemptable(j) {
			continue
		}
		cd := &p.cands[j]
		need := r.Sub(cd.free)
		scratch = scratch[:0]
		total := cd.free
		for _, in := range cd.n.insts {
			if in.Priority > maxPrio || p.evicted[in.ID] {
				continue
			}
			var size int64
			if need.CPUMilli > 0 {
				size += min(in.Resources.CPUMilli, need.CPUMilli) * 1_000_000 / need.CPUMilli
			}
			if need.RAMMB > 0 {
				size += min(in.Resources.RAMMB, need.RAMMB) * 1_000_000 / need.RAMMB
			}
			if need.DiskMB > 0 {
				size += min(in.Resources.DiskMB, need.DiskMB) * 1_000_000 / need.DiskMB
			}
			scratch = append(scratch, victimCand{in, size})
			total = total.Add(in.Resources)
		}
		if len(scratch) == 0 || !r.Fits(total) {
			continue // even evicting every eligible instance leaves no room
		}
		capped := cd.n.MaxInstances > 0
		covered := func(vs []*instState) bool {
			freed := cd.free
			for _, v := range vs {
				freed = freed.Add(v.Resources)
			}
			return r.Fits(freed) && (!capped || int(cd.count)-len(vs) < cd.n.MaxInstances)
		}
		// Selection rather than a full sort: victim sets are short.
		var vs []*instState
		for len(scratch) > 0 && !covered(vs) {
			m := 0
			for i := 1; i < len(scratch); i++ {
				if victimLess(&scratch[i], &scratch[m]) {
					m = i
				}
			}
			vs = append(vs, scratch[m].in)
			scratch[m] = scratch[len(scratch)-1]
			scratch = scratch[:len(scratch)-1]
		}
		if !covered(vs) {
			continue
		}
		// Drop victims that turned out unnecessary, highest priority first.
		for k := len(vs) - 1; k >= 0 && len(vs) > 1; k-- {
			trial := slices.Delete(slices.Clone(vs), k, k+1)
			if covered(trial) {
				vs = trial
			}
		}
		if !p.victimsOK(j, vs...) {
			continue
		}
		ch := victimChoice{j: j, k: p.rank(j, 0)}
		for _, v := range vs {
			ch.maxP = max(ch.maxP, v.Priority)
			ch.sumP += v.Priority
		}
		if bestVs == nil || len(vs) < len(bestVs) || len(vs) == len(bestVs) && p.beats(&ch, &best) {
			best, bestVs = ch, vs
		}
	}
	if bestVs == nil {
		return -1, nil
	}
	return best.j, bestVs
}

// diagnose explains why instance id (and unplaced-1 more) could not be placed.
func (p *placer) diagnose(id string, unplaced int) error {
	e := &PlacementError{Deployment: p.req.Deployment, Instance: id, Unplaced: unplaced, Nodes: p.schedulable}
	for ci, n := range p.filtered {
		if n > 0 {
			e.Filtered = append(e.Filtered, FilterCount{Expr: p.req.Constraints[ci].String(), Nodes: n})
		}
	}
	termFiltered := make([]int, p.nHard)
	type short struct {
		nodes   int
		largest int64
		node    string
		seen    bool
	}
	var sh [4]short
	r := p.req.Resources
	asked := [4]int64{r.CPUMilli, r.RAMMB, r.DiskMB, 1}
	dims := [4]Dimension{DimCPU, DimRAM, DimDisk, DimInstances}
cands:
	for j := range p.cands {
		cd := &p.cands[j]
		for ti := 0; ti < p.nHard; ti++ {
			ts := &p.terms[ti]
			if (ts.counts[j] > 0) == ts.anti {
				termFiltered[ti]++
				continue cands
			}
		}
		slotsFree := int64(1 << 40)
		if cd.n.MaxInstances > 0 {
			slotsFree = int64(cd.n.MaxInstances) - int64(cd.count)
		}
		free := [4]int64{cd.free.CPUMilli, cd.free.RAMMB, cd.free.DiskMB, slotsFree}
		charged := false
		for d := range free {
			s := &sh[d]
			if d == 3 && cd.n.MaxInstances == 0 {
				continue // uncapped: never short of instance slots
			}
			if !s.seen || free[d] > s.largest || free[d] == s.largest && cd.n.ID < s.node {
				s.largest, s.node, s.seen = free[d], cd.n.ID, true
			}
			if !charged && free[d] < asked[d] {
				s.nodes++
				charged = true
			}
		}
	}
	for ti, n := range termFiltered {
		if n > 0 {
			prefix := "affinity "
			if p.terms[ti].anti {
				prefix = "anti-affinity "
			}
			e.Filtered = append(e.Filtered, FilterCount{Expr: prefix + p.terms[ti].t.String(), Nodes: n})
		}
	}
	for d, s := range sh {
		if s.nodes > 0 {
			e.Shortages = append(e.Shortages, Shortage{Dim: dims[d], Nodes: s.nodes, Asked: asked[d], LargestFree: s.largest, LargestNode: s.node})
		}
	}
	e.PreemptTried = len(e.Shortages) > 0 && !p.opts.DisablePreemption && p.req.Priority-PreemptionGap >= MinPriority
	return e
}
