package sched

import (
	"maps"
	"slices"
)

// Node is one schedulable node in a snapshot: its capacity, what reservations hold, and (for
// NewCluster and Place only) the instances it runs or has admitted claims for.
type Node struct {
	// ID is the node's name, unique in the cluster. node.name constraints, rendezvous
	// weights and tie-breaks use it.
	ID string
	// Labels are the node's key=value attributes, matched by node.<label> constraints and
	// grouped by Request.SpreadBy.
	Labels map[string]string
	// Capacity is what the node offers to instances.
	Capacity Resources
	// Reserved is held by reservations on this node and is not free for ordinary placements.
	// A placement that consumes a reservation should lower Reserved by the same amount first.
	Reserved Resources
	// MaxInstances caps the number of instances on the node; 0 means no cap.
	MaxInstances int
	// Draining nodes receive no new placements (and are not preemption targets); their
	// instances stay until the caller moves them.
	Draining bool
	// Instances are used by NewCluster and Place only; SetNode ignores them.
	Instances []Instance
}

// Instance is an instance running on, or claimed for, a node.
type Instance struct {
	ID         string // unique in the cluster, e.g. "web-3"
	Deployment string
	Namespace  string
	// Labels are the deployment's labels (service=cache, ...). The implicit labels
	// deployment=<Deployment> and namespace=<Namespace> are added for affinity matching and
	// override labels of the same key.
	Labels    map[string]string
	Priority  int
	Resources Resources
}

// Cluster is an incrementally maintained snapshot of nodes and instances with the per-node
// aggregates placement needs (used resources, instance counts, per-label instance counts), so
// a placement decision costs O(nodes) and not O(instances). Build it once with NewCluster,
// keep it current with SetNode, RemoveNode, AddInstance, RemoveInstance and Apply, and ask it
// for plans with Place.
//
// A Cluster is not safe for concurrent use, not even for concurrent Place calls (they share
// scratch buffers): guard it with the caller's mutex.
type Cluster struct {
	nodes    []*nodeState     // by slot; nil marks a free slot
	freeSlot []int32          // free slots, reused by SetNode
	byID     map[string]int32 // node ID -> slot
	insts    map[string]*instState
	// index counts instances per label: labelKey(k, v) -> slot -> count. The implicit labels
	// deployment and namespace are indexed too, so per-deployment counts are index lookups.
	index map[string]*slotCounts
	// nodeGen changes whenever a node is added, changed or removed; masks caches constraint
	// evaluations per nodeGen.
	nodeGen uint64
	masks   map[string]*constraintMask
	// nsUsage sums instance resources per namespace, for quota checks.
	nsUsage map[string]Usage

	// scratch buffers reused by Place (why Place is not safe for concurrent use).
	posOf []int32
	cands []cand
}

type nodeState struct {
	Node             // Instances is always nil here
	hash   uint64    // nodeHash(ID)
	used   Resources // sum of instance resources
	count  int32     // number of instances
	insts  []*instState
	slot   int32
	labels map[string]string // == Node.Labels (copied)
}

type instState struct {
	Instance          // Labels merged with the implicit labels
	slot     int32    // node slot
	pos      int32    // position in nodeState.insts
	keys     []string // index keys, one per label
	idHash   uint64   // fnv1a64(ID): a cheap tie-break before comparing IDs
}

func labelKey(k, v string) string { return k + "\x00" + v }

// mergedLabels returns the labels with the implicit deployment and namespace labels.
func mergedLabels(labels map[string]string, deployment, namespace string) map[string]string {
	m := make(map[string]string, len(labels)+2)
	maps.Copy(m, labels)
	m["deployment"] = deployment
	m["namespace"] = namespace
	return m
}

// NewCluster builds a Cluster from nodes and their Instances. Node and instance IDs must be
// unique; an error wraps ErrInvalid.
func NewCluster(nodes []Node) (*Cluster, error) {
	c := &Cluster{
		byID:    make(map[string]int32, len(nodes)),
		insts:   make(map[string]*instState),
		index:   make(map[string]*slotCounts),
		masks:   make(map[string]*constraintMask),
		nsUsage: make(map[string]Usage),
	}
	for i := range nodes {
		if err := c.SetNode(nodes[i]); err != nil {
			return nil, err
		}
		for _, in := range nodes[i].Instances {
			if err := c.AddInstance(nodes[i].ID, in); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func validateNode(n *Node) error {
	if n.ID == "" {
		return invalidf("node with empty ID")
	}
	if n.Capacity.negative() || n.Reserved.negative() || n.MaxInstances < 0 {
		return invalidf("node %s: negative capacity, reservation or max instances", n.ID)
	}
	return nil
}

// SetNode adds a node or updates an existing node's labels, capacity, reservations, cap and
// draining flag, keeping its instances. n.Instances is ignored (use AddInstance).
func (c *Cluster) SetNode(n Node) error {
	if err := validateNode(&n); err != nil {
		return err
	}
	n.Instances = nil
	n.Labels = maps.Clone(n.Labels)
	c.nodeGen++
	if slot, ok := c.byID[n.ID]; ok {
		ns := c.nodes[slot]
		ns.Node = n
		ns.labels = n.Labels
		return nil
	}
	var slot int32
	if k := len(c.freeSlot); k > 0 {
		slot = c.freeSlot[k-1]
		c.freeSlot = c.freeSlot[:k-1]
	} else {
		slot = int32(len(c.nodes))
		c.nodes = append(c.nodes, nil)
	}
	c.nodes[slot] = &nodeState{Node: n, hash: nodeHash(n.ID), slot: slot, labels: n.Labels}
	c.byID[n.ID] = slot
	return nil
}

// RemoveNode removes a node (dead or gone) and returns its instances, sorted by ID, so the
// caller can place them again.
func (c *Cluster) RemoveNode(id string) ([]Instance, error) {
	slot, ok := c.byID[id]
	if !ok {
		return nil, errNotFound("node", id)
	}
	ns := c.nodes[slot]
	out := make([]Instance, 0, len(ns.insts))
	for len(ns.insts) > 0 {
		is := ns.insts[len(ns.insts)-1]
		out = append(out, c.removeInst(is))
	}
	slices.SortFunc(out, func(a, b Instance) int { return cmpString(a.ID, b.ID) })
	c.nodes[slot] = nil
	c.nodeGen++
	c.freeSlot = append(c.freeSlot, slot)
	delete(c.byID, id)
	return out, nil
}

// AddInstance records an instance on a node. The node's capacity is not checked: admission
// is the target node's job, and a snapshot may legitimately be overcommitted while views
// converge.
func (c *Cluster) AddInstance(nodeID string, in Instance) error {
	slot, ok := c.byID[nodeID]
	if !ok {
		return errNotFound("node", nodeID)
	}
	if in.ID == "" || in.Deployment == "" {
		return invalidf("instance needs an ID and a deployment")
	}
	if in.Resources.negative() {
		return invalidf("instance %s: negative resources", in.ID)
	}
	if _, dup := c.insts[in.ID]; dup {
		return invalidf("instance %s already placed", in.ID)
	}
	in.Labels = mergedLabels(in.Labels, in.Deployment, in.Namespace)
	c.addInst(slot, in)
	return nil
}

func (c *Cluster) addInst(slot int32, in Instance) {
	ns := c.nodes[slot]
	is := &instState{Instance: in, slot: slot, pos: int32(len(ns.insts)), idHash: fnv1a64(in.ID)}
	is.keys = make([]string, 0, len(in.Labels))
	for k, v := range in.Labels {
		key := labelKey(k, v)
		is.keys = append(is.keys, key)
		m := c.index[key]
		if m == nil {
			m = &slotCounts{pos: make(map[int32]int32, 1)}
			c.index[key] = m
		}
		m.inc(slot)
	}
	ns.insts = append(ns.insts, is)
	ns.used = ns.used.Add(in.Resources)
	ns.count++
	c.nsUsage[in.Namespace] = c.nsUsage[in.Namespace].Add(UsageOf(in.Resources, 1))
	c.insts[in.ID] = is
}

// RemoveInstance forgets an instance and returns it (with its implicit labels merged in).
func (c *Cluster) RemoveInstance(id string) (Instance, error) {
	is, ok := c.insts[id]
	if !ok {
		return Instance{}, errNotFound("instance", id)
	}
	return c.removeInst(is), nil
}

func (c *Cluster) removeInst(is *instState) Instance {
	ns := c.nodes[is.slot]
	last := ns.insts[len(ns.insts)-1]
	ns.insts[is.pos] = last
	last.pos = is.pos
	ns.insts[len(ns.insts)-1] = nil
	ns.insts = ns.insts[:len(ns.insts)-1]
	ns.used = ns.used.Sub(is.Resources)
	ns.count--
	if u := c.nsUsage[is.Namespace].Add(UsageOf(is.Resources, -1)); u.Instances == 0 {
		delete(c.nsUsage, is.Namespace)
	} else {
		c.nsUsage[is.Namespace] = u
	}
	for _, key := range is.keys {
		if c.index[key].dec(is.slot) {
			delete(c.index, key)
		}
	}
	delete(c.insts, is.ID)
	return is.copy()
}

// copy returns the instance with its own labels map (placed instances share theirs).
func (is *instState) copy() Instance {
	in := is.Instance
	in.Labels = maps.Clone(in.Labels)
	return in
}

// Instance returns an instance and the node it is on.
func (c *Cluster) Instance(id string) (Instance, string, bool) {
	is, ok := c.insts[id]
	if !ok {
		return Instance{}, "", false
	}
	return is.copy(), c.nodes[is.slot].ID, true
}

// NodeUsage returns the resources used by a node's instances and their number.
func (c *Cluster) NodeUsage(id string) (used Resources, instances int, ok bool) {
	slot, ok := c.byID[id]
	if !ok {
		return Resources{}, 0, false
	}
	ns := c.nodes[slot]
	return ns.used, int(ns.count), true
}

// Node returns a node's attributes (without Instances).
func (c *Cluster) Node(id string) (Node, bool) {
	slot, ok := c.byID[id]
	if !ok {
		return Node{}, false
	}
	n := c.nodes[slot].Node
	n.Labels = maps.Clone(n.Labels)
	return n, true
}

// NodeIDs returns the node IDs in sorted order.
func (c *Cluster) NodeIDs() []string {
	ids := slices.Collect(maps.Keys(c.byID))
	slices.Sort(ids)
	return ids
}

// NamespaceUsage returns what a namespace's instances use, for CheckQuota.
func (c *Cluster) NamespaceUsage(ns string) Usage { return c.nsUsage[ns] }

// Len returns the number of nodes and instances.
func (c *Cluster) Len() (nodes, instances int) { return len(c.byID), len(c.insts) }

// Apply commits a plan made by Place for req: it removes the evicted instances and records
// the placed ones. It checks the whole plan before changing anything.
func (c *Cluster) Apply(req Request, p Plan) error {
	for _, ev := range p.Evictions {
		if _, ok := c.insts[ev.Instance.ID]; !ok {
			return errNotFound("instance", ev.Instance.ID)
		}
	}
	seen := make(map[string]bool, len(p.Placements))
	for _, pl := range p.Placements {
		if _, ok := c.byID[pl.Node]; !ok {
			return errNotFound("node", pl.Node)
		}
		if _, dup := c.insts[pl.Instance]; (dup && !evicted(p, pl.Instance)) || seen[pl.Instance] || pl.Instance == "" {
			return invalidf("instance %q already placed", pl.Instance)
		}
		seen[pl.Instance] = true
	}
	if req.Deployment == "" || req.Resources.negative() {
		return invalidf("request needs a deployment and non-negative resources")
	}
	for _, ev := range p.Evictions {
		c.removeInst(c.insts[ev.Instance.ID])
	}
	labels := mergedLabels(req.Labels, req.Deployment, req.Namespace)
	for _, pl := range p.Placements {
		c.addInst(c.byID[pl.Node], Instance{
			ID: pl.Instance, Deployment: req.Deployment, Namespace: req.Namespace,
			Labels: labels, Priority: req.Priority, Resources: req.Resources,
		})
	}
	return nil
}

func evicted(p Plan, id string) bool {
	for _, ev := range p.Evictions {
		if ev.Instance.ID == id {
			return true
		}
	}
	return false
}

func errNotFound(what, id string) error {
	return &notFoundError{what, id}
}

type notFoundError struct{ what, id string }

func (e *notFoundError) Error() string        { return "sched: " + e.what + " " + e.id + " not found" }
func (e *notFoundError) Is(target error) bool { return target == ErrNotFound }

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
