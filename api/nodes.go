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

	// How this node reaches the node (empty for self and for nodes it has no connection
	// to): Connection is direct, relayed or hole-punched; Transport quic or tcp (for a
	// relayed connection, the transport to the relay); Address the remote address in use
	// (else the node's first announced address); RTTMs the measured round-trip time.
	Connection string  `json:"connection,omitempty"`
	Transport  string  `json:"transport,omitempty"`
	Address    string  `json:"address,omitempty"`
	RTTMs      float64 `json:"rtt_ms,omitempty"`
	// What the node detected for itself (from its membership record): Reachability
	// public, private or unknown; NATType none, cone, symmetric or unknown.
	Reachability string `json:"reachability,omitempty"`
	NATType      string `json:"nat_type,omitempty"`
	// RTTs are the node's measured round-trip times to other members, in ms, by peer ID
	// (replicated; `constellation nodes --rtt`).
	RTTs map[string]float64 `json:"rtts_ms,omitempty"`
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

	// NAT traversal: this node's reachability (public, private, unknown), the NAT type it
	// detected (none, cone, symmetric, unknown), its addresses as members observe them,
	// whether it relays for members, and the relay reservations it holds.
	Reachability  string             `json:"reachability"`
	NATType       string             `json:"nat_type"`
	ObservedAddrs []string           `json:"observed_addresses"`
	RelayService  bool               `json:"relay_service"`
	Relays        []RelayReservation `json:"relay_reservations"`
}

// RelayReservation is a relay slot this node holds on another member.
type RelayReservation struct {
	Relay   string    `json:"relay"` // node name (peer ID when unknown)
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}
