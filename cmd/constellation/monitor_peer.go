package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/rads-lang/constellation/node"
	"github.com/rads-lang/constellation/telemetry"
)

// addMonitorFlags adds peer's monitoring flags.
func addMonitorFlags(f *pflag.FlagSet, flags *node.Config, retention, interval *string) {
	f.StringVar(&flags.MetricsListen, "metrics-listen", "", "also serve GET /metrics WITHOUT authentication on HOST:PORT (for Prometheus on a private network)")
	f.StringVar(retention, "metrics-retention", "30d", "how long the node keeps its metrics samples (e.g. 30d, 12h)")
	f.Int64Var(&flags.MetricsMaxBytes, "metrics-max-bytes", 0, "bound of the metrics store on disk in bytes (0: only the retention bounds it)")
	f.StringVar(interval, "metrics-interval", "10s", "how often the node samples its metrics (1s to 10m)")
}

// parseMonitorFlags reads the duration flags into flags.
func parseMonitorFlags(flags *node.Config, retention, interval string) error {
	if retention != "" {
		d, err := telemetry.ParseDuration(retention)
		if err != nil {
			return fmt.Errorf("--metrics-retention %q: want a duration like 30d, 12h or 90m", retention)
		}
		flags.MetricsRetention = d
	}
	if interval != "" {
		d, err := telemetry.ParseDuration(interval)
		if err != nil {
			return fmt.Errorf("--metrics-interval %q: want a duration like 10s or 1m", interval)
		}
		flags.MetricsInterval = d
	}
	return nil
}
