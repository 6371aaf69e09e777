package api

import "time"

// FSMount is one FUSE view of a DFS prefix hosted by a node (GET /v1/fs/mounts).
type FSMount struct {
	Dir      string    `json:"dir"`    // the mount point on the node's host
	Prefix   string    `json:"prefix"` // the DFS directory shown at its root
	ReadOnly bool      `json:"read_only,omitempty"`
	Owner    string    `json:"owner"` // "api" (fs mount) or "instance NAME"
	Since    time.Time `json:"since"`
}

// FSMountRequest is POST /v1/fs/mounts (`constellation fs mount DIR`).
type FSMountRequest struct {
	Dir      string `json:"dir"`
	Prefix   string `json:"prefix,omitempty"` // default "/"
	ReadOnly bool   `json:"read_only,omitempty"`
	// Hold says a GET /v1/fs/mounts/hold will follow (a foreground fs mount): if none has
	// attached within a few seconds (the client died in between), the node unmounts it.
	Hold bool `json:"hold,omitempty"`
}
