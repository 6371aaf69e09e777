package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/p2p"
	"github.com/rads-lang/constellation/telemetry/health"
	"github.com/rads-lang/constellation/telemetry/metrics"
	"github.com/rads-lang/constellation/telemetry/tsdb"
)

// Defaults of Config.
const (
	DefaultInterval      = 10 * time.Second
	DefaultRemoteTimeout = 10 * time.Second
	DefaultQueryTimeout  = 2 * time.Minute
)

// Config configures the telemetry service. Zero values take the documented defaults.
type Config struct {
	Name    string // this node's name (the node label)
	DataDir string // the store lives in <DataDir>/metrics
	// Retention (default 30 days), MaxBytes (0: no bound) and Interval (default 10s) of the
	// embedded store; NoStore turns it off (GET /metrics still works, queries do not).
	Retention time.Duration
	MaxBytes  int64
	Interval  time.Duration
	NoStore   bool
	// MetricsListen, when set, serves GET /metrics without authentication on that address
	// (for Prometheus scrapers on a private network).
	MetricsListen string
	// RemoteTimeout bounds each node's answer to a fanned-out query (default 10s); a node
	// slower than that is left out with a warning.
	RemoteTimeout time.Duration
	// MaxCustomSeries bounds the custom series of each instance (default 1000).
	MaxCustomSeries int
	// Registry is the node's registry (nil: a private one).
	Registry *metrics.Registry
	// Instances, P2P and State are read at each scrape (nil: not reported).
	Instances metrics.InstanceSource
	P2P       metrics.P2PSource
	StateKeys metrics.StateSource
	// LocalInstance says whether an instance runs on this node, and its namespace.
	LocalInstance func(name string) (namespace string, ok bool)
	// Caller says which instance a request comes from (ok false: an admin).
	Caller func(ctx context.Context) (instance string, ok bool)
	// Scrape lists the local instances that serve their own /metrics (nil: none).
	Scrape metrics.ScrapeSource
	// State holds the health checks and their results (nil: no health checks).
	State *state.Store
	// CheckEvery is how often the health runner looks for due checks (default 2s).
	CheckEvery time.Duration
}

// Members is what the service needs of membership.
type Members interface {
	Nodes() []api.NodeInfo
	Resolve(nameOrID string) (peer.ID, string, error)
}

// Host is what the service needs of the member-only host.
type Host interface {
	ID() peer.ID
	NewService(name string, cfg p2p.ServiceConfig, handler p2p.Handler) (*p2p.Service, error)
}

// Service is one node's telemetry: registry, store, sampler, cluster queries, routes.
type Service struct {
	cfg     Config
	log     *slog.Logger
	ctx     context.Context
	host    Host
	members Members
	reg     *metrics.Registry
	custom  *metrics.Custom
	scraper *metrics.Scraper // nil without Config.Scrape
	store   *tsdb.Store      // nil with NoStore
	engine  *promql.Engine

	querySvc, pprofSvc *p2p.Service

	mu        sync.Mutex // guards metricsLn
	metricsLn net.Listener
	wg        sync.WaitGroup
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// Errors of the telemetry API.
var (
	// ErrBadQuery is a query that does not parse or asks for something impossible.
	ErrBadQuery = errors.New("bad query")
	// ErrBeyondRetention is a range that starts before the oldest data the store keeps.
	ErrBeyondRetention = errors.New("range beyond retention")
	// ErrNoStore means the node runs without its metrics store.
	ErrNoStore = errors.New("metrics store off")
)

func init() {
	httpapi.Classify(http.StatusBadRequest, "bad_query", ErrBadQuery, ErrBeyondRetention, metrics.ErrBadMetric)
	httpapi.Classify(http.StatusTooManyRequests, "too_many_series", metrics.ErrTooManySeries)
	httpapi.Classify(http.StatusServiceUnavailable, "unavailable", ErrNoStore)
	httpapi.Classify(http.StatusUnprocessableEntity, "too_large", tsdb.ErrTooLarge)
}

// New opens the store and registers the collectors, protocols and routes; Start begins
// sampling and the optional metrics listener.
func New(ctx context.Context, cfg Config, host Host, members Members, srv *httpapi.Server, log *slog.Logger) (*Service, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.RemoteTimeout <= 0 {
		cfg.RemoteTimeout = DefaultRemoteTimeout
	}
	if cfg.Retention <= 0 {
		cfg.Retention = tsdb.DefaultRetention
	}
	if cfg.Registry == nil {
		cfg.Registry = metrics.NewRegistry(cfg.Name)
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Service{cfg: cfg, log: log, host: host, members: members, reg: cfg.Registry, custom: metrics.NewCustom()}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.custom.MaxSeries = cfg.MaxCustomSeries
	if cfg.LocalInstance != nil {
		s.custom.Alive = func(name string) bool { _, ok := cfg.LocalInstance(name); return ok }
	}
	cs := []prometheus.Collector{metrics.NewNodeCollector(cfg.DataDir), metrics.NewClusterCollector(cfg.P2P, cfg.StateKeys), s.custom, checkCollector{s}}
	if cfg.Instances != nil {
		cs = append(cs, metrics.NewInstanceCollector(cfg.Instances))
	}
	if cfg.Scrape != nil {
		s.scraper = metrics.NewScraper(cfg.Scrape)
		s.scraper.MaxSeries = cfg.MaxCustomSeries
		cs = append(cs, s.scraper)
	}
	for _, c := range cs {
		if err := s.reg.Register(c); err != nil {
			return nil, fmt.Errorf("telemetry: register: %w", err)
		}
	}
	if !cfg.NoStore {
		st, err := tsdb.Open(tsdb.Options{Dir: filepath.Join(cfg.DataDir, "metrics"), Retention: cfg.Retention,
			MaxBytes: cfg.MaxBytes, Node: cfg.Name, Log: log})
		if err != nil {
			return nil, err
		}
		s.store = st
		_ = s.reg.Register(storeCollector{st})
	}
	s.engine = NewEngine(log)
	var err error
	if s.querySvc, err = host.NewService(QueryProtocol, p2p.ServiceConfig{MaxFrame: 4 << 20, ReadTimeout: 30 * time.Second}, s.serveQuery); err != nil {
		s.closeStore()
		return nil, err
	}
	if s.pprofSvc, err = host.NewService(PprofProtocol, p2p.ServiceConfig{MaxFrame: 1 << 20, WriteTimeout: 30 * time.Second}, s.servePprof); err != nil {
		s.querySvc.Close()
		s.closeStore()
		return nil, err
	}
	s.registerRoutes(srv)
	return s, nil
}

// Start begins sampling into the store and serves MetricsListen.
func (s *Service) Start() error {
	if s.cfg.MetricsListen != "" {
		ln, err := net.Listen("tcp", s.cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("telemetry: metrics-listen %s: %w", s.cfg.MetricsListen, err)
		}
		s.mu.Lock()
		s.metricsLn = ln
		s.mu.Unlock()
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metricsHandler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return s.ctx }}
		s.wg.Add(2)
		go func() { defer s.wg.Done(); _ = hs.Serve(ln) }()
		go func() { defer s.wg.Done(); <-s.ctx.Done(); _ = hs.Close() }()
		s.log.Info("serving /metrics without authentication", "addr", ln.Addr().String())
	}
	if s.store != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.store.Run(s.ctx, s.cfg.Interval, s.gatherers()...)
		}()
	}
	if s.cfg.State != nil {
		every := s.cfg.CheckEvery
		if every <= 0 {
			every = 2 * time.Second
		}
		local := func(string) bool { return false }
		if s.cfg.LocalInstance != nil {
			local = func(name string) bool { _, ok := s.cfg.LocalInstance(name); return ok }
		}
		r := &health.Runner{St: s.cfg.State, Self: s.cfg.Name, Local: local, Log: s.log, Now: time.Now}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			r.Run(s.ctx, every)
		}()
	}
	return nil
}

// MetricsAddr is the bound MetricsListen address ("" when off).
func (s *Service) MetricsAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// Close stops the sampler, the protocols and the listener, then closes the store.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		s.cancel()
		s.querySvc.Close()
		s.pprofSvc.Close()
		s.wg.Wait()
		s.closeStore()
	})
}

func (s *Service) closeStore() {
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("metrics store close", "err", err)
		}
	}
}

// Registry is the node's registry.
func (s *Service) Registry() *metrics.Registry { return s.reg }

// Store is the local store (nil with NoStore).
func (s *Service) Store() *tsdb.Store { return s.store }

// Engine is the PromQL engine the service evaluates with.
func (s *Service) Engine() *promql.Engine { return s.engine }

// Queryable is the cluster-wide storage: every alive node's store, merged (see
// ClusterQueryable).
func (s *Service) Queryable() storage.Queryable { return &clusterQueryable{s: s} }

// SampleNow appends one sample of the registry at once (tests, and before a clean stop).
func (s *Service) SampleNow(at time.Time) error {
	if s.store == nil {
		return ErrNoStore
	}
	return s.store.Sample(s.ctx, at, s.gatherers()...)
}

// gatherers are what the sampler reads: the registry and the instances' own /metrics.
func (s *Service) gatherers() []prometheus.Gatherer {
	gs := []prometheus.Gatherer{s.reg.Gatherer()}
	if s.scraper != nil {
		gs = append(gs, s.scraper)
	}
	return gs
}

func (s *Service) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg.Gatherer(), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 4})
}

// NewEngine is a PromQL engine with the settings every node uses: 50 million samples
// at most in one evaluation, a 2 minute timeout, the 5 minute lookback, @ and negative
// offsets allowed.
func NewEngine(log *slog.Logger) *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger: log, MaxSamples: 50_000_000, Timeout: DefaultQueryTimeout, LookbackDelta: 5 * time.Minute,
		EnableAtModifier: true, EnableNegativeOffset: true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return DefaultInterval.Milliseconds() },
	})
}

// storeCollector reports the store's own size.
type storeCollector struct{ st *tsdb.Store }

var (
	descAppended = prometheus.NewDesc("constellation_tsdb_samples_appended_total", "Samples appended to the node's metrics store since it started.", nil, nil)
	descHead     = prometheus.NewDesc("constellation_tsdb_head_series", "Series in the store's in-memory head block.", nil, nil)
	descDisk     = prometheus.NewDesc("constellation_tsdb_storage_bytes", "Bytes of the metrics store on disk (blocks, WAL, head chunks).", nil, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descAppended
	ch <- descHead
	ch <- descDisk
}
func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descAppended, prometheus.CounterValue, float64(c.st.Appended()))
	ch <- prometheus.MustNewConstMetric(descHead, prometheus.GaugeValue, float64(c.st.HeadSeries()))
	ch <- prometheus.MustNewConstMetric(descDisk, prometheus.GaugeValue, float64(c.st.DiskBytes()))
}
