package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// InstanceSample is one local instance's state and cumulative resource use.
type InstanceSample struct {
	Name, Namespace, Deployment string
	Running                     bool
	CPUSeconds                  float64 // CPU time used since the instance's cgroup was created
	RAMBytes, DiskBytes         float64
	PIDs                        int64
	Restarts                    int // restarts by the runtime's restart policy
	OOMKills                    int // runs ended by the OOM killer, seen by this node
	// ExitCode is the last run's exit status (signal number when killed); HasExit false
	// when the instance has not exited yet.
	ExitCode int
	HasExit  bool
}

// InstanceSource lists the instances running on this node (node connects it to the
// instance service).
type InstanceSource interface {
	InstanceSamples() []InstanceSample
}

// InstanceCollector reports every local instance's resource use, labelled with
// instance, namespace and deployment (empty for a standalone instance).
type InstanceCollector struct {
	src                                                       InstanceSource
	up, cpu, ram, disk, pids, restarts, ooms, exitCode, count *prometheus.Desc
}

// NewInstanceCollector reads src at every scrape.
func NewInstanceCollector(src InstanceSource) *InstanceCollector {
	l := []string{"instance", "namespace", "deployment"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("constellation_instance_"+name, help, l, nil)
	}
	return &InstanceCollector{src: src,
		up:       d("up", "1 when the instance's program is running, else 0."),
		cpu:      d("cpu_seconds_total", "CPU time used by the instance."),
		ram:      d("memory_bytes", "Memory in use by the instance, without reclaimable page cache."),
		disk:     d("disk_bytes", "Size of the instance's data layer."),
		pids:     d("pids", "Processes and threads in the instance."),
		restarts: d("restarts_total", "Restarts of the instance by its restart policy."),
		ooms:     d("oom_kills_total", "Runs of the instance ended by the OOM killer, seen by this node since it started."),
		exitCode: d("last_exit_code", "Exit status of the instance's last run (signal number when killed)."),
		count:    prometheus.NewDesc("constellation_instances", "Instances on this node.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *InstanceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.cpu, c.ram, c.disk, c.pids, c.restarts, c.ooms, c.exitCode, c.count} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *InstanceCollector) Collect(ch chan<- prometheus.Metric) {
	ss := c.src.InstanceSamples()
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(len(ss)))
	for _, s := range ss {
		lv := []string{s.Name, s.Namespace, s.Deployment}
		up := 0.0
		if s.Running {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, lv...)
		ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, s.CPUSeconds, lv...)
		ch <- prometheus.MustNewConstMetric(c.ram, prometheus.GaugeValue, s.RAMBytes, lv...)
		ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, s.DiskBytes, lv...)
		ch <- prometheus.MustNewConstMetric(c.pids, prometheus.GaugeValue, float64(s.PIDs), lv...)
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(s.Restarts), lv...)
		ch <- prometheus.MustNewConstMetric(c.ooms, prometheus.CounterValue, float64(s.OOMKills), lv...)
		if s.HasExit {
			ch <- prometheus.MustNewConstMetric(c.exitCode, prometheus.GaugeValue, float64(s.ExitCode), lv...)
		}
	}
}
