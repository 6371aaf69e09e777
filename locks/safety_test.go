package locks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fencedCounter is the storage of the acceptance test: it refuses a write whose token is
// lower than the highest it has seen (a fenced counter file) and records the order.
type fencedCounter struct {
	mu         sync.Mutex
	highest    uint64
	accepted   int
	refused    int
	violations []string
}

// write is a holder's write with its token; deadline is the holder's own lease end (its
// request time + TTL). A refusal before that deadline means a newer holder was granted
// while this one still held a valid lease: two holders at once.
func (f *fencedCounter) write(token uint64, holder string, deadline time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if token < f.highest {
		f.refused++
		if now.Before(deadline) {
			f.violations = append(f.violations, fmt.Sprintf("%s (token %d) refused %s before its lease ends: token %d was granted meanwhile",
				holder, token, deadline.Sub(now), f.highest))
		}
		return false
	}
	f.highest = token
	f.accepted++
	return true
}

type grantRec struct {
	token  uint64
	holder string
	at     time.Time
}

type deathRec struct {
	token uint64
	end   time.Time // the dead holder's lease end
}

// trialLog gathers what the workers saw.
type trialLog struct {
	mu     sync.Mutex
	grants []grantRec
	byTok  map[uint64]string
	deaths []deathRec
	dup    []string
}

func (l *trialLog) grant(g grantRec) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.byTok[g.token]; ok && h != g.holder {
		l.dup = append(l.dup, fmt.Sprintf("token %d granted to %s and %s", g.token, h, g.holder))
	}
	l.byTok[g.token] = g.holder
	l.grants = append(l.grants, g)
}

func trialCount(t *testing.T) int {
	n := 1000
	if v := os.Getenv("CONSTELLATION_LOCK_TRIALS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("CONSTELLATION_LOCK_TRIALS=%q: want a positive number of fault trials", v)
		}
	}
	return n
}

// TestLockSafetyTrials is the acceptance test of the lock service: seeded randomized fault
// trials (kills with restarts, freezes, partitions of single nodes and of pairs, aimed at
// the leader half of the time) over 3 to 5 in-process nodes, while clients acquire, write
// to a fenced counter, renew, release, pause past their lease and die holding the lock.
// It checks that no token is granted twice, that the fenced counter never refuses a holder
// still within its lease (two holders at once), and that a lock whose holder died is
// granted again within TTL + lock-delay + an election.
func TestLockSafetyTrials(t *testing.T) {
	total := trialCount(t)
	runs := 5
	if total < runs {
		runs = total
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CONSTELLATION_LOCK_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (CONSTELLATION_LOCK_SEED to replay), %d fault trials", seed, total)
	// The runs go concurrently in goroutines (t.Parallel would hold them to GOMAXPROCS at
	// a time): they mostly sleep through their faults.
	var wg sync.WaitGroup
	for r := 0; r < runs; r++ {
		per := total / runs
		if r < total%runs {
			per++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runTrials(t, fmt.Sprintf("run%d", r), seed+uint64(r), 3+r%3, per)
		}()
	}
	wg.Wait()
}

// runTrials is one cluster's trials; it runs in its own goroutine, so it reports with
// Errorf, never Fatal.
func runTrials(t *testing.T, name string, seed uint64, size, trials int) {
	cfg := testConfig()
	cfg.LockDelay = 100 * time.Millisecond
	const ttl = 300 * time.Millisecond
	c := newCluster(t, size, cfg)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if l := c.leader(time.Second); l != "" && len(c.svc(l).Status().Voters) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: no leader with 3 voters within 20s", name)
			return
		}
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	store := &fencedCounter{}
	log := &trialLog{byTok: map[uint64]string{}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	const path = "/cluster/critical_section"
	for w := 0; w < 3; w++ {
		wrng := rand.New(rand.NewPCG(seed, uint64(100+w)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				holder := fmt.Sprintf("w%d-%d", w, n)
				svc := c.svc(c.ids[wrng.IntN(size)])
				if svc == nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				sent := time.Now()
				l, err := svc.Acquire(actx, path, holder, ttl, true)
				cancel()
				if err != nil {
					continue
				}
				log.grant(grantRec{l.Token, holder, time.Now()})
				deadline := sent.Add(ttl)
				switch p := wrng.IntN(10); {
				case p == 0: // dies holding the lock
					log.mu.Lock()
					log.deaths = append(log.deaths, deathRec{l.Token, deadline})
					log.mu.Unlock()
					continue
				case p == 1: // paused past its lease (SIGSTOP), then writes without checking
					time.Sleep(2 * ttl)
					store.write(l.Token, holder, deadline)
					continue
				}
				for k := 0; k < 1+wrng.IntN(4) && ctx.Err() == nil; k++ {
					if time.Now().After(deadline) || !store.write(l.Token, holder, deadline) {
						break
					}
					time.Sleep(time.Duration(wrng.IntN(int(ttl / 3))))
					rs := time.Now()
					rctx, cancel := context.WithTimeout(ctx, time.Until(deadline))
					_, err := svc.Renew(rctx, path, l.Token)
					cancel()
					if err == nil {
						deadline = rs.Add(ttl)
					} else if IsCode(err, "not_held") {
						break
					}
				}
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				svc.Release(rctx, path, l.Token)
				cancel()
			}
		}()
	}
	// Faults, one at a time; most are short, some outlast an election.
	kinds := map[string]int{}
	var faultAt []time.Time
	for i := 0; i < trials; i++ {
		faultAt = append(faultAt, time.Now())
		target := c.ids[rng.IntN(size)]
		if rng.IntN(2) == 0 {
			if l := c.leader(0); l != "" {
				target = l
			}
		}
		d := time.Duration(5+rng.IntN(25)) * time.Millisecond
		if rng.IntN(10) < 2 {
			d = time.Duration(150+rng.IntN(150)) * time.Millisecond
		}
		switch k := rng.IntN(4); k {
		case 0:
			kinds["kill"]++
			c.kill(target)
			time.Sleep(d)
			c.start(target)
		case 1:
			kinds["freeze"]++
			c.freeze(target, true)
			time.Sleep(d)
			c.freeze(target, false)
		case 2:
			kinds["isolate"]++
			for _, o := range c.ids {
				if o != target {
					c.partition(target, o, true)
				}
			}
			time.Sleep(d)
			for _, o := range c.ids {
				if o != target {
					c.partition(target, o, false)
				}
			}
		case 3:
			kinds["partition-pair"]++
			other := c.ids[(rng.IntN(size-1)+1+indexOf(c.ids, target))%size]
			c.partition(target, other, true)
			time.Sleep(d)
			c.partition(target, other, false)
		}
		time.Sleep(time.Duration(5+rng.IntN(10)) * time.Millisecond)
	}
	// Heal and let the clients go on long enough to see the last deaths re-granted.
	bound := 2*ttl + cfg.LockDelay + 3*time.Second // lease, one takeover extension, delay, elections
	end := time.Now()
	time.Sleep(bound)
	stop()
	wg.Wait()

	store.mu.Lock()
	defer store.mu.Unlock()
	log.mu.Lock()
	defer log.mu.Unlock()
	t.Logf("%s: %d nodes, %d faults %v: %d grants, %d deaths, counter accepted %d and refused %d stale writes",
		name, size, trials, kinds, len(log.grants), len(log.deaths), store.accepted, store.refused)
	for _, v := range store.violations {
		t.Errorf("%s: two holders: %s", name, v)
	}
	for _, d := range log.dup {
		t.Errorf("%s: duplicate grant: %s", name, d)
	}
	if len(log.grants) < trials/20 {
		t.Errorf("%s: only %d grants in %d trials: the service was mostly unavailable", name, len(log.grants), trials)
	}
	for _, d := range log.deaths {
		if d.end.Add(bound).After(end) {
			continue // died too close to the end to judge
		}
		var next *grantRec
		for i := range log.grants {
			g := &log.grants[i]
			if g.token > d.token && (next == nil || g.token < next.token) {
				next = g
			}
		}
		// Each fault near the death may cost an election, and a new leader extends every
		// lease by a TTL (Chubby's rule): the bound grows by that much per fault.
		allowed := bound
		for _, f := range faultAt {
			if f.After(d.end.Add(-ttl)) && f.Before(d.end.Add(allowed)) {
				allowed += ttl + cfg.ElectionTimeout
			}
		}
		if next == nil || next.at.Sub(d.end) > allowed {
			t.Errorf("%s: holder of token %d died (lease end %s) and the lock was not granted again within %s (next %+v)",
				name, d.token, d.end.Format("15:04:05.000"), allowed, next)
		}
	}
}

func indexOf(ids []string, id string) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return 0
}
