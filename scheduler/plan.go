package scheduler

import (
	"encoding/json"
	"sort"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/sched"
)

// Plan is what Deploy(spec) would lead to, computed on a snapshot of this node's view and
// written nowhere (POST /v1/deployments?dry_run=1): the deployment's current instances are
// reconciled with the desired count as its owner does (sched.Reconcile), instances on
// draining nodes get replacements, and the missing ones go through the owner's placement
// (place: quota, constraints, strategy, affinity, preemption) on a cluster view from which
// the stopped ones are gone. The owner decides again when the spec is applied (the
// random strategy and concurrent changes may place differently), and each target admits
// its instance against its own free resources.
func (s *Scheduler) Plan(spec api.DeploymentSpec) (api.DeploymentPlan, error) {
	if err := normalizeSpec(&spec); err != nil {
		return api.DeploymentPlan{}, err
	}
	st := s.snapshot()
	d := DeploymentRecord{DeploymentSpec: spec, Generation: st.now.UnixNano()}
	old, exists := st.deps[spec.Name]
	exists = exists && !old.Deleted
	out := api.DeploymentPlan{Name: spec.Name, Namespace: spec.Namespace, Instances: spec.Instances, Exists: exists,
		Owner: sched.Owner(spec.Name, st.members), InstanceList: []api.PlanInstance{}}
	cl := s.buildCluster(st)

	// The deployment's healthy claims; a replacement under way (its old instance still
	// healthy) stays out of the reconciliation, as in the owner pass.
	states := map[string]string{}
	var cls []ClaimRecord
	if exists {
		for _, c := range st.claims {
			if c.Deployment != spec.Name {
				continue
			}
			if state, _ := s.claimState(st, c); healthy(state) {
				states[c.Instance] = state
				cls = append(cls, c)
			}
		}
	}
	sort.Slice(cls, func(i, j int) bool { return cls[i].Instance < cls[j].Instance })
	replacing := map[string]bool{}
	var running []sched.Running
	for _, c := range cls {
		if _, oldOK := states[c.Replaces]; c.Replaces != "" && oldOK {
			replacing[c.Replaces] = true
			out.InstanceList = append(out.InstanceList, api.PlanInstance{Name: c.Instance, Slot: c.Slot, Action: api.PlanKeep, Node: c.Node, Replaces: c.Replaces})
			continue
		}
		running = append(running, sched.Running{ID: c.Instance, Index: c.Slot, Node: c.Node,
			Created: sched.Stamp{Wall: c.At}, Ready: states[c.Instance] == claimRunning})
	}
	r := sched.Reconcile(d.Name, d.Instances, running)
	for _, x := range r.Stop {
		cl.remove(x.ID)
		out.InstanceList = append(out.InstanceList, api.PlanInstance{Name: x.ID, Slot: st.claims[x.ID].Slot, Action: api.PlanStop, Node: x.Node})
	}
	var todo []placeItem
	for _, k := range r.Keep {
		c := st.claims[k.ID]
		out.InstanceList = append(out.InstanceList, api.PlanInstance{Name: c.Instance, Slot: c.Slot, Action: api.PlanKeep, Node: c.Node})
		if st.drains[c.NodeID] && !replacing[c.Instance] {
			todo = append(todo, placeItem{name: s.newName(st, d.Name), slot: c.Slot, at: c.At, replaces: c.Instance})
		}
	}
	for _, slot := range r.Missing {
		todo = append(todo, placeItem{name: s.newName(st, d.Name), slot: slot, at: st.now.UnixMilli()})
	}
	var w schedWrites // the claims the owner would write; never applied
	if len(todo) > 0 {
		out.Message = s.place(st, cl, d, todo, &w)
	}
	for _, it := range todo {
		pi := api.PlanInstance{Name: it.name, Slot: it.slot, Replaces: it.replaces}
		var c ClaimRecord
		if b, ok := w.puts[CollClaims][it.name]; ok && json.Unmarshal(b, &c) == nil {
			pi.Action, pi.Node, pi.Preempts = api.PlanPlace, c.Node, c.Preempts
		} else {
			pi.Action, pi.Reason = api.PlanUnplaced, out.Message
		}
		out.InstanceList = append(out.InstanceList, pi)
	}
	for _, x := range out.InstanceList {
		switch x.Action {
		case api.PlanPlace:
			out.Place++
		case api.PlanKeep:
			out.Keep++
		case api.PlanStop:
			out.Stop++
		case api.PlanUnplaced:
			out.Unplaced++
		}
	}
	sort.SliceStable(out.InstanceList, func(i, j int) bool {
		a, b := out.InstanceList[i], out.InstanceList[j]
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		return a.Name < b.Name
	})
	return out, nil
}
