package p2p

import "errors"

// Sentinel errors; match them with errors.Is.
var (
	// ErrConfig wraps an invalid Config value.
	ErrConfig = errors.New("p2p: invalid config")
	// ErrBadAddress wraps a malformed bind or join address.
	ErrBadAddress = errors.New("p2p: bad address")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("p2p: host closed")
	// ErrNotAdmitted means the peer has not passed (or failed) cluster admission.
	ErrNotAdmitted = errors.New("p2p: peer not admitted")
	// ErrAdmission means the admission exchange failed (wrong key, other cluster, ...).
	ErrAdmission = errors.New("p2p: cluster admission failed")
	// ErrTooLarge means a frame or message exceeds its configured limit.
	ErrTooLarge = errors.New("p2p: message too large")
	// ErrMalformed means a peer sent bytes that do not decode.
	ErrMalformed = errors.New("p2p: malformed message")
)
