package liveness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Transport sends best-effort packets to members. The node implements it
// over the p2p host's packet facility; tests use an in-memory one.
//
// SendPacket delivers b to the member to, or fails. It may block until ctx is
// done (the Runner gives every send a deadline and runs sends concurrently),
// must not retain b after returning, and is not retried: SWIM treats a lost
// packet like any other loss. Inbound packets go to Runner.HandlePacket.
type Transport interface {
	SendPacket(ctx context.Context, to string, b []byte) error
}

// RunnerConfig configures a Runner. Transport is required.
type RunnerConfig struct {
	Transport Transport
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives debug lines for decode and send failures. Default: discard.
	Logger *slog.Logger
	// OnEvent is called for every state transition, in order, on the
	// Runner's goroutine; it must not block for long or call Close. Optional.
	OnEvent func(Event)
	// SendTimeout bounds each SendPacket call. Default 1 s.
	SendTimeout time.Duration
	// MaxInflight bounds concurrent sends; packets beyond it are dropped and
	// counted in Stats.SendsDropped. Default 64.
	MaxInflight int
}

// Stats are the Runner's counters (payload bytes, without transport framing).
type Stats struct {
	PacketsSent     uint64
	BytesSent       uint64
	PacketsReceived uint64
	BytesReceived   uint64
	SendErrors      uint64
	SendsDropped    uint64
	DecodeErrors    uint64
}

// Errors returned by Runner methods.
var (
	ErrStarted = errors.New("liveness: runner already started")
	ErrClosed  = errors.New("liveness: runner closed")
)

// Runner drives a Detector with the real clock over a Transport: it ticks the
// detector at its deadlines, handles inbound packets, sends replies
// concurrently and reports events. All methods are safe for concurrent use.
type Runner struct {
	cfg  RunnerConfig
	log  *slog.Logger
	wake chan struct{}      // poke the loop: deadline or pending work changed
	out  chan []Packet      // replies produced outside the loop
	sem  chan struct{}      // in-flight sends
	stop context.CancelFunc // set by Start
	wg   sync.WaitGroup     // the loop and every send goroutine

	mu      sync.Mutex // guards the following fields
	d       *Detector
	pending []Event // events not yet given to OnEvent
	started bool
	closed  bool

	packetsSent, bytesSent, packetsRecv, bytesRecv atomic.Uint64
	sendErrors, sendsDropped, decodeErrors         atomic.Uint64
}

// NewRunner wraps d; the Runner owns it from now on (use the Runner's
// methods, not d's).
func NewRunner(d *Detector, cfg RunnerConfig) (*Runner, error) {
	if d == nil || cfg.Transport == nil {
		return nil, fmt.Errorf("%w: runner needs a detector and a transport", ErrInvalidConfig)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = time.Second
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 64
	}
	return &Runner{
		cfg:  cfg,
		log:  cfg.Logger,
		d:    d,
		wake: make(chan struct{}, 1),
		out:  make(chan []Packet, 256),
		sem:  make(chan struct{}, cfg.MaxInflight),
	}, nil
}

// Start runs the detector until ctx is done or Close is called.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.started {
		return ErrStarted
	}
	r.started = true
	ctx, r.stop = context.WithCancel(ctx)
	r.wg.Add(1)
	go r.loop(ctx)
	return nil
}

// Close stops the loop and waits for in-flight sends. It is safe to call
// more than once, and before Start.
func (r *Runner) Close() error {
	r.mu.Lock()
	r.closed = true
	stop := r.stop
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
	r.wg.Wait()
	return nil
}

// HandlePacket processes one inbound packet from the authenticated peer
// from. It does not retain b. Call it from the transport's receive path.
func (r *Runner) HandlePacket(from string, b []byte) {
	r.packetsRecv.Add(1)
	r.bytesRecv.Add(uint64(len(b)))
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	out, err := r.d.Handle(from, b, r.cfg.Now())
	r.pending = append(r.pending, r.d.Events()...)
	r.mu.Unlock()
	if err != nil {
		r.decodeErrors.Add(1)
		r.log.Debug("liveness: dropping packet", "from", from, "err", err)
		return
	}
	if len(out) > 0 {
		select {
		case r.out <- out:
		default:
			r.sendsDropped.Add(uint64(len(out)))
		}
	}
	r.poke()
}

// AddMember starts tracking an admitted peer.
func (r *Runner) AddMember(id string) error {
	r.mu.Lock()
	err := r.d.AddMember(id, r.cfg.Now())
	r.mu.Unlock()
	r.poke()
	return err
}

// RemoveMember forgets a peer that is no longer admitted.
func (r *Runner) RemoveMember(id string) {
	r.mu.Lock()
	r.d.RemoveMember(id)
	r.mu.Unlock()
}

// Members returns the view of every other member, sorted by ID.
func (r *Runner) Members() []Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.d.Members()
}

// Status returns the view of one member.
func (r *Runner) Status(id string) (Member, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.d.Status(id)
}

// LocalHealth returns the Lifeguard health score (0 is healthy).
func (r *Runner) LocalHealth() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.d.LocalHealth()
}

// Incarnation returns this node's current incarnation.
func (r *Runner) Incarnation() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.d.Incarnation()
}

// Stats returns the counters.
func (r *Runner) Stats() Stats {
	return Stats{
		PacketsSent:     r.packetsSent.Load(),
		BytesSent:       r.bytesSent.Load(),
		PacketsReceived: r.packetsRecv.Load(),
		BytesReceived:   r.bytesRecv.Load(),
		SendErrors:      r.sendErrors.Load(),
		SendsDropped:    r.sendsDropped.Load(),
		DecodeErrors:    r.decodeErrors.Load(),
	}
}

// Leave announces a graceful leave to every live member and waits until the
// announcements were handed to the transport or ctx is done. Keep the
// Runner running briefly afterwards (it keeps answering with the
// announcement), then Close it.
func (r *Runner) Leave(ctx context.Context) error {
	r.mu.Lock()
	pkts := r.d.Leave(r.cfg.Now())
	r.mu.Unlock()
	errs := make([]error, len(pkts))
	var wg sync.WaitGroup
	for i, p := range pkts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.sendOne(ctx, p)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Runner) loop(ctx context.Context) {
	defer r.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		now := r.cfg.Now()
		var out []Packet
		if next, ok := r.d.NextDeadline(); ok && !next.After(now) {
			out = r.d.Tick(now)
		}
		next, ok := r.d.NextDeadline()
		if !ok {
			next = now.Add(time.Hour) // nothing pending: wait for a packet
		}
		events := append(r.pending, r.d.Events()...)
		r.pending = nil
		r.mu.Unlock()

		r.send(ctx, out)
		if r.cfg.OnEvent != nil {
			for _, e := range events {
				r.cfg.OnEvent(e)
			}
		}
		wait := max(next.Sub(r.cfg.Now()), time.Millisecond)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.wake:
		case out := <-r.out:
			r.send(ctx, out)
		}
	}
}

// send hands packets to concurrent send goroutines, dropping what exceeds
// MaxInflight.
func (r *Runner) send(ctx context.Context, pkts []Packet) {
	for _, p := range pkts {
		select {
		case r.sem <- struct{}{}:
		default:
			r.sendsDropped.Add(1)
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.sem }()
			_ = r.sendOne(ctx, p)
		}()
	}
}

func (r *Runner) sendOne(ctx context.Context, p Packet) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SendTimeout)
	defer cancel()
	r.packetsSent.Add(1)
	r.bytesSent.Add(uint64(len(p.Data)))
	if err := r.cfg.Transport.SendPacket(ctx, p.To, p.Data); err != nil {
		r.sendErrors.Add(1)
		r.log.Debug("liveness: send failed", "to", p.To, "err", err)
		return fmt.Errorf("liveness: send to %s: %w", p.To, err)
	}
	return nil
}
