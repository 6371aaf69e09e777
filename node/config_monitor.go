package node

import (
	"strconv"
	"time"

	"github.com/rads-lang/constellation/telemetry"
	"github.com/rads-lang/constellation/telemetry/tsdb"
)

func (c *Config) monitorDefaults() {
	if c.MetricsRetention == 0 {
		c.MetricsRetention = tsdb.DefaultRetention
	}
	if c.MetricsInterval == 0 {
		c.MetricsInterval = telemetry.DefaultInterval
	}
}

func (c *Config) validateMonitor() error {
	if c.MetricsListen != "" {
		if _, port, err := splitHostPort(c.MetricsListen); err != nil || port == 0 {
			return &ConfigError{"metrics_listen", c.MetricsListen, "HOST:PORT, e.g. 10.0.0.5:9464 (served without authentication: use a private address)"}
		}
	}
	if c.MetricsInterval < time.Second || c.MetricsInterval > 10*time.Minute {
		return &ConfigError{"metrics_interval", c.MetricsInterval.String(), "between 1s and 10m, e.g. 10s"}
	}
	if c.MetricsRetention < time.Hour || c.MetricsRetention < 10*c.MetricsInterval {
		return &ConfigError{"metrics_retention", c.MetricsRetention.String(), "at least 1h and 10 intervals, e.g. 30d"}
	}
	if c.MetricsMaxBytes < 0 || (c.MetricsMaxBytes > 0 && c.MetricsMaxBytes < 16<<20) {
		return &ConfigError{"metrics_max_bytes", strconv.FormatInt(c.MetricsMaxBytes, 10), "0 (no bound) or at least 16 MiB, e.g. 1073741824"}
	}
	return nil
}

func (c *Config) mergeMonitor(over Config, set map[string]bool) {
	if set["metrics-listen"] {
		c.MetricsListen = over.MetricsListen
	}
	if set["metrics-retention"] {
		c.MetricsRetention = over.MetricsRetention
	}
	if set["metrics-max-bytes"] {
		c.MetricsMaxBytes = over.MetricsMaxBytes
	}
	if set["metrics-interval"] {
		c.MetricsInterval = over.MetricsInterval
	}
}
