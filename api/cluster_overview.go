package api

import "time"

// ClusterOverview is GET /v1/cluster/overview: the whole cluster at a glance, as the node
// asked sees it (the web dashboard's overview page). Read-only; a blocking read
// (?index=N&wait=D) answers when a node, instance, drain or alert changes, or after the
// wait with fresh metrics.
type ClusterOverview struct {
	// Health is healthy, degraded or critical (the rule of GET /v1/monitor/dashboard);
	// Reasons say why it is not healthy.
	Health  string   `json:"health"`
	Reasons []string `json:"reasons,omitempty"`

	NodesAlive int `json:"nodes_alive"`
	NodesTotal int `json:"nodes_total"` // nodes that left gracefully do not count
	// Instances of the whole cluster: running, and all (a dead node's keep their last status).
	InstancesRunning int `json:"instances_running"`
	InstancesTotal   int `json:"instances_total"`

	// Cluster averages of the hosts' CPU and memory use (percent) and the sum of their
	// network traffic (Mbit/s), from the nodes' metrics; 0 before the first samples.
	CPUPercent     float64 `json:"cpu_percent"`
	RAMPercent     float64 `json:"ram_percent"`
	NetworkInMbps  float64 `json:"network_in_mbps"`
	NetworkOutMbps float64 `json:"network_out_mbps"`

	AlertsFiring  int `json:"alerts_firing"`
	AlertsPending int `json:"alerts_pending"`

	Nodes []OverviewNode `json:"nodes"`
	// Links are the connections between members with their round-trip time.
	Links []OverviewLink `json:"links"`

	// Warnings: parts that could not be computed (e.g. a metrics query that failed).
	Warnings    []string  `json:"warnings,omitempty"`
	GeneratedAt time.Time `json:"generated_at"`
}

// OverviewNode is one star of the overview: a member with its capacity and use.
type OverviewNode struct {
	Name     string            `json:"name"`
	ID       string            `json:"id"`
	Status   string            `json:"status"` // alive, suspect, dead, left
	Self     bool              `json:"self,omitempty"`
	Draining bool              `json:"draining,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	LastSeen time.Time         `json:"last_seen"`

	CPUCores   int    `json:"cpu_cores"`
	RAMTotalMB uint64 `json:"ram_total_mb"`
	// Host use from the node's metrics (Metrics false: no sample yet, the figures are 0).
	Metrics        bool    `json:"metrics"`
	CPUPercent     float64 `json:"cpu_percent"`
	RAMPercent     float64 `json:"ram_percent"`
	RAMUsedMB      uint64  `json:"ram_used_mb"`
	NetworkInMbps  float64 `json:"network_in_mbps"`
	NetworkOutMbps float64 `json:"network_out_mbps"`

	Instances int `json:"instances"`
	Running   int `json:"running"`

	Reachability string `json:"reachability,omitempty"`
	NATType      string `json:"nat_type,omitempty"`
}

// OverviewLink is a connection between two members (From < To by name). RTTMs is the
// mean of what each side measured (replicated RTT tables). Connection (direct, relayed,
// hole-punched) is known for the links of the node asked (Observer); other links say
// "unknown".
type OverviewLink struct {
	From       string  `json:"from"`
	To         string  `json:"to"`
	RTTMs      float64 `json:"rtt_ms"`
	Connection string  `json:"connection"`
	Transport  string  `json:"transport,omitempty"`
	Observer   string  `json:"observer,omitempty"` // the node whose view Connection is
}
