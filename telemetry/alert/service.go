package alert

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/sched"
)

// evalParallel bounds the rules evaluated at once.
const evalParallel = 4

// Members is what alerting needs of membership (membership.Service).
type Members interface {
	Nodes() []api.NodeInfo
	// Settled reports whether this node has caught up with the cluster since it started:
	// until then it evaluates nothing (it could hold a stale firing state).
	Settled() bool
}

// Querier evaluates PromQL over the cluster's metrics (node gives it the cluster-wide
// querier; EngineQuerier adapts a promql.Engine over a storage.Queryable).
type Querier interface {
	// Instant evaluates expr at ts; a scalar result is one sample without labels.
	Instant(ctx context.Context, expr string, ts time.Time) (promql.Vector, error)
	// Range evaluates expr over [start, end] every step (anomaly rules' history).
	Range(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error)
}

// Retry is the delivery retry policy: Attempts tries, waiting Base, 2*Base, ... (at most
// Max) between them.
type Retry struct {
	Attempts int
	Base     time.Duration
	Max      time.Duration
}

// Config configures alerting.
type Config struct {
	Name string // this node's name (owner election is over node names)
	// Interval is the default evaluation interval of a rule (default 15 s).
	Interval time.Duration
	// Tick is how often the runner looks for due rules and ownership changes (default 1 s,
	// at most Interval).
	Tick  time.Duration
	Retry Retry // default 5 attempts, 1 s, at most 30 s
	// QueryTimeout bounds one evaluation (default 30 s).
	QueryTimeout time.Duration
	Metrics      prometheus.Registerer // nil: a private registry
	HTTPClient   *http.Client          // nil: one with a 10 s timeout
	Now          func() time.Time      // nil: time.Now
	// Replicate, when set, pushes this node's state to the alive members and returns how
	// many took it (node: one anti-entropy exchange each). The owner calls it after writing
	// a notification mark and before the message leaves, so a new owner taking over right
	// after a delivery has the mark and does not send again. Nil: gossip alone carries it.
	Replicate func(ctx context.Context) int
	// Sealer encrypts channel credentials before they enter the replicated state (nil:
	// they are stored in clear, readable by members only and masked on every read).
	Sealer Sealer
}

// Sealer seals and opens small values for a purpose (the node's secrets key; see
// security.Service.Seal).
type Sealer interface {
	Seal(purpose string, value []byte) ([]byte, error)
	Open(purpose string, sealed []byte) ([]byte, error)
}

// Service is the node's alerting: it evaluates the rules this node owns, keeps their
// replicated firing state, and delivers notifications.
type Service struct {
	cfg     Config
	ctx     context.Context
	st      *state.Store
	members Members
	q       Querier
	log     *slog.Logger
	http    *http.Client
	now     func() time.Time
	m       *metrics

	tickMu sync.Mutex // serialises Tick (the loop, tests)

	mu       sync.Mutex
	lastEval map[string]time.Time // rule -> last evaluation by this node
	owned    map[string]bool      // rules this node evaluated at its last tick
	written  map[string]time.Time // rule -> last state write
	history  map[string][]AttemptRecord
	closed   bool

	jobs   chan job
	kickCh chan struct{}
	stop   chan struct{}
	wg     sync.WaitGroup
}

// New builds the alerting service: routes on srv, state in st. ctx is the node's shutdown
// signal. q may be nil until a querier exists (every evaluation then fails with an error
// shown on the rule).
func New(ctx context.Context, cfg Config, st *state.Store, members Members, q Querier, srv *httpapi.Server, log *slog.Logger) *Service {
	if cfg.Interval <= 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	cfg.Tick = min(cfg.Tick, cfg.Interval)
	if cfg.Retry.Attempts <= 0 {
		cfg.Retry.Attempts = 5
	}
	if cfg.Retry.Base <= 0 {
		cfg.Retry.Base = time.Second
	}
	if cfg.Retry.Max <= 0 {
		cfg.Retry.Max = 30 * time.Second
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 30 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Service{cfg: cfg, ctx: ctx, st: st, members: members, q: q, log: log.With("component", "alert"),
		http: hc, now: cfg.Now, m: newMetrics(cfg.Metrics),
		lastEval: map[string]time.Time{}, owned: map[string]bool{}, written: map[string]time.Time{},
		history: map[string][]AttemptRecord{},
		jobs:    make(chan job, 1024), kickCh: make(chan struct{}, 1), stop: make(chan struct{})}
	st.Watch(func([]crdt.Change) { s.kick() }, CollRules, CollSilences)
	if srv != nil {
		s.registerRoutes(srv.Handle)
	}
	return s
}

// Start runs the evaluation loop and the delivery workers until Close.
func (s *Service) Start() error {
	s.wg.Add(1)
	go s.loop()
	for range 4 {
		s.wg.Add(1)
		go s.worker()
	}
	return nil
}

// Close stops the loop and the workers (deliveries in flight are cancelled) and waits.
func (s *Service) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
}

func (s *Service) kick() {
	select {
	case s.kickCh <- struct{}{}:
	default:
	}
}

func (s *Service) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.kickCh:
		}
		s.Tick()
	}
}

// aliveNames are the names of the nodes not dead and not left (the owner candidates).
func (s *Service) aliveNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range s.members.Nodes() {
		if n.Status == api.StatusDead || n.Status == api.StatusLeft || seen[n.Name] {
			continue
		}
		seen[n.Name] = true
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

// Owner is the node that evaluates a rule: the rendezvous-hash winner among alive nodes.
func Owner(rule string, alive []string) string { return sched.Owner("alert/"+rule, alive) }

// ---- reading replicated records ----

func readColl[T any](st *state.Store, coll string) map[string]T {
	raw := map[string][]byte{}
	st.View(func(v *state.View) {
		for _, k := range v.Keys(coll) {
			if b, _, ok := v.GetLWW(coll, k); ok {
				raw[k] = b
			}
		}
	})
	out := make(map[string]T, len(raw))
	for k, b := range raw {
		var r T
		if state.Decode(b, &r) == nil {
			out[k] = r
		}
	}
	return out
}

func readOne[T any](st *state.Store, coll, key string) (T, bool) {
	var b []byte
	var ok bool
	st.View(func(v *state.View) { b, _, ok = v.GetLWW(coll, key) })
	var r T
	if !ok || state.Decode(b, &r) != nil {
		return r, false
	}
	return r, true
}

func (s *Service) rules() map[string]RuleRecord {
	out := readColl[RuleRecord](s.st, CollRules)
	for k, r := range out {
		if r.Name != k {
			delete(out, k)
		}
	}
	return out
}

func (s *Service) silences() []SilenceRecord {
	m := readColl[SilenceRecord](s.st, CollSilences)
	out := make([]SilenceRecord, 0, len(m))
	for k, r := range m {
		if r.ID == k {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartsAt.Before(out[j].StartsAt) })
	return out
}

func put(tx *state.Tx, coll, key string, v any) error {
	b, err := state.Encode(v)
	if err != nil {
		return err
	}
	return tx.Put(coll, key, b)
}

// ---- evaluation ----

// Tick evaluates every due rule this node owns (the loop calls it; tests call it directly).
func (s *Service) Tick() {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	if !s.members.Settled() {
		return
	}
	now := s.now()
	alive := s.aliveNames()
	rules := s.rules()
	sil := s.silences()
	s.mu.Lock()
	for name := range s.owned {
		if _, ok := rules[name]; !ok || Owner(name, alive) != s.cfg.Name {
			delete(s.owned, name) // handed over or removed: the next owner reads the replicated state
			delete(s.lastEval, name)
			delete(s.written, name)
			s.m.firing.DeleteLabelValues(name)
		}
	}
	var due []RuleRecord
	for name, r := range rules {
		if Owner(name, alive) != s.cfg.Name {
			continue
		}
		iv := r.Interval
		if iv == 0 {
			iv = s.cfg.Interval
		}
		if last, ok := s.lastEval[name]; ok && now.Sub(last) < iv {
			continue
		}
		if !s.owned[name] {
			s.log.Info("evaluating alert rule", "rule", name)
		}
		s.owned[name] = true
		s.lastEval[name] = now
		due = append(due, r)
	}
	s.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].Name < due[j].Name })
	// Rules are independent: up to evalParallel evaluate at once (a slow query does not
	// hold back the others); Tick returns when all are done.
	sem := make(chan struct{}, evalParallel)
	var wg sync.WaitGroup
	for _, r := range due {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.evaluate(r, now, sil)
		}()
	}
	wg.Wait()
	s.gcSilences(now, alive, sil)
}

// samples evaluates a rule's expression into alert candidates.
func (s *Service) samples(ctx context.Context, r RuleRecord, now time.Time) ([]Sample, error) {
	if s.q == nil {
		return nil, fmt.Errorf("no metrics querier on this node")
	}
	if r.Kind == api.RuleAnomaly && r.Anomaly != nil {
		p := *r.Anomaly
		if p.Step <= 0 || p.Window <= 0 || p.Window/p.Step > maxAnomalyPoints {
			return nil, fmt.Errorf("anomaly window %s / step %s out of bounds", p.Window, p.Step)
		}
		mat, err := s.q.Range(ctx, r.Expr, now.Add(-p.Window), now, p.Step)
		if err != nil {
			return nil, err
		}
		return anomalySamples(p, mat, now), nil
	}
	vec, err := s.q.Instant(ctx, r.Expr, now)
	if err != nil {
		return nil, err
	}
	out := make([]Sample, 0, len(vec))
	for _, x := range vec {
		out = append(out, Sample{Labels: x.Metric.Map(), Value: x.F})
	}
	return out, nil
}

// anomalySamples judges the latest point of every series (it must be at most two steps
// old) against the points before it.
func anomalySamples(p AnomalyParams, mat promql.Matrix, now time.Time) []Sample {
	var out []Sample
	for _, series := range mat {
		n := len(series.Floats)
		if n == 0 {
			continue
		}
		pts := make([]Point, n)
		for i, f := range series.Floats {
			pts[i] = Point{T: time.UnixMilli(f.T), V: f.F}
		}
		cur := pts[n-1]
		if now.Sub(cur.T) > 2*p.Step {
			continue
		}
		v := p.Judge(pts[:n-1], cur)
		if v.Anomalous {
			out = append(out, Sample{Labels: series.Metric.Map(), Value: cur.V, Extra: anomalyExtra(v)})
		}
	}
	return out
}

func (s *Service) evaluate(r RuleRecord, now time.Time, sil []SilenceRecord) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.QueryTimeout)
	defer cancel()
	t0 := time.Now()
	smp, err := s.samples(ctx, r, now)
	s.m.evals.Inc()
	s.m.evalSeconds.Observe(time.Since(t0).Seconds())
	if err != nil {
		s.m.evalFailures.Inc()
		s.log.Warn("alert rule evaluation failed", "rule", r.Name, "err", err)
	}
	var qf QueryFunc
	if s.q != nil {
		qf = s.q.Instant
	}
	prev, _ := readOne[StateRecord](s.st, CollState, r.Name)
	next, notes := Step(prev, Input{Rule: r, Samples: smp, Err: err, Now: now, Silenced: silencer(sil, now),
		Expand: func(text string, l map[string]string, v float64) string {
			return expandTemplate(ctx, text, l, v, now, qf)
		}})
	next.Owner = s.cfg.Name
	next, notes = fitRecord(next, notes)
	s.mu.Lock()
	last := s.written[r.Name]
	s.mu.Unlock()
	if len(notes) > 0 || changed(prev, next) || now.Sub(last) >= time.Minute {
		// The notifications are recorded (NotifiedAt, ResolvedSent) before they leave: a
		// new owner reading this record never sends them again.
		werr := s.st.Update(func(tx *state.Tx) error {
			// a rule removed meanwhile leaves no state behind
			if _, _, ok := tx.GetLWW(CollRules, r.Name); !ok {
				return ErrRuleNotFound
			}
			return put(tx, CollState, r.Name, next)
		})
		if werr != nil {
			if werr != ErrRuleNotFound {
				s.log.Error("writing alert state", "rule", r.Name, "err", werr)
			}
			return
		}
		s.mu.Lock()
		s.written[r.Name] = now
		s.mu.Unlock()
	}
	firing := 0
	for _, a := range next.Alerts {
		if a.State == api.AlertFiring {
			firing++
		}
	}
	s.m.firing.WithLabelValues(r.Name).Set(float64(firing))
	if len(notes) > 0 && s.cfg.Replicate != nil {
		// The mark must be on another member before the message leaves: gossip is
		// fire-and-forget, and an owner killed right after sending would otherwise leave
		// its successor without the mark (a duplicate). When no member takes it (a lone
		// node, a partition) the message still goes: no other owner can see the rule then.
		pctx, pcancel := context.WithTimeout(s.ctx, replicateTimeout)
		if n := s.cfg.Replicate(pctx); n == 0 && len(s.members.Nodes()) > 1 {
			s.log.Warn("alert notification mark reached no other member before delivery", "rule", r.Name)
		}
		pcancel()
	}
	for _, n := range notes {
		s.notify(n, t0)
	}
}

// replicateTimeout bounds the push of a notification mark before delivery.
const replicateTimeout = 2 * time.Second

// fitRecord trims a state record that would not replicate (over state.MaxRecordBytes:
// many alerts with long annotations) to the alerts that fit, firing ones first, and drops
// the notifications of the alerts left out (they were not recorded, so a later evaluation
// sends them if they then fit).
func fitRecord(next StateRecord, notes []Notification) (StateRecord, []Notification) {
	if _, err := state.Encode(next); err == nil {
		return next, notes
	}
	all := next.Alerts
	sort.SliceStable(all, func(i, j int) bool { return all[i].State == api.AlertFiring && all[j].State != api.AlertFiring })
	n := len(all)
	for n > 0 {
		n /= 2
		next.Alerts = all[:n]
		if _, err := state.Encode(next); err == nil {
			break
		}
	}
	next.LastError = fmt.Sprintf("the rule's %d alerts do not fit a replicated record: kept %d (shorten its annotations or narrow its expression)", len(all), n)
	kept := map[string]bool{}
	for _, a := range next.Alerts {
		kept[a.Fingerprint] = true
	}
	sort.Slice(next.Alerts, func(i, j int) bool { return next.Alerts[i].Fingerprint < next.Alerts[j].Fingerprint })
	var out []Notification
	for _, n := range notes {
		if kept[n.Alert.Fingerprint] {
			out = append(out, n)
		}
	}
	return next, out
}

// changed reports a change worth replicating: any alert's state, notification, silence or
// membership (values and annotations alone are refreshed every minute).
func changed(a, b StateRecord) bool {
	if len(a.Alerts) != len(b.Alerts) || a.LastError != b.LastError || a.Owner != b.Owner {
		return true
	}
	for i := range a.Alerts {
		x, y := a.Alerts[i], b.Alerts[i]
		if x.Fingerprint != y.Fingerprint || x.State != y.State || !x.NotifiedAt.Equal(y.NotifiedAt) ||
			x.ResolvedSent != y.ResolvedSent || x.Silenced != y.Silenced {
			return true
		}
	}
	return false
}

// gcSilences removes silences expired for silenceKeep; one node (the owner of a fixed key)
// does it.
func (s *Service) gcSilences(now time.Time, alive []string, sil []SilenceRecord) {
	if Owner("silence-gc", alive) != s.cfg.Name {
		return
	}
	var old []string
	for _, x := range sil {
		if now.Sub(x.EndsAt) > silenceKeep {
			old = append(old, x.ID)
		}
	}
	if len(old) == 0 {
		return
	}
	_ = s.st.Update(func(tx *state.Tx) error {
		for _, id := range old {
			if err := tx.Remove(CollSilences, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// ---- metrics ----

type metrics struct {
	evals, evalFailures prometheus.Counter
	evalSeconds         prometheus.Histogram
	firing              *prometheus.GaugeVec
	attempts            *prometheus.CounterVec
	latency             prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		evals: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_alert_evaluations_total",
			Help: "Alert rule evaluations run by this node."}),
		evalFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_alert_evaluation_failures_total",
			Help: "Alert rule evaluations that failed (query error)."}),
		evalSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "constellation_alert_evaluation_duration_seconds",
			Help: "Time to evaluate one alert rule's expression.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
		firing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "constellation_alert_firing",
			Help: "Firing alerts of the rules this node evaluates."}, []string{"rule"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_alert_notification_attempts_total",
			Help: "Notification delivery attempts by channel type and result."}, []string{"type", "result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "constellation_alert_notification_latency_seconds",
			Help: "From the start of the evaluation to a delivered notification.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
	}
	for _, c := range []prometheus.Collector{m.evals, m.evalFailures, m.evalSeconds, m.firing, m.attempts, m.latency} {
		if err := reg.Register(c); err != nil {
			if _, dup := err.(prometheus.AlreadyRegisteredError); !dup {
				panic(err)
			}
		}
	}
	return m
}

// alertInfo converts a replicated alert.
func alertInfo(rule, owner string, a AlertRecord) api.AlertInfo {
	return api.AlertInfo{Rule: rule, Fingerprint: a.Fingerprint, State: a.State, Severity: a.Labels["severity"],
		Labels: a.Labels, Annotations: a.Annotations, Value: a.Value, ActiveAt: a.ActiveAt, FiredAt: a.FiredAt,
		ResolvedAt: a.ResolvedAt, NotifiedAt: a.NotifiedAt, Silenced: a.Silenced, Owner: owner}
}

func historyKey(channel, node string) string { return channel + "/" + node }

func isHistoryOf(key, channel string) bool { return strings.HasPrefix(key, channel+"/") }
