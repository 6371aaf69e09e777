package metrics

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

// NodeCollector reports the host: CPU, memory, the data dir's filesystem, network and load.
// CPU percent is measured between two scrapes (the first scrape since start reports the
// average since boot).
type NodeCollector struct {
	// Proc is the procfs root (default /proc); DataDir the directory whose filesystem is
	// reported as the node's disk.
	Proc    string
	DataDir string

	mu                  sync.Mutex
	lastBusy, lastTotal uint64

	cpuPct, cpuSec, cpus, memTotal, memAvail, memPct, diskTotal, diskFree, diskPct *prometheus.Desc
	netRx, netTx, load1, load5, load15                                             *prometheus.Desc
}

// NewNodeCollector reports the host; dataDir's filesystem is the node's disk.
func NewNodeCollector(dataDir string) *NodeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("constellation_node_"+name, help, labels, nil)
	}
	return &NodeCollector{
		Proc: "/proc", DataDir: dataDir,
		cpuPct:    d("cpu_percent", "CPU busy over the last scrape interval, percent of all cores (0-100)."),
		cpuSec:    d("cpu_seconds_total", "CPU time spent by the host in each mode.", "mode"),
		cpus:      d("cpus", "Logical CPUs of the host."),
		memTotal:  d("memory_total_bytes", "Physical memory of the host."),
		memAvail:  d("memory_available_bytes", "Memory available for new work without swapping (MemAvailable)."),
		memPct:    d("memory_used_percent", "Memory in use, percent of total (100 - available/total*100)."),
		diskTotal: d("disk_total_bytes", "Size of the data dir's filesystem."),
		diskFree:  d("disk_free_bytes", "Bytes of the data dir's filesystem available to the node."),
		diskPct:   d("disk_used_percent", "Used space of the data dir's filesystem, percent."),
		netRx:     d("network_receive_bytes_total", "Bytes received on every interface but loopback."),
		netTx:     d("network_transmit_bytes_total", "Bytes sent on every interface but loopback."),
		load1:     d("load1", "Load average over 1 minute."),
		load5:     d("load5", "Load average over 5 minutes."),
		load15:    d("load15", "Load average over 15 minutes."),
	}
}

// Describe implements prometheus.Collector.
func (c *NodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpuPct, c.cpuSec, c.cpus, c.memTotal, c.memAvail, c.memPct, c.diskTotal,
		c.diskFree, c.diskPct, c.netRx, c.netTx, c.load1, c.load5, c.load15} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A source that cannot be read is left out.
func (c *NodeCollector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	ch <- prometheus.MustNewConstMetric(c.cpus, prometheus.GaugeValue, float64(runtime.NumCPU()))
	if modes, busy, total, ok := c.readCPU(); ok {
		for _, m := range modes {
			ch <- prometheus.MustNewConstMetric(c.cpuSec, prometheus.CounterValue, m.sec, m.name)
		}
		c.mu.Lock()
		db, dt := busy-c.lastBusy, total-c.lastTotal
		if busy < c.lastBusy || total <= c.lastTotal {
			db, dt = busy, total
		}
		c.lastBusy, c.lastTotal = busy, total
		c.mu.Unlock()
		if dt > 0 {
			g(c.cpuPct, float64(db)/float64(dt)*100)
		}
	}
	if total, avail, ok := c.readMem(); ok && total > 0 {
		g(c.memTotal, total)
		g(c.memAvail, avail)
		g(c.memPct, 100-avail/total*100)
	}
	var fs syscall.Statfs_t
	if c.DataDir != "" && syscall.Statfs(c.DataDir, &fs) == nil && fs.Blocks > 0 {
		total := float64(fs.Blocks) * float64(fs.Bsize)
		g(c.diskTotal, total)
		g(c.diskFree, float64(fs.Bavail)*float64(fs.Bsize))
		g(c.diskPct, 100-float64(fs.Bfree)/float64(fs.Blocks)*100)
	}
	if rx, tx, ok := c.readNet(); ok {
		ch <- prometheus.MustNewConstMetric(c.netRx, prometheus.CounterValue, rx)
		ch <- prometheus.MustNewConstMetric(c.netTx, prometheus.CounterValue, tx)
	}
	if b, err := os.ReadFile(c.Proc + "/loadavg"); err == nil {
		f := strings.Fields(string(b))
		for i, d := range []*prometheus.Desc{c.load1, c.load5, c.load15} {
			if i < len(f) {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					g(d, v)
				}
			}
		}
	}
}

type cpuMode struct {
	name string
	sec  float64
}

// userHZ is the kernel's USER_HZ, the unit of /proc/stat (100 on every Linux platform Go
// supports).
const userHZ = 100

var cpuModes = []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

func (c *NodeCollector) readCPU() (modes []cpuMode, busy, total uint64, ok bool) {
	f, err := os.Open(c.Proc + "/stat")
	if err != nil {
		return nil, 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 9 || fs[0] != "cpu" {
			continue
		}
		for i, name := range cpuModes {
			v, err := strconv.ParseUint(fs[i+1], 10, 64)
			if err != nil {
				return nil, 0, 0, false
			}
			modes = append(modes, cpuMode{name, float64(v) / userHZ})
			total += v
			if name != "idle" && name != "iowait" {
				busy += v
			}
		}
		return modes, busy, total, true
	}
	return nil, 0, 0, false
}

func (c *NodeCollector) readMem() (total, avail float64, ok bool) {
	b, err := os.ReadFile(c.Proc + "/meminfo")
	if err != nil {
		return 0, 0, false
	}
	var t, a bool
	for _, line := range bytes.Split(b, []byte("\n")) {
		fs := strings.Fields(string(line))
		if len(fs) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(fs[1], 64)
		if err != nil {
			continue
		}
		switch fs[0] {
		case "MemTotal:":
			total, t = v*1024, true
		case "MemAvailable:":
			avail, a = v*1024, true
		}
	}
	return total, avail, t && a
}

func (c *NodeCollector) readNet() (rx, tx float64, ok bool) {
	b, err := os.ReadFile(c.Proc + "/net/dev")
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, found := strings.Cut(line, ":")
		if !found || strings.TrimSpace(name) == "lo" {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) < 9 {
			continue
		}
		r, err1 := strconv.ParseFloat(fs[0], 64)
		t, err2 := strconv.ParseFloat(fs[8], 64)
		if err1 == nil && err2 == nil {
			rx, tx, ok = rx+r, tx+t, true
		}
	}
	return rx, tx, ok
}
