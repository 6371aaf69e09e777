package api

import "time"

// Node statuses as every node judges them locally.
const (
	StatusAlive   = "alive"
	StatusSuspect = "suspect"
	StatusDead    = "dead"
	StatusLeft    = "left"
)

// NodeInfo is one row of `constellation nodes` (GET /v1/nodes).
type NodeInfo struct {
	Name        string            `json:"name"`
	ID          string            `json:"id"` // peer ID
	Status      string            `json:"status"`
	Addresses   []string          `json:"addresses"`
	Labels      map[string]string `json:"labels"`
	Instances   int               `json:"instances"`
	CPUTotal    int               `json:"cpu_total"`
	RAMTotalMB  uint64            `json:"ram_total_mb"`
	DiskTotalMB uint64            `json:"disk_total_mb"`
	LastSeen    time.Time         `json:"last_seen"`
	Self        bool              `json:"self,omitempty"`
	// Draining: the node takes no new placements and its deployment instances move away
	// (`constellation drain`).
	Draining    bool      `json:"draining,omitempty"`
	Incarnation uint64    `json:"incarnation"`
	StartedAt   time.Time `json:"started_at"`
}

// StatusInfo is `constellation status` (GET /v1/status).
type StatusInfo struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Cluster    string            `json:"cluster"`
	Addresses  []string          `json:"addresses"` // full multiaddrs with /p2p/
	Labels     map[string]string `json:"labels"`
	NodesAlive int               `json:"nodes_alive"`
	NodesTotal int               `json:"nodes_total"`
	Admitted   int               `json:"peers_admitted"`
	Keyed      bool              `json:"cluster_key_set"`
	Version    string            `json:"version"`
	UptimeS    float64           `json:"uptime_s"`
	DataDir    string            `json:"data_dir"`
	StateKeys  int               `json:"state_keys"`
	// APIAddr and APIFingerprint are the TCP API's address and the SHA-256 fingerprint of
	// its TLS certificate, which clients pin (--api-fingerprint); empty without --api-listen.
	APIAddr        string `json:"api_addr,omitempty"`
	APIFingerprint string `json:"api_fingerprint,omitempty"`
}
