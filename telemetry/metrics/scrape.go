package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// Limits of scraping an instance's /metrics.
const (
	MaxScrapeBytes = 8 << 20
	ScrapeTimeout  = 5 * time.Second
	maxParallel    = 8
)

// ScrapeTarget is an instance that serves Prometheus metrics.
type ScrapeTarget struct {
	Instance, Namespace string
	Addr                string // HOST:PORT, scraped at http://Addr/metrics
}

// ScrapeSource lists the local instances to scrape.
type ScrapeSource interface{ ScrapeTargets() []ScrapeTarget }

// Scraper scrapes instances' own /metrics when gathered (a prometheus.Gatherer the store's
// sampler reads at each interval) and reports how each scrape went (a Collector).
type Scraper struct {
	Src       ScrapeSource
	MaxSeries int // per instance (0: DefaultMaxSeries)
	Client    *http.Client

	mu   sync.Mutex
	last map[string]scrapeResult // per instance
}

type scrapeResult struct {
	ns       string
	up       bool
	duration time.Duration
	series   int
}

// NewScraper scrapes src's targets.
func NewScraper(src ScrapeSource) *Scraper {
	return &Scraper{Src: src, Client: &http.Client{Timeout: ScrapeTimeout}, last: map[string]scrapeResult{}}
}

// Gather scrapes every target (at most 8 at once) and returns their families relabelled.
// A failed scrape leaves its instance out; it is reported by constellation_instance_scrape_up.
func (s *Scraper) Gather() ([]*dto.MetricFamily, error) {
	ts := s.Src.ScrapeTargets()
	type out struct {
		t    ScrapeTarget
		fams []*dto.MetricFamily
		res  scrapeResult
		err  error
	}
	results := make([]out, len(ts))
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			fams, err := s.scrape(t)
			n := 0
			for _, f := range fams {
				n += len(f.GetMetric())
			}
			results[i] = out{t, fams, scrapeResult{ns: t.Namespace, up: err == nil, duration: time.Since(start), series: n}, err}
		}()
	}
	wg.Wait()
	last := map[string]scrapeResult{}
	var all []*dto.MetricFamily
	var errs []error
	for _, r := range results {
		last[r.t.Instance] = r.res
		if r.err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", r.t.Instance, r.err))
			continue
		}
		all = append(all, r.fams...)
	}
	s.mu.Lock()
	s.last = last
	s.mu.Unlock()
	// Families of the same name from several instances are merged (one family per name).
	return mergeFamilies(all), errors.Join(errs...)
}

func (s *Scraper) scrape(t ScrapeTarget) ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.Addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	limit := s.MaxSeries
	if limit <= 0 {
		limit = DefaultMaxSeries
	}
	return ParseExposition(resp.Body, t.Instance, t.Namespace, limit)
}

// ParseExposition reads a text exposition of at most MaxScrapeBytes from an instance
// (untrusted), refuses one of more than maxSeries samples, and sets the labels instance
// and namespace (an exposed label of the same name, or node, becomes exported_<name>).
func ParseExposition(r io.Reader, instance, namespace string, maxSeries int) (_ []*dto.MetricFamily, err error) {
	lr := &io.LimitedReader{R: r, N: MaxScrapeBytes + 1}
	p := expfmt.NewTextParser(model.UTF8Validation)
	// prometheus/common v0.71.0's text parser panics on some malformed input (found by
	// FuzzParseExposition: "# TYPE A histogram\n{}"); an instance must not crash its node.
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("bad exposition: the parser failed on it (%v)", x)
		}
	}()
	byName, err := p.TextToMetricFamilies(lr)
	if lr.N <= 0 {
		return nil, fmt.Errorf("the exposition is larger than %d bytes", MaxScrapeBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("bad exposition: %w", err)
	}
	names := make([]string, 0, len(byName))
	n := 0
	for name, f := range byName {
		names = append(names, name)
		n += len(f.GetMetric())
		if f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY {
			for _, m := range f.GetMetric() {
				n += len(m.GetHistogram().GetBucket()) + len(m.GetSummary().GetQuantile()) + 2
			}
		}
	}
	if n > maxSeries {
		return nil, fmt.Errorf("the exposition has %d series, more than the %d allowed per instance", n, maxSeries)
	}
	sort.Strings(names)
	out := make([]*dto.MetricFamily, 0, len(names))
	for _, name := range names {
		f := byName[name]
		for _, m := range f.GetMetric() {
			var ls []*dto.LabelPair
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "instance", "namespace", "node":
					lp.Name = proto.String("exported_" + lp.GetName())
				}
				ls = append(ls, lp)
			}
			ls = append(ls, &dto.LabelPair{Name: proto.String("instance"), Value: proto.String(instance)},
				&dto.LabelPair{Name: proto.String("namespace"), Value: proto.String(namespace)})
			m.Label = ls
		}
		out = append(out, f)
	}
	return out, nil
}

func mergeFamilies(fs []*dto.MetricFamily) []*dto.MetricFamily {
	by := map[string]*dto.MetricFamily{}
	var out []*dto.MetricFamily
	for _, f := range fs {
		if g, ok := by[f.GetName()]; ok && g.GetType() == f.GetType() {
			g.Metric = append(g.Metric, f.Metric...)
			continue
		} else if ok {
			continue // another instance uses the name with another type: the first wins
		}
		by[f.GetName()] = f
		out = append(out, f)
	}
	return out
}

var (
	descScrapeUp  = prometheus.NewDesc("constellation_instance_scrape_up", "1 when the last scrape of the instance's /metrics (create --metrics-port) worked, else 0.", []string{"instance", "namespace"}, nil)
	descScrapeDur = prometheus.NewDesc("constellation_instance_scrape_duration_seconds", "Duration of the last scrape of the instance's /metrics.", []string{"instance", "namespace"}, nil)
	descScrapeN   = prometheus.NewDesc("constellation_instance_scrape_series", "Series in the last scrape of the instance's /metrics.", []string{"instance", "namespace"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Scraper) Describe(ch chan<- *prometheus.Desc) {
	ch <- descScrapeUp
	ch <- descScrapeDur
	ch <- descScrapeN
}

// Collect implements prometheus.Collector: the last scrape of each instance.
func (s *Scraper) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for inst, r := range s.last {
		up := 0.0
		if r.up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descScrapeUp, prometheus.GaugeValue, up, inst, r.ns)
		ch <- prometheus.MustNewConstMetric(descScrapeDur, prometheus.GaugeValue, r.duration.Seconds(), inst, r.ns)
		ch <- prometheus.MustNewConstMetric(descScrapeN, prometheus.GaugeValue, float64(r.series), inst, r.ns)
	}
}
