package traces

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// ProviderConfig configures the node's TracerProvider.
type ProviderConfig struct {
	// Service is the resource's service.name of the node's own spans (default
	// "constellation").
	Service string
	// Node is the node's name (resource attribute constellation.node).
	Node string
	// Sampler decides which traces are recorded (default: parent-based, always sample
	// roots). SampleRatio in (0,1) makes it parent-based over a trace-ID ratio.
	Sampler     sdktrace.Sampler
	SampleRatio float64
	// OTLPEndpoint, when set, also exports every span to an OpenTelemetry collector over
	// OTLP/HTTP with JSON encoding (e.g. http://collector:4318; "/v1/traces" is added
	// when the URL has no path).
	OTLPEndpoint string
	// OTLPHeaders are sent with every export (e.g. an authorization header).
	OTLPHeaders map[string]string
	// OTLPTimeout bounds one export (default 10s).
	OTLPTimeout time.Duration
}

// NewTracerProvider builds the node's TracerProvider over store (synchronous export:
// the store is in memory and bounded) and, with OTLPEndpoint, a batching OTLP exporter.
// Shut it down with Shutdown(ctx) when the node closes.
func NewTracerProvider(store *Store, cfg ProviderConfig) (*sdktrace.TracerProvider, error) {
	if store == nil {
		return nil, errors.New("traces: NewTracerProvider needs a store")
	}
	if cfg.Service == "" {
		cfg.Service = "constellation"
	}
	sampler := cfg.Sampler
	if sampler == nil {
		switch {
		case cfg.SampleRatio < 0 || cfg.SampleRatio > 1:
			return nil, fmt.Errorf("traces: sample ratio %v: want 0 (always) or a fraction in (0, 1]", cfg.SampleRatio)
		case cfg.SampleRatio > 0 && cfg.SampleRatio < 1:
			sampler = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))
		default:
			sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
		}
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(cfg.Service),
		attribute.String("constellation.node", cfg.Node))
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(sampler),
		sdktrace.WithSyncer(store)}
	if cfg.OTLPEndpoint != "" {
		exp, err := NewOTLPExporter(cfg.OTLPEndpoint, cfg.OTLPHeaders, cfg.OTLPTimeout)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// Shutdown flushes and stops tp within d.
func Shutdown(tp *sdktrace.TracerProvider, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return tp.Shutdown(ctx)
}
