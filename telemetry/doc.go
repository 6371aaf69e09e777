// Package telemetry holds constellation's metrics, logs, traces and alert rules: Prometheus
// metrics on every node, an embedded time-series store queried with PromQL, and cluster-wide
// log and trace search by fan-out. See docs/design.md ("Telemetry"). The package is scheduled
// by the telemetry issue and holds no code yet.
package telemetry
