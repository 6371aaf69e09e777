package crdt

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"
)

// ReplicaID is the compact identity of a replica (one per node). It is derived
// from a stable identity such as a libp2p peer ID with ReplicaIDFromBytes. The
// zero value is reserved and never names a replica.
type ReplicaID uint64

// ReplicaIDFromBytes returns the first 8 bytes (big endian) of sha256(b), or 1
// when those bytes are all zero, so the result is stable and never 0.
func ReplicaIDFromBytes(b []byte) ReplicaID {
	sum := sha256.Sum256(b)
	id := ReplicaID(binary.BigEndian.Uint64(sum[:8]))
	if id == 0 {
		id = 1
	}
	return id
}

// String formats the ID as 16 hex digits.
func (r ReplicaID) String() string { return fmt.Sprintf("%016x", uint64(r)) }

// Timestamp is a hybrid logical clock timestamp (Kulkarni et al., 2014):
// physical wall time in nanoseconds since the Unix epoch, a logical counter
// that orders events within the same wall time, and the replica that issued it.
// Timestamps are totally ordered by (Wall, Logical, Replica).
type Timestamp struct {
	Wall    int64
	Logical uint32
	Replica ReplicaID
}

// Compare returns -1, 0 or +1 as t is before, equal to or after o in the total
// order (Wall, Logical, Replica).
func (t Timestamp) Compare(o Timestamp) int {
	return cmp.Or(cmp.Compare(t.Wall, o.Wall), cmp.Compare(t.Logical, o.Logical), cmp.Compare(t.Replica, o.Replica))
}

// Less reports whether t orders before o.
func (t Timestamp) Less(o Timestamp) bool { return t.Compare(o) < 0 }

// IsZero reports whether t is the zero timestamp.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// Time returns the wall component as a time.Time.
func (t Timestamp) Time() time.Time { return time.Unix(0, t.Wall) }

func (t Timestamp) String() string {
	return fmt.Sprintf("%d.%d@%s", t.Wall, t.Logical, t.Replica)
}

// DefaultMaxOffset is the default maximum tolerated clock offset: a remote
// timestamp further than this ahead of the local wall clock is rejected
// (CockroachDB uses the same default).
const DefaultMaxOffset = 500 * time.Millisecond

// ClockOffsetError reports a remote timestamp too far ahead of the local wall
// clock. Match it with errors.As.
type ClockOffsetError struct {
	Remote    Timestamp     // the offending timestamp
	LocalWall int64         // local wall clock (ns) when it was observed
	MaxOffset time.Duration // the configured tolerance
}

func (e *ClockOffsetError) Error() string {
	return fmt.Sprintf("crdt: remote timestamp %s is %v ahead of local wall clock (max offset %v)",
		e.Remote, time.Duration(e.Remote.Wall-e.LocalWall), e.MaxOffset)
}

// Clock is a hybrid logical clock. It never goes backwards, even when the
// injected wall clock does, and it stays close to the wall clock. It is safe
// for concurrent use.
type Clock struct {
	id        ReplicaID
	now       func() time.Time
	maxOffset time.Duration

	mu   sync.Mutex // guards last
	last Timestamp  // highest timestamp issued or observed (Replica unused)
}

// NewClock returns a clock for replica id reading wall time from now.
// maxOffset <= 0 selects DefaultMaxOffset.
func NewClock(id ReplicaID, now func() time.Time, maxOffset time.Duration) *Clock {
	if maxOffset <= 0 {
		maxOffset = DefaultMaxOffset
	}
	if now == nil {
		panic("crdt: NewClock needs a wall clock")
	}
	return &Clock{id: id, now: now, maxOffset: maxOffset}
}

// ID returns the replica the clock stamps timestamps with.
func (c *Clock) ID() ReplicaID { return c.id }

// MaxOffset returns the configured maximum offset.
func (c *Clock) MaxOffset() time.Duration { return c.maxOffset }

// Now returns a timestamp strictly greater than every timestamp previously
// returned by Now or passed to a successful Observe. When the logical counter
// would overflow, the wall component is advanced by one nanosecond instead.
func (c *Clock) Now() Timestamp {
	pt := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt > c.last.Wall {
		c.last = Timestamp{Wall: pt}
	} else if c.last.Logical == math.MaxUint32 {
		c.last = Timestamp{Wall: c.last.Wall + 1}
	} else {
		c.last.Logical++
	}
	return Timestamp{Wall: c.last.Wall, Logical: c.last.Logical, Replica: c.id}
}

// Observe merges a remote timestamp into the clock so that later timestamps
// from Now order after it. It returns a *ClockOffsetError, leaving the clock
// unchanged, when remote is more than MaxOffset ahead of the local wall clock.
func (c *Clock) Observe(remote Timestamp) error {
	pt := c.now().UnixNano()
	if err := c.check(remote, pt); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observeLocked(remote)
	return nil
}

func (c *Clock) check(remote Timestamp, pt int64) error {
	limit := int64(math.MaxInt64)
	if pt <= math.MaxInt64-int64(c.maxOffset) {
		limit = pt + int64(c.maxOffset)
	}
	if remote.Wall > limit {
		return &ClockOffsetError{Remote: remote, LocalWall: pt, MaxOffset: c.maxOffset}
	}
	return nil
}

func (c *Clock) observeLocked(remote Timestamp) {
	if remote.Wall > c.last.Wall || (remote.Wall == c.last.Wall && remote.Logical > c.last.Logical) {
		c.last = Timestamp{Wall: remote.Wall, Logical: remote.Logical}
	}
}
