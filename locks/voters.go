package locks

import (
	"sort"
	"time"
)

// Member is what the voter planner knows of one cluster member.
type Member struct {
	ID   string // peer ID: the Raft server ID and address
	Zone string // failure domain (label zone, else region)
	// Alive: the member is alive (not suspect, dead or left) in the local view.
	Alive bool
	// Left: the member left the cluster gracefully.
	Left bool
	// Since: alive members, when they started; others, when they were last seen.
	Since time.Time
}

// Server is one server of the Raft configuration.
type Server struct {
	ID    string
	Voter bool
}

// ChangeKind is a membership change of the Raft group.
type ChangeKind int

const (
	NoChange ChangeKind = iota
	AddVoter
	AddNonvoter
	DemoteVoter
	RemoveServer
)

func (k ChangeKind) String() string {
	return [...]string{"none", "add-voter", "add-nonvoter", "demote-voter", "remove-server"}[k]
}

// Change is the one membership change Plan asks for.
type Change struct {
	Kind   ChangeKind
	ID     string
	Reason string
}

// PlanParams tune Plan.
type PlanParams struct {
	// StableAfter: a member alive this long may become a voter.
	StableAfter time.Duration
	// Grace: a server dead (or gone) longer than this is removed.
	Grace time.Duration
	// Voters forces the voter count (0: 3, or 5 with at least 7 stable alive members).
	Voters int
	// Nonvoters bounds the non-voters (standbys that follow the log, so a replacement
	// voter is caught up at once). Other members are plain clients: they forward.
	Nonvoters int
}

// Plan is the voter manager's pure decision: given the current configuration, the
// members as seen by the leader (self) and the time, the one change to make next (one at a
// time: the caller applies it through Raft, waits for it, and asks again).
//
// Order: remove servers dead past the grace (non-voters first; a voter only while the
// others keep a quorum), then bring the voter count to the target with the stable alive
// member in the least represented failure domain, then demote extra voters, then swap a
// voter sharing its domain for a candidate of an unrepresented domain, then keep
// Nonvoters standbys following the log; the other members are plain clients.
func Plan(servers []Server, members []Member, self string, now time.Time, p PlanParams) Change {
	byID := make(map[string]Member, len(members))
	for _, m := range members {
		byID[m.ID] = m
	}
	alive := func(id string) bool { return id == self || byID[id].Alive }
	stable := func(id string) bool {
		if id == self {
			return true
		}
		m, ok := byID[id]
		return ok && m.Alive && !m.Left && now.Sub(m.Since) >= p.StableAfter
	}
	gone := func(id string) bool {
		if id == self {
			return false
		}
		m, ok := byID[id]
		if !ok {
			return true // no record at all: not a member of this cluster
		}
		return m.Left || (!m.Alive && now.Sub(m.Since) > p.Grace)
	}
	inConfig := map[string]bool{}
	var voters, nonvoters []string
	for _, s := range servers {
		inConfig[s.ID] = true
		if s.Voter {
			voters = append(voters, s.ID)
		} else {
			nonvoters = append(nonvoters, s.ID)
		}
	}
	sort.Strings(voters)
	sort.Strings(nonvoters)
	// 1. Remove the gone.
	for _, id := range nonvoters {
		if gone(id) {
			return Change{RemoveServer, id, "non-voter dead past the grace or left"}
		}
	}
	aliveVoters := 0
	for _, id := range voters {
		if alive(id) {
			aliveVoters++
		}
	}
	for _, id := range voters {
		if gone(id) && aliveVoters >= (len(voters)-1)/2+1 {
			return Change{RemoveServer, id, "voter dead past the grace or left"}
		}
	}
	// 2. Target voter count among stable alive members.
	var stableIDs []string
	seen := map[string]bool{}
	for _, m := range members {
		if stable(m.ID) && !seen[m.ID] {
			stableIDs = append(stableIDs, m.ID)
			seen[m.ID] = true
		}
	}
	if !seen[self] {
		stableIDs = append(stableIDs, self)
	}
	sort.Strings(stableIDs)
	target := p.Voters
	if target <= 0 {
		target = 3
		if len(stableIDs) >= 7 {
			target = 5
		}
	}
	// Voters dead within the grace still count: the group waits for them before
	// shrinking.
	waiting := 0
	for _, id := range voters {
		if !stable(id) && !gone(id) {
			waiting++
		}
	}
	target = min(target, len(stableIDs)+waiting)
	if target > 1 && target%2 == 0 {
		target-- // an even count tolerates no more failures than the odd one below it
	}
	zoneVoters := map[string]int{}
	isVoter := map[string]bool{}
	for _, id := range voters {
		isVoter[id] = true
		if alive(id) {
			zoneVoters[byID[id].Zone]++
		}
	}
	candidates := func() []string {
		var out []string
		for _, id := range stableIDs {
			if !isVoter[id] {
				out = append(out, id)
			}
		}
		// Least represented domain first, then servers already following the log, then ID.
		sort.SliceStable(out, func(i, j int) bool {
			zi, zj := zoneVoters[byID[out[i]].Zone], zoneVoters[byID[out[j]].Zone]
			if zi != zj {
				return zi < zj
			}
			if inConfig[out[i]] != inConfig[out[j]] {
				return inConfig[out[i]]
			}
			return out[i] < out[j]
		})
		return out
	}
	if len(voters) < target {
		if c := candidates(); len(c) > 0 {
			return Change{AddVoter, c[0], "voters below target"}
		}
	}
	// 3. Demote extra voters: dead ones first, then the most crowded domain.
	if len(voters) > target && target > 0 {
		demote := ""
		for _, id := range voters {
			if !alive(id) && id != self {
				demote = id
				break
			}
		}
		if demote == "" {
			best := -1
			for _, id := range voters {
				if id == self {
					continue
				}
				if n := zoneVoters[byID[id].Zone]; n > best {
					best, demote = n, id
				}
			}
		}
		left := aliveVoters
		if alive(demote) {
			left--
		}
		if demote != "" && left >= (len(voters)-1)/2+1 {
			return Change{DemoteVoter, demote, "voters above target"}
		}
	}
	// 4. Spread: a voter shares its domain while a candidate's domain has no voter.
	if len(voters) == target {
		crowded := false
		for _, n := range zoneVoters {
			if n > 1 {
				crowded = true
			}
		}
		if c := candidates(); crowded && len(c) > 0 && zoneVoters[byID[c[0]].Zone] == 0 {
			return Change{AddVoter, c[0], "spread voters over failure domains"}
		}
	}
	// 5. Standbys: up to Nonvoters stable members follow the log, from the least
	// represented domains; extra ones leave the group (they stay plain clients).
	if len(nonvoters) > p.Nonvoters {
		return Change{RemoveServer, nonvoters[len(nonvoters)-1], "more standbys than needed"}
	}
	if len(nonvoters) < p.Nonvoters {
		for _, id := range candidates() {
			if !inConfig[id] {
				return Change{AddNonvoter, id, "standby for the voters"}
			}
		}
	}
	return Change{}
}
