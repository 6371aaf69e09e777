package crdt

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidArgument is returned for empty collection or key names and
	// other arguments a mutator cannot accept.
	ErrInvalidArgument = errors.New("crdt: invalid argument")
	// ErrInsufficientRights classifies a *BoundError with errors.Is.
	ErrInsufficientRights = errors.New("crdt: insufficient bounded-counter rights")
	// ErrOverflow is returned when a counter would overflow uint64.
	ErrOverflow = errors.New("crdt: counter overflow")
	// ErrMalformed classifies every decoding error caused by bad input.
	ErrMalformed = errors.New("crdt: malformed encoding")
	// ErrLimit classifies decoding errors caused by input exceeding Limits.
	ErrLimit = errors.New("crdt: decode limit exceeded")
	// ErrUnsupportedVersion is returned for an encoding format version this
	// code does not understand.
	ErrUnsupportedVersion = errors.New("crdt: unsupported encoding version")
	// ErrNotBatchable is returned by Batch for a full-state delta.
	ErrNotBatchable = errors.New("crdt: full state cannot be batched")
)

// BoundError is returned by a bounded-counter decrement or transfer that
// needs more rights than the local replica holds. errors.Is(err,
// ErrInsufficientRights) matches it.
type BoundError struct {
	Collection, Key string
	Replica         ReplicaID // the local replica
	Requested       uint64    // amount asked for
	Available       uint64    // rights the replica holds
}

func (e *BoundError) Error() string {
	return fmt.Sprintf("crdt: bounded counter %s/%s: replica %s needs %d rights, holds %d",
		e.Collection, e.Key, e.Replica, e.Requested, e.Available)
}

// Is makes errors.Is(err, ErrInsufficientRights) true.
func (e *BoundError) Is(target error) bool { return target == ErrInsufficientRights }
