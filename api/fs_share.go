package api

import "time"

// Shared directories (docs/dfs.md, "Shared directories"): a local directory of a node kept
// in two-way sync with a DFS tree by the node process.

// FSShareRequest is POST /v1/fs/shares.
type FSShareRequest struct {
	LocalDir string `json:"local_dir"`          // absolute, on the node's machine
	Path     string `json:"path"`               // the DFS tree
	Sync     string `json:"sync"`               // realtime (default) | periodic
	Interval string `json:"interval,omitempty"` // full-scan period, a Go duration (default 30s)
	Conflict string `json:"conflict"`           // last_write_wins (default) | keep_both
	Writable bool   `json:"writable"`           // local changes go to the DFS
}

// FSShare is one share and how its sync goes (GET /v1/fs/shares).
type FSShare struct {
	ID       string    `json:"id"`
	LocalDir string    `json:"local_dir"`
	Path     string    `json:"path"`
	Sync     string    `json:"sync"`
	Interval string    `json:"interval"`
	Conflict string    `json:"conflict"`
	Writable bool      `json:"writable"`
	Created  time.Time `json:"created"`
	// Status: starting, syncing, ok, error (the last round had errors), stopped.
	Status string `json:"status"`
	// LagMS is the last lag: from a change on one side to its application on the other.
	LagMS     float64   `json:"lag_ms"`
	LastSync  time.Time `json:"last_sync,omitempty"` // end of the last complete round
	Files     int       `json:"files"`               // files in sync
	Rounds    uint64    `json:"rounds"`
	Applied   uint64    `json:"applied"`   // changes applied since the node started
	Conflicts uint64    `json:"conflicts"` // conflicts resolved since the node started
	Errors    int       `json:"errors"`    // errors of the last round
	// LastErrors are the last round's errors (at most 10), each naming the path.
	LastErrors []string `json:"last_errors,omitempty"`
	// Skipped are paths left out (links, special files, too large, read-only local-only),
	// with the reason (at most 10).
	Skipped []string `json:"skipped,omitempty"`
}
