// Package balance is the mesh's pure decision library: load-balancing
// policies, locality preference, per-endpoint circuit breakers, outlier
// ejection, a retry budget, retry and hedging policy, and Do, which runs one
// call through all of them. It does no I/O; time (Clock) and randomness
// (math/rand/v2) are injected, so tests run in virtual time and replay.
//
// # Use
//
// One Balancer per service, created with New(Config) and reconfigured with
// Reconfigure (state is kept). For each call:
//
//	res, rep, err := b.Do(ctx, balance.CallInfo{Method: "GET", Key: clientIP,
//		Region: myRegion, Zone: myZone, Timeout: 5 * time.Second, MaxAttempts: 4},
//		endpoints, func(ctx context.Context, ep balance.Endpoint) (balance.Result, error) {
//			resp, err := send(ctx, ep) // wrap "never reached" errors with balance.NotReached
//			if err != nil {
//				return balance.Result{}, err
//			}
//			return balance.Result{Status: resp.StatusCode, Value: resp,
//				Release: func() { resp.Body.Close() }}, nil
//		})
//
// err is a *CallError (errors.Is with ErrDeadline -> 504, ErrNoEndpoint ->
// 503, ErrExhausted -> 502) whose message names every attempt ("deadline 5s
// exceeded after 3 attempts: ep1@node-a timeout (2s), ep2@node-b
// connect_error: refused (1ms), ...") or, when no endpoint is usable, the
// reason per endpoint (down/unhealthy, ejected, breaker open). rep lists the
// attempts of successful calls too (for traces and metrics).
//
// Callers that run their own loop use Pick, which returns a Ticket to be
// completed with Ticket.Done(latency, outcome), plus RecordRequest and
// TryRetry for the budget. Status and Stats expose breaker, ejection,
// latency and budget state; Config.OnEvent reports transitions.
//
// # Endpoints and candidates
//
// The caller passes the service's endpoints on every call (Endpoint: ID,
// Node, Zone, Region, Local, Weight, RTT, Down). State is kept per ID and
// dropped 10 minutes after an endpoint stopped appearing. Endpoints with
// Down set (the caller's health checks failed) are never picked. Endpoints
// whose breaker is open, or that are ejected, are skipped; when only ejected
// endpoints remain they are used anyway (panic mode, as Envoy does).
//
// # Locality
//
// Unless Config.DisableLocality, every policy only considers the best tier
// that holds a usable endpoint: same node (Endpoint.Local), then same zone
// (Request.Zone, within the same region when both carry one), then same
// region, then all. A tier is left as soon as it has no usable endpoint
// (down, open breaker, ejected), so failover to the next tier is immediate.
// Locality is strict: a single healthy local endpoint takes all of this
// node's calls however loaded it is (its breaker and ejection still protect
// it from failures); set DisableLocality to spread calls over the cluster.
//
// # Policies (Config.Policy, default round_robin)
//
//   - round_robin: rotation over the usable endpoints; with unequal weights,
//     nginx's smooth weighted round robin.
//   - least_conn: fewest in-flight requests per unit of weight, ties broken
//     uniformly at random.
//   - random: uniform (weighted) random choice.
//   - ip_hash: rendezvous (highest random weight) hashing of Request.Key
//     (the client IP or any session key) over endpoint IDs, weighted as
//     w/-ln(u). The same key maps to the same endpoint on every node; adding
//     or removing an endpoint only moves the keys that belong to it (about
//     1/n of them). An empty key falls back to random. With locality on,
//     the hash runs over the caller's best tier, so callers on different
//     nodes or zones agree only when their tiers hold the same endpoints
//     (set DisableLocality for cluster-wide stickiness).
//   - p2c_ewma: power of two choices (two distinct random endpoints) on
//     latency*(in-flight+1)/weight, where latency is a peak-sensitive EWMA
//     (Finagle's PeakEwma, Linkerd's balancer): a slower sample replaces the
//     estimate at once, faster ones are averaged in with weight
//     1-exp(-dt/DecayTime), and an idle estimate decays toward 0 so the
//     endpoint gets probed again. DecayTime default 10 s; an unmeasured
//     endpoint starts at Endpoint.RTT or DefaultLatency (default 30 ms).
//   - geo_proximity: the locality tiers (always on for this policy) by
//     region label, then zone, then the lowest RTT (Endpoint.RTT, else the
//     measured latency); endpoints within 20 % (at least 500 us) of the
//     nearest are equally near and share the load by least in-flight.
//     Endpoints of unknown distance rank after measured ones.
//
// # Circuit breaker (Config.Breaker), one per endpoint
//
// Closed -> Open after FailureThreshold (default 5, seed failure_threshold)
// consecutive failures (connect error, timeout, 5xx, transport failure), or
// when FailureRate (default 0: off) of at least MinRequests (default 20)
// requests within Window (default 10 s) failed. Open -> HalfOpen after
// Timeout (default 30 s, seed timeout). HalfOpen admits HalfOpenRequests
// probes (default 3, seed half_open_requests): it closes once that many
// succeeded and reopens on the first failure; a cancelled probe frees its
// slot. Outcomes of requests admitted before a transition are ignored.
//
// # Outlier ejection (Config.Outlier, Envoy style)
//
// Consecutive (default 5) failures eject an endpoint for
// BaseEjectionTime*n (default 30 s; n is the ejection count, which drops by
// one per BaseEjectionTime without ejection) capped at MaxEjectionTime
// (default 300 s). At most MaxEjectionPercent (default 10) of the endpoints
// are ejected at once, at least one when there are two or more.
//
// # Retry budget (Config.Budget, Linkerd/Envoy style)
//
// Over a sliding Window (default 10 s), retries and hedges are allowed while
// retries < MinPerSecond*Window + Ratio*requests (defaults 10/s and 0.2), so
// under a total outage the extra load is bounded by 20 % plus 10/s.
//
// # Retries and deadline (Config.Retry, CallInfo)
//
// A call has one deadline, CallInfo.Timeout (default Retry.Timeout, 5 s),
// covering every attempt and backoff; with the system clock the attempt's
// ctx carries it. At most MaxAttempts (default 3) attempts in all. A
// connect error (the request never reached the endpoint: wrap with
// NotReached) is always retried; timeouts, 5xx and transport failures only
// for idempotent calls (GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or
// CallInfo.Idempotent). Retry n waits a uniform random time in
// [0, min(MaxBackoff, BaseBackoff*2^(n-1))) (full jitter; defaults 25 ms and
// 250 ms) and prefers an endpoint not tried yet by the call. No retry starts
// if its backoff would end past the deadline.
//
// # Hedging (Config.Hedge)
//
// For idempotent calls, when the only attempt in flight has run longer than
// the Quantile (default 0.95) of the service's recent attempt latencies, a
// hedge goes to another endpoint; the first success wins and the other is
// cancelled. At most one hedge is in flight, it counts as an attempt and
// against the retry budget. The quantile comes from a log-bucketed
// histogram (4 % relative error, fixed memory) over the last one to two
// Windows (default 30 s) and is only used after MinSamples (default 20)
// samples; the delay is at least MinDelay (default 1 ms). Hedging targets
// tails: an endpoint slow for more than 5 % of the traffic moves the p95
// itself and is better handled by p2c_ewma or outlier ejection.
package balance
