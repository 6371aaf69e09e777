package balance

import "time"

const ringBuckets = 10

// ring counts two quantities over a sliding window of ringBuckets slots of
// slot each: a slot is dropped as a whole once it is older than the window.
type ring struct {
	slot time.Duration
	ids  [ringBuckets]int64
	a, b [ringBuckets]int64
}

func newRing(window time.Duration) ring {
	s := window / ringBuckets
	if s <= 0 {
		s = 1
	}
	return ring{slot: s}
}

func (r *ring) add(now time.Time, da, db int64) {
	id := now.UnixNano() / int64(r.slot)
	i := int(uint64(id) % ringBuckets)
	if r.ids[i] != id {
		r.ids[i], r.a[i], r.b[i] = id, 0, 0
	}
	r.a[i] += da
	r.b[i] += db
}

func (r *ring) sums(now time.Time) (a, b int64) {
	cur := now.UnixNano() / int64(r.slot)
	for i := range r.ids {
		if d := cur - r.ids[i]; d >= 0 && d < ringBuckets {
			a += r.a[i]
			b += r.b[i]
		}
	}
	return a, b
}

func (r *ring) reset() { *r = ring{slot: r.slot} }
