package balance

import (
	"math"
	"time"
)

// Latency histogram with logarithmic buckets (relative error under 4 %) from
// qMin to qMax; two windows rotate so that the estimate covers between one and
// two windows of history. Memory is fixed: 2 * qBuckets counters.
const (
	qMin     = 10 * time.Microsecond
	qMax     = 600 * time.Second
	qGamma   = 1.08
	qBuckets = 240 // > log(qMax/qMin)/log(qGamma) + 1 = 234
)

var qLogGamma = math.Log(qGamma)

type quantile struct {
	window   time.Duration
	curStart time.Time
	cur      [qBuckets]uint32
	prev     [qBuckets]uint32
	nCur     uint64
	nPrev    uint64
}

func qIndex(d time.Duration) int {
	if d <= qMin {
		return 0
	}
	i := int(math.Log(float64(d)/float64(qMin))/qLogGamma) + 1
	return min(i, qBuckets-1)
}

// qUpper is the upper bound of bucket i.
func qUpper(i int) time.Duration {
	if i == 0 {
		return qMin
	}
	return time.Duration(float64(qMin) * math.Pow(qGamma, float64(i)))
}

func (q *quantile) rotate(now time.Time) {
	if q.curStart.IsZero() {
		q.curStart = now
		return
	}
	el := now.Sub(q.curStart)
	if el < q.window {
		return
	}
	if el < 2*q.window {
		q.prev, q.nPrev = q.cur, q.nCur
	} else {
		q.prev, q.nPrev = [qBuckets]uint32{}, 0
	}
	q.cur, q.nCur = [qBuckets]uint32{}, 0
	q.curStart = now
}

func (q *quantile) observe(now time.Time, d time.Duration) {
	q.rotate(now)
	i := qIndex(d)
	if q.cur[i] < math.MaxUint32 {
		q.cur[i]++
		q.nCur++
	}
}

// count is the number of samples the estimate covers.
func (q *quantile) count(now time.Time) uint64 {
	q.rotate(now)
	return q.nCur + q.nPrev
}

// value estimates the p-quantile (0 < p < 1) as the upper bound of the bucket
// holding it; 0 without samples.
func (q *quantile) value(now time.Time, p float64) time.Duration {
	n := q.count(now)
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range q.cur {
		seen += uint64(q.cur[i]) + uint64(q.prev[i])
		if seen >= rank {
			return qUpper(i)
		}
	}
	return qMax
}
