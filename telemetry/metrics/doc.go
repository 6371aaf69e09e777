// Package metrics holds the node's Prometheus collectors: the one registry a node serves at
// GET /metrics (NewRegistry: Go runtime and process collectors, every series labelled with
// the node's name), the node's host metrics read from /proc and statfs (NodeCollector),
// the instances' resource use read through the InstanceSource interface node connects to
// the instance service (InstanceCollector), the p2p and replicated-state counters read
// through P2PSource and StateSource, and the custom metrics instances push (Custom:
// gauges, counters and histograms with a bounded number of series per instance).
//
// Every metric is named constellation_<pillar>_<what>_<unit> after the Prometheus naming
// conventions; labels are node, instance, deployment and namespace. Collectors read
// their sources at scrape time and hold no goroutines.
package metrics
