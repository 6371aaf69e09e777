package scheduler

import (
	"sort"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/sched"
)

// Plan is what Deploy(spec) would lead to, computed on a snapshot of this node's view and
// written nowhere (POST /v1/deployments?dry_run=1): the owner's own decision
// (ownDeployment, the pure decider) runs on the snapshot with the new spec, and its writes
// are read back as the plan: new claims are placements, deleted claims are stops, the
// other live claims are kept. The owner decides again when the spec is applied (the random
// strategy and concurrent changes may place differently), and each target admits its
// instance against its own free resources.
func (s *Scheduler) Plan(spec api.DeploymentSpec) (api.DeploymentPlan, error) {
	if err := normalizeSpec(&spec); err != nil {
		return api.DeploymentPlan{}, err
	}
	st := s.snapshot()
	d := DeploymentRecord{Spec: specOf(spec), Generation: st.now.UnixNano()}
	old, exists := st.deps[spec.Name]
	exists = exists && !old.Deleted
	out := api.DeploymentPlan{Name: spec.Name, Namespace: spec.Namespace, Instances: spec.Instances, Exists: exists,
		Owner: sched.Owner(spec.Name, st.members), InstanceList: []api.PlanInstance{}}
	var cls []ClaimRecord
	if exists {
		for _, c := range st.claims {
			if c.Deployment == spec.Name {
				cls = append(cls, c)
			}
		}
	}
	var w schedWrites // the owner's writes; never applied
	out.Message = s.ownDeployment(st, s.buildCluster(st), d, cls, &w)
	deleted := map[string]bool{}
	for _, name := range w.dels[CollClaims] {
		deleted[name] = true
	}
	placed := map[string]bool{}
	for name, b := range w.puts[CollClaims] {
		c, err := decodeRecord[ClaimRecord](b)
		if err != nil {
			continue
		}
		placed[name] = true
		out.InstanceList = append(out.InstanceList, api.PlanInstance{Name: name, Slot: c.Slot, Action: api.PlanPlace,
			Node: c.Node, Replaces: c.Replaces, Preempts: c.Preempts})
	}
	for _, c := range cls {
		switch state, _ := s.claimState(st, c); {
		case deleted[c.Instance] && healthy(state):
			out.InstanceList = append(out.InstanceList, api.PlanInstance{Name: c.Instance, Slot: c.Slot, Action: api.PlanStop, Node: c.Node})
		case !deleted[c.Instance] && !placed[c.Instance] && healthy(state):
			out.InstanceList = append(out.InstanceList, api.PlanInstance{Name: c.Instance, Slot: c.Slot, Action: api.PlanKeep, Node: c.Node, Replaces: c.Replaces})
		}
	}
	// Slots the owner could not place show as unplaced, with the owner's reason.
	have := map[int]bool{}
	for _, x := range out.InstanceList {
		if x.Action != api.PlanStop {
			have[x.Slot] = true
		}
	}
	for slot := range spec.Instances {
		if !have[slot] {
			out.InstanceList = append(out.InstanceList, api.PlanInstance{Name: instanceName(spec.Name, slot), Slot: slot,
				Action: api.PlanUnplaced, Reason: out.Message})
		}
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
