// Package traces is each node's span store and the cluster-wide trace queries.
//
// Store is a bounded in-memory ring of the newest Config.MaxSpans finished spans (100k by
// default, about 50 MiB; see docs/logs-traces.md) and an sdktrace.SpanExporter:
// NewTracerProvider builds the node's one OpenTelemetry TracerProvider over it (with a
// sampler option, parent-based by default), which node passes to the features that
// produce spans (the mesh). Instances submit spans with POST /v1/monitor/spans (a simple
// JSON form, validated: hex IDs of the right length, not all zero, end not before start,
// at most 24 h, bounded names and attributes).
//
// Queries (Service): by service, operation, minimum duration, status, time range and
// trace IDs, over the protocol monitor-traces/1.0.0 on the member-only host (one CBOR
// request and answer, bounded frames, a deadline per member). Traces lists the newest
// traces with a matching span in two rounds: the matching spans from every alive
// member, then every span of their traces, merged by trace ID (Summarize: root
// operation, first start to last end, nodes, error status when any span failed).
//
// OTLP export: OTLPExporter posts spans to a collector over OTLP/HTTP with the JSON
// encoding, written with the SDK's types and the standard library. The official
// otlptracehttp exporter would add gRPC and protobuf (about 11 MB of binary) for the same
// request; the JSON encoding is part of the OTLP specification and accepted by the
// OpenTelemetry Collector, Jaeger and Tempo on port 4318.
package traces
