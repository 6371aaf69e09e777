// Package telemetry is a node's monitoring: one Prometheus registry served at GET /metrics,
// an embedded time-series store (package telemetry/tsdb: the Prometheus TSDB as a library,
// in <data-dir>/metrics) fed from that registry every interval, and PromQL over the whole
// cluster. Nothing is centralised: every node keeps its own samples, and a query fans out
// to every alive node and merges, like a Thanos querier.
//
// # Cluster-wide queries
//
// Every series a node stores carries node="<name>", so the stores of different nodes never
// hold the same series. Service.Queryable returns a storage.Queryable whose Querier merges
// the local store (primary) with one remote querier per other alive member (secondaries,
// storage.NewMergeQuerier): a remote Select sends a tsdb.Request over the member-only
// protocol QueryProtocol ("monitor-query/1.0.0"; frames of at most 4 MiB, 10 s per node by
// default, at most 5 million samples and 200,000 series per node per request) and
// rebuilds the series from the tsdb.Batch frames of the answer. A node that fails or does
// not answer in time turns into a warning of the result (naming it), not an error, and
// its series are missing. One PromQL evaluation therefore sees every node's series, and
// any node gives the same answer.
//
// # For the alert engine
//
// The alert engine (package telemetry/alert) evaluates rules with
//
//	q := svc.Queryable() // storage.Queryable over every alive node
//	e := svc.Engine()    // *promql.Engine with the node's settings (NewEngine)
//	qry, err := e.NewInstantQuery(ctx, q, nil, rule.Expr, now)
//
// node hands it these two (Node.Telemetry()). The result's Warnings name nodes left out.
// Service.Instant and Service.Range run a query and convert the result to the API's
// types.
//
// # Routes
//
//	GET  /metrics                          the node's registry (text exposition)
//	GET|POST /api/v1/query, /api/v1/query_range, /api/v1/series, /api/v1/labels,
//	GET  /api/v1/label/{name}/values       Prometheus-compatible HTTP API (Grafana)
//	POST /v1/monitor/query                 PromQL or the structured form (metric, aggregation, group_by, time_range)
//	GET  /v1/monitor/dashboard             health, nodes, instances, CPU, RAM, network
//	POST /v1/monitor/metrics               custom metrics (instances through their loopback API)
//	GET  /v1/debug/pprof/{node}            a Go profile of any node (admin only), over PprofProtocol
//
// Config.MetricsListen serves GET /metrics alone without authentication, for Prometheus
// scrapers on a private network.
//
// # Custom metrics
//
// Instances push gauges, counters and histogram observations (metrics.Custom), exposed under
// their own names with instance and namespace labels; each instance holds at most
// Config.MaxCustomSeries series (default 1000): a push that would pass the limit is refused
// whole with 429 too_many_series. Series of an instance that no longer runs on the node are
// dropped at the next scrape.
//
// See docs/monitor.md for users.
package telemetry
