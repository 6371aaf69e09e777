package mesh

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/rads-lang/constellation/api"
)

// healthCounter is the pure health state of one endpoint: consecutive results against
// the thresholds. A new endpoint is unknown (not routed to) until its first passing check.
type healthCounter struct {
	healthy, known bool
	okRun, failRun int
}

// observe records one check and reports whether the health changed.
func (h *healthCounter) observe(ok bool, healthyThreshold, unhealthyThreshold int) bool {
	if ok {
		h.okRun++
		h.failRun = 0
	} else {
		h.failRun++
		h.okRun = 0
	}
	switch {
	case !h.known:
		h.known, h.healthy = true, ok
		return true
	case h.healthy && !ok && h.failRun >= unhealthyThreshold:
		h.healthy = false
		return true
	case !h.healthy && ok && h.okRun >= healthyThreshold:
		h.healthy = true
		return true
	}
	return false
}

// checker runs the health checks of one local endpoint.
type checker struct {
	m      *Service
	key    string
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{}
}

// syncChecks starts a checker for every local endpoint and stops those of endpoints gone.
func (m *Service) syncChecks() {
	ix := m.idx.Load()
	if ix == nil {
		return
	}
	m.mu.Lock()
	if m.closed || m.hop == nil { // not started yet
		m.mu.Unlock()
		return
	}
	var stop []*checker
	for k, c := range m.checks {
		if _, ok := ix.byKey[k]; !ok {
			delete(m.checks, k)
			stop = append(stop, c)
		}
	}
	for k, e := range ix.byKey {
		if e.Peer != m.self || m.checks[k] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(m.ctx)
		c := &checker{m: m, key: k, cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1)}
		m.checks[k] = c
		go c.run(ctx)
	}
	m.mu.Unlock()
	for _, c := range stop {
		c.close()
	}
}

func (c *checker) close() {
	c.cancel()
	<-c.done
}

func (c *checker) run(ctx context.Context) {
	defer close(c.done)
	var h healthCounter
	if e, ok := c.m.idx.Load().byKey[c.key]; ok && e.Rec.Reason != "not checked yet" {
		h.known, h.healthy = true, e.Rec.Healthy
	}
	t := time.NewTimer(0)
	defer t.Stop()
	var last time.Time
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
			kicked = true
		}
		e, ok := c.m.idx.Load().byKey[c.key]
		if !ok {
			return
		}
		cfg, _ := c.m.serviceConfig(e.Rec.Namespace, e.Rec.Service)
		// Wake at least every second so that a shorter interval configured meanwhile
		// applies at once.
		interval := time.Duration(cfg.HealthIntervalS) * time.Second
		if !kicked && !last.IsZero() && time.Since(last) < interval {
			t.Reset(min(time.Second, interval-time.Since(last)))
			continue
		}
		last = time.Now()
		okNow, why := c.m.checkOnce(ctx, e, time.Duration(cfg.HealthTimeoutMs)*time.Millisecond)
		if ctx.Err() != nil {
			return
		}
		changed := h.observe(okNow, cfg.HealthyThreshold, cfg.UnhealthyThreshold)
		if e.Rec.Healthy != h.healthy || changed || !h.healthy && e.Rec.Reason != why && why != "" {
			reason := ""
			if !h.healthy {
				reason = why
			}
			c.m.setHealth(c.key, h.healthy, reason)
		}
		t.Reset(min(time.Second, interval))
	}
}

func (m *Service) serviceConfig(ns, name string) (ServiceRecord, bool) {
	se := m.idx.Load().services[ns+"/"+name]
	if se == nil {
		return ServiceRecord{}.withDefaults(), false
	}
	return se.cfg.withDefaults(), true
}

// checkOnce runs one check: the instance must run; then an exec check (exit 0 passes),
// an HTTP GET of the health path (2xx/3xx passes) or a TCP connect.
func (m *Service) checkOnce(ctx context.Context, e Endpoint, timeout time.Duration) (bool, string) {
	if e.Rec.Instance != "" {
		in, ok := m.insts.LookupInstance(e.Rec.Instance)
		if !ok || in.NodeID != m.self.String() {
			return false, "instance " + e.Rec.Instance + " is gone"
		}
		if in.Status != api.InstanceRunning {
			return false, "instance " + e.Rec.Instance + " is " + in.Status
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if isExecCheck(e.Rec.HealthCheck) {
		if !m.cfg.ExecChecks { // a deployment's check, or one registered elsewhere
			return false, errExecOff(m.cfg.Name).Error()
		}
		return execCheck(ctx, e)
	}
	if e.Rec.HealthCheck == "" || e.Rec.Protocol == "tcp" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", e.Addr())
		if err != nil {
			return false, "tcp connect: " + shortErr(err)
		}
		c.Close()
		return true, ""
	}
	scheme := "http"
	if e.Rec.TLS {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+e.Addr()+e.Rec.HealthCheck, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "constellation-mesh-health")
	resp, err := m.healthClient().Do(req)
	if err != nil {
		return false, "GET " + e.Rec.HealthCheck + ": " + shortErr(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return false, fmt.Sprintf("GET %s: status %d", e.Rec.HealthCheck, resp.StatusCode)
	}
	return true, ""
}

func (m *Service) healthClient() *http.Client {
	var tc *tls.Config
	if t := m.tlsConf.Load(); t != nil {
		tc = t.client
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func shortErr(err error) string {
	var op *net.OpError
	if e, ok := err.(*net.OpError); ok {
		op = e
		return op.Err.Error()
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// setHealth writes a local endpoint's health (only on a change) and publishes an event.
func (m *Service) setHealth(key string, healthy bool, reason string) {
	e, ok := m.idx.Load().byKey[key]
	if !ok || e.Peer != m.self || e.Rec.Healthy == healthy && e.Rec.Reason == reason {
		return
	}
	rec := e.Rec
	rec.Healthy, rec.Reason, rec.CheckedAt = healthy, reason, m.now().UnixMilli()
	if err := m.putEndpoint(key, rec); err != nil {
		m.log.Warn("mesh: write endpoint health", "endpoint", e.ID(), "err", err)
		return
	}
	health := "unhealthy"
	if healthy {
		health = "healthy"
	}
	m.log.Info("mesh endpoint health", "service", rec.Service, "endpoint", e.ID(), "health", health, "reason", reason)
	if m.bus != nil {
		b, _ := json.Marshal(m.apiEndpoint(Endpoint{Key: key, Peer: m.self, Rec: rec}))
		m.bus.Publish(api.Event{Type: api.EventMeshHealth, Data: b})
	}
}

// followInstances follows instance events: a local instance that stops or dies marks its
// endpoints unhealthy at once, one that runs again is checked at once, a removed one loses
// its endpoints; deployment instances are registered when they run.
func (m *Service) followInstances() {
	defer m.wg.Done()
	if m.bus == nil {
		return
	}
	ch, cancel := m.bus.Subscribe(0, false)
	defer cancel()
	m.syncDeployments()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.syncDeployments()
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if ev.Type != api.EventInstance || ev.Node == nil || ev.Node.ID != m.self.String() {
				continue
			}
			var ie api.InstanceEvent
			if json.Unmarshal(ev.Data, &ie) != nil {
				continue
			}
			m.instanceChanged(ie.Name, ie.Status)
		}
	}
}

func (m *Service) instanceChanged(name, status string) {
	switch status {
	case "removed":
		m.detachSocket(name)
	case api.InstanceRunning:
		m.attachSocket(name)
	}
	ix := m.idx.Load()
	var gone []string
	for k, e := range ix.byKey {
		if e.Peer != m.self || e.Rec.Instance != name {
			continue
		}
		switch status {
		case "removed":
			gone = append(gone, k)
		case api.InstanceRunning:
			m.mu.Lock()
			if c := m.checks[k]; c != nil {
				select {
				case c.kick <- struct{}{}:
				default:
				}
			}
			m.mu.Unlock()
		default:
			m.setHealth(k, false, "instance "+name+" is "+status)
		}
	}
	if len(gone) > 0 {
		_ = m.removeEndpoints(gone)
	}
	if status == api.InstanceRunning {
		m.registerDeployment(name)
	}
}

// syncDeployments registers running local deployment instances that ask for a service
// and removes deployment endpoints whose instance is gone.
func (m *Service) syncDeployments() {
	if m.deps == nil {
		return
	}
	for _, e := range m.idx.Load().byKey {
		if e.Peer != m.self || e.Rec.Deployment == "" {
			continue
		}
		if _, ok := m.insts.LookupInstance(e.Rec.Instance); !ok {
			_ = m.removeEndpoints([]string{e.Key})
		}
	}
	for _, in := range m.localInstances() {
		m.registerDeployment(in)
		if i, ok := m.insts.LookupInstance(in); ok && i.Status == api.InstanceRunning {
			m.attachSocket(in)
		}
	}
}

func (m *Service) localInstances() []string {
	if l, ok := m.insts.(interface{ LocalInstances() []string }); ok {
		return l.LocalInstances()
	}
	return nil
}

func (m *Service) registerDeployment(instance string) {
	if m.deps == nil {
		return
	}
	ds, ok := m.deps.ServiceOf(instance)
	if !ok || ds.Service == "" {
		return
	}
	in, ok := m.insts.LookupInstance(instance)
	if !ok || in.NodeID != m.self.String() {
		return
	}
	ns := ds.Namespace
	if ns == "" {
		ns = api.DefaultNamespace
	}
	key := endpointKey(m.self.String(), ns, ds.Service, instance)
	if _, ok := m.idx.Load().byKey[key]; ok {
		return
	}
	host, why := instanceHost(in)
	if host == "" {
		m.log.Warn("mesh: deployment instance not registered", "instance", instance, "why", why)
		return
	}
	proto := ds.Protocol
	if proto == "" {
		proto = "http"
	}
	rec := EndpointRecord{Service: ds.Service, Namespace: ns, Protocol: proto, Port: ds.Port, Host: host,
		HealthCheck: ds.HealthCheck, Instance: instance, Node: m.cfg.Name, NodeID: m.self.String(),
		Deployment: ds.Deployment, Labels: m.cfg.Labels, Reason: "not checked yet", CheckedAt: m.now().UnixMilli()}
	if err := m.putEndpoint(key, rec); err != nil {
		m.log.Warn("mesh: register deployment instance", "instance", instance, "err", err)
	}
}
