package api

import "time"

// LockAcquireRequest is POST /v1/locks/acquire. TTL and Wait are Go durations ("10s").
// Without Wait a held lock answers 409 "held"; with it the node retries until the lock is
// free or Wait ran out (408 "timeout").
type LockAcquireRequest struct {
	Path   string `json:"path"`
	Holder string `json:"holder"`
	TTL    string `json:"ttl"`
	Wait   string `json:"wait,omitempty"`
}

// LockRequest is POST /v1/locks/renew and /v1/locks/release: the lock and the fencing
// token its acquire returned.
type LockRequest struct {
	Path  string `json:"path"`
	Token uint64 `json:"token"`
}

// Lock is a granted lock: holder, fencing token (cluster-wide, strictly increasing) and
// lease (Expires is the leader's clock; a holder counts its TTL from its own request).
type Lock struct {
	Path    string    `json:"path"`
	Holder  string    `json:"holder"`
	Token   uint64    `json:"token"`
	TTLMs   int64     `json:"ttl_ms"`
	Granted time.Time `json:"granted"`
	Expires time.Time `json:"expires"`
}

// LockStatus is GET /v1/locks/status: the lock group's Raft state as the node sees it.
type LockStatus struct {
	Self      string   `json:"self"`
	State     string   `json:"state"` // leader, follower, candidate, none (not in the group yet)
	Leader    string   `json:"leader"`
	Voters    []string `json:"voters"`
	Nonvoters []string `json:"nonvoters"`
	Term      uint64   `json:"term"`
	LastIndex uint64   `json:"last_index"`
	Applied   uint64   `json:"applied_index"`
	Locks     int      `json:"locks"`
	LastToken uint64   `json:"last_token"`
}
