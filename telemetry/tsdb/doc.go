// Package tsdb is the node's embedded time-series store: the Prometheus TSDB (as a
// library) in <data-dir>/metrics, with a retention and a disk bound, fed by a sampler that
// gathers the node's registry (and any extra gatherers: scraped instances) every interval
// and appends the samples, with stale markers for series that disappear. Every series
// carries the node label, so the stores of several nodes merge without collisions.
//
// wire.go is the pure codec of the cluster query protocol: a Select, LabelNames or
// LabelValues request, and the answer as a sequence of bounded batches. It decodes with
// limits (FuzzDecodeRequest, FuzzDecodeSeries).
package tsdb
