package locks

import (
	"strings"
	"time"

	"github.com/rads-lang/constellation/dfs"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// Limits of a lease.
const (
	MinTTL = 100 * time.Millisecond
	MaxTTL = 24 * time.Hour
)

// Lease is one granted lock: its holder, fencing token and lease.
type Lease struct {
	Path   string        `cbor:"1,keyasint" json:"path"`
	Holder string        `cbor:"2,keyasint" json:"holder"`
	Token  uint64        `cbor:"3,keyasint" json:"token"`
	TTL    time.Duration `cbor:"4,keyasint" json:"ttl"`
	// Granted is when the leader granted the lock; Expires when the lease ends unless
	// renewed (the leader's clock; holders count from their own request time instead).
	Granted time.Time `cbor:"5,keyasint" json:"granted"`
	Expires time.Time `cbor:"6,keyasint" json:"expires"`
}

// Status is the Raft group as this node sees it.
type Status struct {
	Self      string   `cbor:"1,keyasint" json:"self"`
	State     string   `cbor:"2,keyasint" json:"state"` // leader, follower, candidate, none
	Leader    string   `cbor:"3,keyasint" json:"leader"`
	Voters    []string `cbor:"4,keyasint" json:"voters"`
	Nonvoters []string `cbor:"5,keyasint" json:"nonvoters"`
	Term      uint64   `cbor:"6,keyasint" json:"term"`
	LastIndex uint64   `cbor:"7,keyasint" json:"last_index"`
	Applied   uint64   `cbor:"8,keyasint" json:"applied_index"`
	Locks     int      `cbor:"9,keyasint" json:"locks"`
	LastToken uint64   `cbor:"10,keyasint" json:"last_token"`
}

// CheckPath validates a lock path: the DFS's file path rules (dfs.CheckPath).
func CheckPath(p string) error {
	if err := dfs.CheckPath(p); err != nil {
		return httpapi.BadRequest("locks: %v", err)
	}
	return nil
}

// CheckKey validates a CAS key: a DFS path too, or a DFS path with a "#suffix" naming a
// property of it (for example "/data/a.txt#version").
func CheckKey(k string) error {
	p, _, _ := strings.Cut(k, "#")
	if err := dfs.CheckPath(p); err != nil {
		return httpapi.BadRequest("locks: key %q: %v", k, err)
	}
	if len(k) > dfs.MaxPathBytes+256 {
		return httpapi.BadRequest("locks: key of %d bytes; at most %d", len(k), dfs.MaxPathBytes+256)
	}
	return nil
}
