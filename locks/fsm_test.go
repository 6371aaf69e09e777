package locks

import (
	"testing"
	"time"
)

func TestFSMLeasesAndFencing(t *testing.T) {
	s := newState()
	sec := int64(time.Second)
	r := s.apply(&command{Op: opAcquire, Now: 0, Path: "/a", Holder: "h1", TTL: sec})
	if r.Err != nil || r.Lease.Token != 1 {
		t.Fatalf("first acquire: %+v", r)
	}
	if r := s.apply(&command{Op: opAcquire, Now: 1, Path: "/a", Holder: "h2", TTL: sec}); r.Err == nil || r.Err.Code != "held" || r.Err.Holder != "h1" || r.Err.Token != 1 {
		t.Fatalf("held: %+v", r)
	}
	// Expiry before the lease ends is refused (a renewal raced it).
	if r := s.apply(&command{Op: opExpire, Now: sec - 1, Path: "/a", Token: 1, Delay: sec}); r.Err == nil {
		t.Fatal("expired before the lease ended")
	}
	// A new leader at 2s: the lease lasts a full TTL from the takeover.
	s.apply(&command{Op: opLeader, Now: 2 * sec})
	if r := s.apply(&command{Op: opExpire, Now: 2*sec + 1, Path: "/a", Token: 1, Delay: sec}); r.Err == nil {
		t.Fatal("a leader change shortened the lease")
	}
	if r := s.apply(&command{Op: opExpire, Now: 3 * sec, Path: "/a", Token: 1, Delay: sec}); r.Err != nil {
		t.Fatalf("expire: %+v", r.Err)
	}
	// Lock-delay after the expiry.
	if r := s.apply(&command{Op: opAcquire, Now: 3*sec + 1, Path: "/a", Holder: "h2", TTL: sec}); r.Err == nil || r.Err.Code != "delay" {
		t.Fatalf("acquire in the lock-delay: %+v", r)
	}
	r = s.apply(&command{Op: opAcquire, Now: 4 * sec, Path: "/a", Holder: "h2", TTL: sec})
	if r.Err != nil || r.Lease.Token != 2 {
		t.Fatalf("acquire after the delay: %+v", r)
	}
	if r := s.apply(&command{Op: opRenew, Now: 4 * sec, Path: "/a", Token: 1}); r.Err == nil || r.Err.Code != "not_held" || r.Err.Holder != "h2" || r.Err.Token != 2 {
		t.Fatalf("renew with the old token: %+v", r)
	}
	// Release frees at once, no delay.
	if r := s.apply(&command{Op: opRelease, Path: "/a", Token: 2}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := s.apply(&command{Op: opAcquire, Now: 4 * sec, Path: "/a", Holder: "h3", TTL: sec}); r.Err != nil || r.Lease.Token != 3 {
		t.Fatalf("after release: %+v", r)
	}
	// CAS: revisions and fencing.
	if r := s.apply(&command{Op: opCAS, Path: "/k", ExpectRev: 0, Value: []byte("1"), Token: 5}); r.Err != nil || r.Rev != 1 {
		t.Fatalf("cas create: %+v", r)
	}
	if r := s.apply(&command{Op: opCAS, Path: "/k", ExpectRev: 1, Value: []byte("2"), Token: 4}); r.Err == nil || r.Err.Code != "stale_token" || r.Err.Current != 5 {
		t.Fatalf("stale token: %+v", r)
	}
	if r := s.apply(&command{Op: opCAS, Path: "/k", ExpectRev: 0, Value: []byte("2")}); r.Err == nil || r.Err.Code != "conflict" || r.Err.Current != 1 {
		t.Fatalf("conflict: %+v", r)
	}
	if r := s.apply(&command{Op: opCAS, Path: "/k", ExpectRev: 1, Value: []byte("2")}); r.Err != nil || r.Rev != 2 {
		t.Fatalf("unfenced cas: %+v", r)
	}
	// Snapshot round trip.
	b, err := encMode.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := decodeState(b)
	if err != nil || s2.LastToken != 3 || s2.Rev != 2 || s2.Locks["/a"].Holder != "h3" || s2.KV["/k"].MaxToken != 5 {
		t.Fatalf("restore: %+v %v", s2, err)
	}
}

func TestPlanVoters(t *testing.T) {
	now := time.Unix(1000, 0)
	up := now.Add(-time.Minute)
	p := PlanParams{StableAfter: 3 * time.Second, Grace: 30 * time.Second, Nonvoters: 2}
	m := func(id, zone string, alive bool, since time.Time) Member {
		return Member{ID: id, Zone: zone, Alive: alive, Since: since}
	}
	members := []Member{m("a", "z1", true, up), m("b", "z1", true, up), m("c", "z2", true, up), m("d", "z3", true, up)}
	// One voter (bootstrap): the next voter comes from an empty domain first.
	ch := Plan([]Server{{"a", true}}, members, "a", now, p)
	if ch.Kind != AddVoter || ch.ID != "c" {
		t.Fatalf("grow: %+v, want add-voter c (zone z2 has no voter)", ch)
	}
	ch = Plan([]Server{{"a", true}, {"c", true}}, members, "a", now, p)
	if ch.Kind != AddVoter || ch.ID != "d" {
		t.Fatalf("grow: %+v, want add-voter d", ch)
	}
	three := []Server{{"a", true}, {"c", true}, {"d", true}}
	if ch = Plan(three, members, "a", now, p); ch.Kind != AddNonvoter || ch.ID != "b" {
		t.Fatalf("follow: %+v, want add-nonvoter b", ch)
	}
	full := append(three, Server{"b", false})
	if ch = Plan(full, members, "a", now, p); ch.Kind != NoChange {
		t.Fatalf("steady: %+v", ch)
	}
	// d dead within the grace: nothing; past it: removed, then b replaces it.
	members[3] = m("d", "z3", false, now.Add(-10*time.Second))
	if ch = Plan(full, members, "a", now, p); ch.Kind != NoChange {
		t.Fatalf("dead within grace: %+v", ch)
	}
	members[3] = m("d", "z3", false, now.Add(-time.Minute))
	if ch = Plan(full, members, "a", now, p); ch.Kind != RemoveServer || ch.ID != "d" {
		t.Fatalf("dead past grace: %+v", ch)
	}
	if ch = Plan([]Server{{"a", true}, {"c", true}, {"b", false}}, members, "a", now, p); ch.Kind != AddVoter || ch.ID != "b" {
		t.Fatalf("replace: %+v", ch)
	}
	// A voter is not removed when the rest would lack a quorum.
	members = []Member{m("a", "z1", true, up), m("b", "z1", false, now.Add(-time.Hour)), m("c", "z2", false, now.Add(-time.Hour))}
	if ch = Plan([]Server{{"a", true}, {"b", true}, {"c", true}}, members, "a", now, p); ch.Kind != NoChange {
		t.Fatalf("no quorum: %+v", ch)
	}
	// Seven stable members: five voters.
	members = nil
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		members = append(members, m(id, "z"+id, true, up))
	}
	ch = Plan([]Server{{"a", true}, {"b", true}, {"c", true}}, members, "a", now, p)
	if ch.Kind != AddVoter {
		t.Fatalf("seven members: %+v, want a fourth voter on the way to five", ch)
	}
	// A member not yet stable does not vote.
	members = []Member{m("a", "z1", true, up), m("b", "z2", true, now.Add(-time.Second))}
	if ch = Plan([]Server{{"a", true}}, members, "a", now, p); ch.Kind != NoChange {
		t.Fatalf("unstable member: %+v", ch)
	}
}
