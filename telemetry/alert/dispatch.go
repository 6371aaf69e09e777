package alert

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

// AttemptRecord is one delivery attempt, kept in the sending node's HistoryRecord.
type AttemptRecord struct {
	At       time.Time     `cbor:"1,keyasint"`
	Rule     string        `cbor:"2,keyasint,omitempty"`
	Status   string        `cbor:"3,keyasint"`
	Attempt  int           `cbor:"4,keyasint"`
	OK       bool          `cbor:"5,keyasint,omitempty"`
	Error    string        `cbor:"6,keyasint,omitempty"`
	Duration time.Duration `cbor:"7,keyasint"`
}

// HistoryRecord is one node's last maxHistory attempts on one channel (replicated, so
// `monitor channel history` on any node shows every node's attempts).
type HistoryRecord struct {
	Channel  string          `cbor:"1,keyasint"`
	Node     string          `cbor:"2,keyasint"`
	Attempts []AttemptRecord `cbor:"3,keyasint"` // oldest first
}

// job is one message for one channel.
type job struct {
	channel string
	msg     message
	start   time.Time // start of the evaluation that produced it (latency)
	done    chan error
}

// notify queues a notification on each of its rule's channels.
func (s *Service) notify(n Notification, start time.Time) {
	for _, ch := range n.Channels {
		j := job{channel: ch, msg: message{Node: s.cfg.Name, Rule: n.Rule, Status: n.Status, Alert: n.Alert}, start: start}
		select {
		case s.jobs <- j:
		default:
			s.log.Error("notification queue full: dropped", "channel", ch, "rule", n.Rule, "status", n.Status)
			s.record(ch, AttemptRecord{At: s.now(), Rule: n.Rule, Status: n.Status, Error: "dropped: the node's notification queue is full"})
		}
	}
}

func (s *Service) worker() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.jobs:
			_, err := s.send(ctx, j.channel, j.msg, s.cfg.Retry, 0)
			if err == nil && !j.start.IsZero() {
				s.m.latency.Observe(time.Since(j.start).Seconds())
			}
			if j.done != nil {
				j.done <- err
			}
		}
	}
}

// send delivers msg over the channel with retries and exponential backoff; every attempt is
// logged and recorded. perAttempt bounds one attempt when set.
func (s *Service) send(ctx context.Context, channel string, msg message, rt Retry, perAttempt time.Duration) (int, error) {
	rc, ok := readOne[ChannelRecord](s.st, CollChannels, channel)
	if !ok || rc.Name != channel {
		err := errors.Join(ErrChannelNotFound, errors.New("channel "+channel+" (named by rule "+msg.Rule+") does not exist"))
		s.log.Warn("notification not sent", "channel", channel, "rule", msg.Rule, "err", err)
		s.record(channel, AttemptRecord{At: s.now(), Rule: msg.Rule, Status: msg.Status, Error: err.Error()})
		return 0, err
	}
	rc, oerr := rc.open(s.cfg.Sealer)
	if oerr != nil {
		s.log.Warn("notification not sent", "channel", channel, "rule", msg.Rule, "err", oerr)
		s.record(channel, AttemptRecord{At: s.now(), Rule: msg.Rule, Status: msg.Status, Error: oerr.Error()})
		return 0, oerr
	}
	wait := rt.Base
	var err error
	for i := 1; i <= rt.Attempts; i++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if perAttempt > 0 {
			actx, cancel = context.WithTimeout(ctx, perAttempt)
		}
		t0 := time.Now()
		err = deliver(actx, s.http, rc, msg)
		cancel()
		a := AttemptRecord{At: s.now(), Rule: msg.Rule, Status: msg.Status, Attempt: i, OK: err == nil, Duration: time.Since(t0)}
		if err != nil {
			a.Error = err.Error()
			s.m.attempts.WithLabelValues(rc.Type, "error").Inc()
			s.log.Warn("notification attempt failed", "channel", channel, "type", rc.Type, "rule", msg.Rule,
				"status", msg.Status, "attempt", i, "of", rt.Attempts, "err", err)
		} else {
			s.m.attempts.WithLabelValues(rc.Type, "ok").Inc()
			s.log.Info("notification sent", "channel", channel, "type", rc.Type, "rule", msg.Rule,
				"status", msg.Status, "attempt", i, "duration", a.Duration)
		}
		s.record(channel, a)
		var perm permanentError
		if err == nil || errors.As(err, &perm) || i == rt.Attempts {
			return i, err
		}
		select {
		case <-ctx.Done():
			return i, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, rt.Max)
	}
	return rt.Attempts, err
}

// record keeps an attempt in this node's bounded history of the channel and replicates it.
func (s *Service) record(channel string, a AttemptRecord) {
	s.mu.Lock()
	h := append(s.history[channel], a)
	if len(h) > maxHistory {
		h = h[len(h)-maxHistory:]
	}
	s.history[channel] = h
	rec := HistoryRecord{Channel: channel, Node: s.cfg.Name, Attempts: append([]AttemptRecord(nil), h...)}
	s.mu.Unlock()
	if err := s.st.Update(func(tx *state.Tx) error {
		if _, _, ok := tx.GetLWW(CollChannels, channel); !ok {
			return nil // a removed or unknown channel: the history stays local (and in the log)
		}
		return put(tx, CollHistory, historyKey(channel, s.cfg.Name), rec)
	}); err != nil {
		s.log.Error("recording a delivery attempt", "channel", channel, "err", err)
	}
}

// History is every node's recorded attempts on a channel, newest first.
func (s *Service) History(channel string) []api.ChannelAttempt {
	var out []api.ChannelAttempt
	seen := map[string]bool{}
	for k, h := range readColl[HistoryRecord](s.st, CollHistory) {
		if !isHistoryOf(k, channel) || h.Channel != channel {
			continue
		}
		seen[h.Node] = true
		for _, a := range slices.Backward(h.Attempts) {
			out = append(out, attemptInfo(channel, h.Node, a))
		}
	}
	s.mu.Lock()
	if !seen[s.cfg.Name] { // attempts on a channel that did not exist are only kept here
		for _, a := range slices.Backward(s.history[channel]) {
			out = append(out, attemptInfo(channel, s.cfg.Name, a))
		}
	}
	s.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out
}

func attemptInfo(channel, node string, a AttemptRecord) api.ChannelAttempt {
	return api.ChannelAttempt{Channel: channel, Node: node, At: a.At, Rule: a.Rule, Status: a.Status,
		Attempt: a.Attempt, OK: a.OK, Error: a.Error, DurationMs: float64(a.Duration.Microseconds()) / 1000}
}

// TestChannel sends a test notification now (at most 3 attempts of at most 15 s).
func (s *Service) TestChannel(ctx context.Context, name string) (api.ChannelTestResult, error) {
	if rc, ok := readOne[ChannelRecord](s.st, CollChannels, name); !ok || rc.Name != name {
		return api.ChannelTestResult{}, ErrChannelNotFound
	}
	now := s.now()
	msg := message{Node: s.cfg.Name, Rule: "constellation-test", Status: "test", Alert: AlertRecord{
		Fingerprint: "0000000000000000", State: api.AlertFiring, ActiveAt: now, FiredAt: now,
		Labels:      map[string]string{"alertname": "constellation-test", "severity": "info", "node": s.cfg.Name},
		Annotations: map[string]string{"message": "Test notification from constellation node " + s.cfg.Name + " for channel " + name},
	}}
	rt := s.cfg.Retry
	rt.Attempts = min(rt.Attempts, 3)
	n, err := s.send(ctx, name, msg, rt, 15*time.Second)
	if rc, _ := readOne[ChannelRecord](s.st, CollChannels, name); err == nil && rc.Type == api.ChannelPagerDuty {
		// close the test incident the trigger opened (same dedup key)
		msg.Status, msg.Alert.State, msg.Alert.ResolvedAt = api.AlertResolved, api.AlertResolved, s.now()
		var m int
		m, err = s.send(ctx, name, msg, rt, 15*time.Second)
		n += m
	}
	r := api.ChannelTestResult{Channel: name, OK: err == nil, Attempts: n}
	if err != nil {
		r.Error = err.Error()
	}
	return r, nil
}
