package liveness

import (
	"fmt"
	"time"
)

// State is what this node believes about a member.
type State uint8

const (
	// StateAlive: the member answered recently or refuted every suspicion.
	StateAlive State = iota
	// StateSuspect: a probe failed; the member is dead unless it refutes
	// before the suspicion timeout.
	StateSuspect
	// StateDead: the suspicion timed out (here or at another member).
	StateDead
	// StateLeft: the member announced a graceful leave.
	StateLeft
)

var stateNames = [...]string{"alive", "suspect", "dead", "left"}

// String returns "alive", "suspect", "dead" or "left".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText encodes the state as its name (for JSON).
func (s State) MarshalText() ([]byte, error) {
	if int(s) >= len(stateNames) {
		return nil, fmt.Errorf("liveness: unknown state %d", uint8(s))
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText parses a state name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if string(b) == n {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("liveness: unknown state %q", b)
}

// Member is this node's view of one other member.
type Member struct {
	ID          string `json:"id"`
	State       State  `json:"state"`
	Incarnation uint64 `json:"incarnation"`
	// LastSeen is the last direct (a packet from it) or indirect (an ack
	// relayed by a helper, a newer incarnation gossiped) evidence of life.
	LastSeen time.Time `json:"last_seen"`
	// StateChangedAt is when State last changed (or when the member was added).
	StateChangedAt time.Time `json:"state_changed_at"`
}

// EventKind classifies a state transition.
type EventKind uint8

const (
	// EventAlive: a dead or left member is alive again (restart or heal).
	EventAlive EventKind = iota + 1
	// EventSuspect: an alive member became suspect.
	EventSuspect
	// EventRefuted: a suspect member refuted and is alive again.
	EventRefuted
	// EventDead: the member was declared dead.
	EventDead
	// EventLeft: the member left gracefully.
	EventLeft
)

var eventNames = [...]string{"", "alive", "suspect", "refuted", "dead", "left"}

// String returns the lower-case kind name.
func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one state transition of a member, as seen by this node.
type Event struct {
	Kind        EventKind
	ID          string
	Prev        State
	State       State
	Incarnation uint64
	At          time.Time
}

func eventKind(prev, next State) EventKind {
	switch next {
	case StateAlive:
		if prev == StateSuspect {
			return EventRefuted
		}
		return EventAlive
	case StateSuspect:
		return EventSuspect
	case StateDead:
		return EventDead
	default:
		return EventLeft
	}
}
