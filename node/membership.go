package node

import (
	"fmt"
	"sort"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Collection names in the replicated document.
const (
	// CollNodes holds one membership record per node, keyed by peer ID. Only the node itself
	// writes its record (the ownership rule), so LWW never loses a concurrent write.
	CollNodes = "nodes"
)

// Node statuses as every node judges them locally.
const (
	StatusAlive   = "alive"
	StatusSuspect = "suspect"
	StatusDead    = "dead"
	StatusLeft    = "left"
)

// NodeRecord is a node's membership record in the replicated document.
type NodeRecord struct {
	Name        string            `cbor:"1,keyasint,omitempty"`
	PeerID      string            `cbor:"2,keyasint,omitempty"`
	Addrs       []string          `cbor:"3,keyasint,omitempty"` // full multiaddrs without /p2p/
	Labels      map[string]string `cbor:"4,keyasint,omitempty"`
	CPUCores    int               `cbor:"5,keyasint,omitempty"`
	RAMMB       uint64            `cbor:"6,keyasint,omitempty"`
	DiskMB      uint64            `cbor:"7,keyasint,omitempty"`
	Instances   int               `cbor:"8,keyasint,omitempty"`
	StartedAt   int64             `cbor:"9,keyasint,omitempty"`  // unix ms
	Incarnation uint64            `cbor:"10,keyasint,omitempty"` // failure-detector incarnation at start
	Left        bool              `cbor:"11,keyasint,omitempty"` // set on graceful leave
	Heartbeat   int64             `cbor:"12,keyasint,omitempty"` // unix ms of the last record refresh
	Version     string            `cbor:"13,keyasint,omitempty"`
}

var recordEnc, recordDec = func() (cbor.EncMode, cbor.DecMode) {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	dm, err := cbor.DecOptions{MaxArrayElements: 1024, MaxMapPairs: 1024, MaxNestedLevels: 8, DupMapKey: cbor.DupMapKeyEnforcedAPF}.DecMode()
	if err != nil {
		panic(err)
	}
	return em, dm
}()

func encodeRecord(r NodeRecord) []byte {
	b, err := recordEnc.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("node: encode record: %v", err)) // plain struct: cannot fail
	}
	return b
}

func decodeRecord(b []byte) (NodeRecord, error) {
	var r NodeRecord
	if len(b) > 64<<10 {
		return r, fmt.Errorf("node: membership record of %d bytes exceeds 64 KiB", len(b))
	}
	err := recordDec.Unmarshal(b, &r)
	return r, err
}

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
	Incarnation uint64            `json:"incarnation"`
	StartedAt   time.Time         `json:"started_at"`
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
}

func sortNodes(ns []NodeInfo) {
	sort.Slice(ns, func(i, j int) bool {
		if ns[i].Name != ns[j].Name {
			return ns[i].Name < ns[j].Name
		}
		return ns[i].ID < ns[j].ID
	})
}
