package node

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/scheduler"
	"github.com/rads-lang/constellation/telemetry/logs"
	"github.com/rads-lang/constellation/telemetry/traces"
)

// LogsTraces configures the node's log store and span store (see docs/logs-traces.md).
// Zero values take the defaults.
type LogsTraces struct {
	// LogsMaxAge removes log segments whose newest entry is older. Default 168h (7 days).
	LogsMaxAge time.Duration `yaml:"logs_max_age"`
	// LogsMaxMB bounds the log store on disk, in MiB (oldest segments go first). Default 1024.
	LogsMaxMB int64 `yaml:"logs_max_mb"`
	// MaxSpans bounds the in-memory span store. Default 100000.
	MaxSpans int `yaml:"max_spans"`
	// TraceSampleRatio samples new traces at this fraction (0 or 1: every trace).
	TraceSampleRatio float64 `yaml:"trace_sample_ratio"`
	// OTLPEndpoint also exports spans to an OpenTelemetry collector over OTLP/HTTP JSON
	// (e.g. http://collector:4318).
	OTLPEndpoint string `yaml:"otlp_endpoint"`
}

func (c *LogsTraces) defaults() {
	if c.LogsMaxAge <= 0 {
		c.LogsMaxAge = 7 * 24 * time.Hour
	}
	if c.LogsMaxMB <= 0 {
		c.LogsMaxMB = 1024
	}
	if c.MaxSpans <= 0 {
		c.MaxSpans = 100000
	}
}

func (c *LogsTraces) validate() error {
	if c.TraceSampleRatio < 0 || c.TraceSampleRatio > 1 {
		return &ConfigError{"trace-sample-ratio", fmt.Sprint(c.TraceSampleRatio), "a fraction from 0 to 1 (0 or 1: every trace)"}
	}
	if c.OTLPEndpoint != "" {
		if _, err := traces.NewOTLPExporter(c.OTLPEndpoint, nil, 0); err != nil {
			return &ConfigError{"otlp-endpoint", c.OTLPEndpoint, "an http(s) URL of an OTLP/HTTP collector, like http://collector:4318"}
		}
	}
	return nil
}

func (c *LogsTraces) merge(over LogsTraces, set map[string]bool) {
	if set["logs-max-age"] {
		c.LogsMaxAge = over.LogsMaxAge
	}
	if set["logs-max-mb"] {
		c.LogsMaxMB = over.LogsMaxMB
	}
	if set["max-spans"] {
		c.MaxSpans = over.MaxSpans
	}
	if set["trace-sample-ratio"] {
		c.TraceSampleRatio = over.TraceSampleRatio
	}
	if set["otlp-endpoint"] {
		c.OTLPEndpoint = over.OTLPEndpoint
	}
}

// logsTraces is the node's part of package telemetry/logs and telemetry/traces.
type logsTraces struct {
	store  *logs.Store
	output *logs.Output
	logs   *logs.Service
	spans  *traces.Store
	traces *traces.Service
	tp     *sdktrace.TracerProvider

	metaMu sync.Mutex // guards meta
	meta   map[string]instMeta
}

type instMeta struct {
	deployment, namespace string
	at                    time.Time
}

// openLogStore opens the log store (before anything logs) and returns the node's logger
// writing into it too.
func (n *Node) openLogStore(log *slog.Logger) (*slog.Logger, error) {
	c := n.cfg.LogsTraces
	c.defaults()
	st, err := logs.Open(logs.Config{Dir: filepath.Join(n.cfg.DataDir, "logs"), MaxAge: c.LogsMaxAge,
		MaxBytes: c.LogsMaxMB << 20, Log: log})
	if err != nil {
		return nil, err
	}
	n.lt.store = st
	n.lt.output = logs.NewOutput(st, n.cfg.Node, n.instanceMeta)
	n.lt.meta = map[string]instMeta{}
	n.lt.spans = traces.NewStore(traces.Config{Node: n.cfg.Node, MaxSpans: c.MaxSpans})
	n.lt.tp, err = traces.NewTracerProvider(n.lt.spans, traces.ProviderConfig{Node: n.cfg.Node,
		SampleRatio: c.TraceSampleRatio, OTLPEndpoint: c.OTLPEndpoint})
	if err != nil {
		st.Close()
		return nil, err
	}
	return slog.New(logs.NewHandler(log.Handler(), st, n.cfg.Node)), nil
}

// startLogsTraces registers the log and trace protocols and routes.
func (n *Node) startLogsTraces(log *slog.Logger) error {
	var err error
	n.lt.logs, err = logs.NewService(n.ctx, logs.ServiceConfig{Node: n.cfg.Node, CallerInstance: instances.CallerInstance,
		Meta: n.instanceMeta, Metrics: n.registry}, n.lt.store, n.host, n.members, n.api, log)
	if err != nil {
		return err
	}
	n.lt.traces, err = traces.NewService(traces.ServiceConfig{Node: n.cfg.Node, CallerInstance: instances.CallerInstance,
		Metrics: n.registry},
		n.lt.spans, n.host, n.members, n.api, log)
	return err
}

// closeLogsTraces stops the services, flushes the spans and closes the log store.
func (n *Node) closeLogsTraces() {
	if n.lt.logs != nil {
		n.lt.logs.Close()
		n.lt.logs = nil
	}
	if n.lt.traces != nil {
		n.lt.traces.Close()
		n.lt.traces = nil
	}
	if n.lt.tp != nil {
		_ = traces.Shutdown(n.lt.tp, 2*time.Second)
	}
	if n.lt.store != nil {
		n.lt.store.Close()
	}
}

// instanceMeta is an instance's deployment and namespace (cached 10 s).
func (n *Node) instanceMeta(name string) (deployment, namespace string) {
	n.lt.metaMu.Lock()
	m, ok := n.lt.meta[name]
	n.lt.metaMu.Unlock()
	if ok && time.Since(m.at) < 10*time.Second {
		return m.deployment, m.namespace
	}
	m = instMeta{at: time.Now()}
	if n.instances != nil {
		if r, ok := n.instances.Lookup(name); ok {
			m.namespace, m.deployment = r.Namespace, r.Deployment
		}
	}
	var b []byte
	n.st.View(func(v *state.View) { b, _, ok = v.GetLWW(scheduler.CollClaims, name) })
	if ok {
		var c scheduler.ClaimRecord
		if state.Decode(b, &c) == nil {
			m.deployment = c.Deployment
			if m.namespace == "" {
				m.namespace = c.Namespace
			}
		}
	}
	n.lt.metaMu.Lock()
	if len(n.lt.meta) > 4096 {
		clear(n.lt.meta)
	}
	n.lt.meta[name] = m
	n.lt.metaMu.Unlock()
	return m.deployment, m.namespace
}

// TracerProvider is the node's one TracerProvider: spans go into the node's span store
// (and to the OTLP collector when configured). Features take it in their Config.
func (n *Node) TracerProvider() trace.TracerProvider {
	if n.lt.tp == nil {
		return noop.NewTracerProvider()
	}
	return n.lt.tp
}

// LogStore is the node's log store (tests, benchmarks).
func (n *Node) LogStore() *logs.Store { return n.lt.store }

// SpanStore is the node's span store (tests).
func (n *Node) SpanStore() *traces.Store { return n.lt.spans }
