package p2p

// Service: the one way cluster protocols talk over streams. A protocol registers a
// handler through the member-only host (streams from non-members are reset before it
// runs), and both sides exchange frames:
//
//   frame = uvarint(len) || len bytes        len <= the receiver's MaxFrame
//
// A frame is raw bytes or one CBOR value (WriteMsg/ReadMsg: canonical encoding, strict
// decoding with limits). A stream carries any sequence of frames in each direction; the
// usual shapes are request/response (Call: one frame each way) and a streamed response
// (Open, then frames until the server closes its side: `logs -f` forwarding). A server
// signals a failure by resetting the stream (its handler returns an error) or, better,
// by a frame the protocol defines for errors.
//
// Every stream is put in the resource manager's service scope "constellation/<name>",
// and the memory of each inbound frame is reserved on the stream's scope while the
// frame is held (until the next read or the end of the stream). Reads and writes have
// deadlines. Close removes the handler first, cancels the handlers' contexts, resets their
// streams and waits for them to return.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// MaxServiceFrame is the largest MaxFrame a service may set: the memory one stream may
// reserve under the resource manager's default limits. Move larger data in several frames.
const MaxServiceFrame = 16 << 20

// ServiceConfig configures a Service. Zero values take the documented defaults.
type ServiceConfig struct {
	// MaxFrame bounds one inbound frame, on both sides (default 1 MiB, at most
	// MaxServiceFrame). A larger frame fails the read with ErrTooLarge and resets the stream.
	MaxFrame int
	// ReadTimeout bounds each frame read on the server (default 10s), and on the client
	// when Call's ctx has no deadline. Open's streams have none unless set (SetReadTimeout):
	// a streamed response may be quiet for long; cancel its ctx to stop it.
	ReadTimeout time.Duration
	// WriteTimeout bounds each frame write, on both sides (default 30s).
	WriteTimeout time.Duration
	// DialTimeout bounds opening a stream (connecting and admission included) when the
	// caller's ctx has no deadline (default 10s).
	DialTimeout time.Duration
}

func (c ServiceConfig) withDefaults() ServiceConfig {
	if c.MaxFrame == 0 {
		c.MaxFrame = 1 << 20
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	return c
}

func (c ServiceConfig) validate(name string) error {
	switch {
	case c.MaxFrame < 0 || c.MaxFrame > MaxServiceFrame:
		return fmt.Errorf("%w: service %s: MaxFrame %d outside 1..%d (the memory one stream may reserve); send larger data in several frames", ErrConfig, name, c.MaxFrame, MaxServiceFrame)
	case c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.DialTimeout < 0:
		return fmt.Errorf("%w: service %s: timeouts must be >= 0 (0 = default)", ErrConfig, name)
	}
	return nil
}

// Handler serves one inbound stream from an admitted member. ctx ends when the service
// closes (and, after s.CancelOnRemoteClose, when the peer closes or resets). Returning nil
// closes the stream gracefully (what was written is delivered); an error resets it. The
// handler must return once ctx is done.
type Handler func(ctx context.Context, s *Stream) error

// Service is one cluster protocol: its handler (if any) and its client side.
type Service struct {
	h       *Host
	name    string
	scope   string // resource manager service name
	pid     protocol.ID
	cfg     ServiceConfig
	handler Handler

	ctx    context.Context // cancelled by Close; parent of every stream's context
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed and orders wg.Add before Close's wg.Wait
	closed bool
	wg     sync.WaitGroup // in-flight handlers and their watchers
}

// NewService registers the protocol ProtocolID(name) (e.g. "instances/2.0.0") served by
// handler for admitted members only; handler nil makes a client-only service. Close it
// before the host closes (Host.Close closes the services still open).
func (h *Host) NewService(name string, cfg ServiceConfig, handler Handler) (*Service, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: service name is empty; use NAME/VERSION like \"instances/2.0.0\"", ErrConfig)
	}
	if err := cfg.validate(name); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	svc := &Service{h: h, name: name, scope: "constellation/" + name, pid: h.ProtocolID(name), cfg: cfg, handler: handler}
	svc.ctx, svc.cancel = context.WithCancel(h.ctx)
	h.mu.Lock()
	if _, dup := h.services[svc.pid]; dup {
		h.mu.Unlock()
		svc.cancel()
		return nil, fmt.Errorf("%w: service %s is already registered", ErrConfig, name)
	}
	h.services[svc.pid] = svc
	h.mu.Unlock()
	if handler != nil && slices.Contains(h.h.Mux().Protocols(), svc.pid) {
		h.mu.Lock()
		delete(h.services, svc.pid)
		h.mu.Unlock()
		svc.cancel()
		return nil, fmt.Errorf("%w: protocol %s already has a handler", ErrConfig, svc.pid)
	}
	if handler != nil {
		h.mh.SetStreamHandler(svc.pid, svc.serve)
	}
	return svc, nil
}

// Protocol is the service's protocol ID.
func (svc *Service) Protocol() protocol.ID { return svc.pid }

// Close removes the handler (new streams are refused), cancels the contexts of in-flight
// handlers and client streams, resets their streams and waits for the handlers to
// return. It is safe to call twice.
func (svc *Service) Close() error {
	svc.mu.Lock()
	if svc.closed {
		svc.mu.Unlock()
		return nil
	}
	svc.closed = true
	svc.mu.Unlock()
	if svc.handler != nil {
		svc.h.h.RemoveStreamHandler(svc.pid)
	}
	svc.cancel()
	svc.wg.Wait()
	svc.h.mu.Lock()
	delete(svc.h.services, svc.pid)
	svc.h.mu.Unlock()
	return nil
}

// track counts one goroutine of the service unless it is closed.
func (svc *Service) track() bool {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.closed {
		return false
	}
	svc.wg.Add(1)
	return true
}

func (svc *Service) serve(ns network.Stream) {
	if !svc.track() {
		ns.Reset()
		return
	}
	defer svc.wg.Done()
	s, err := svc.wrap(ns, svc.cfg.ReadTimeout)
	if err != nil {
		svc.h.log.Debug("service stream refused", "service", svc.name, "peer", ns.Conn().RemotePeer(), "err", err)
		ns.Reset()
		return
	}
	if err := svc.handler(s.ctx, s); err != nil {
		if svc.ctx.Err() == nil {
			svc.h.log.Debug("service handler failed", "service", svc.name, "peer", s.Peer(), "err", err)
		}
		s.Reset()
		return
	}
	s.Close()
}

// wrap sets the stream's resource scope and ties it to the service's lifetime.
func (svc *Service) wrap(ns network.Stream, readTimeout time.Duration) (*Stream, error) {
	if err := ns.Scope().SetService(svc.scope); err != nil {
		return nil, fmt.Errorf("p2p: service %s: resource manager: %w", svc.name, err)
	}
	s := &Stream{s: ns, br: bufio.NewReaderSize(ns, 4096), svc: svc, readTimeout: readTimeout}
	s.ctx, s.cancel = context.WithCancel(svc.ctx)
	s.stop = context.AfterFunc(s.ctx, func() { ns.Reset() })
	return s, nil
}

// Open opens a stream to member p (connecting and waiting for admission if needed). The
// stream is reset when ctx ends or the service closes; Close it when done.
func (svc *Service) Open(ctx context.Context, p peer.ID) (*Stream, error) {
	if svc.ctx.Err() != nil {
		return nil, fmt.Errorf("p2p: service %s: %w", svc.name, ErrClosed)
	}
	dctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		dctx, cancel = context.WithTimeout(ctx, svc.cfg.DialTimeout)
	}
	ns, err := svc.h.mh.NewStream(dctx, p, svc.pid)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("p2p: service %s: open stream to %s: %w", svc.name, p, err)
	}
	s, err := svc.wrap(ns, 0)
	if err != nil {
		ns.Reset()
		return nil, err
	}
	// The caller's ctx ends the stream too.
	stopCaller := context.AfterFunc(ctx, s.cancel)
	prev := s.stop
	s.stop = func() bool { stopCaller(); return prev() }
	return s, nil
}

// Call sends one request frame to p and returns the one response frame (request/response
// protocols). Its deadline is ctx's, or ReadTimeout for the response when ctx has none.
func (svc *Service) Call(ctx context.Context, p peer.ID, req []byte) ([]byte, error) {
	s, err := svc.Open(ctx, p)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if _, ok := ctx.Deadline(); !ok {
		s.SetReadTimeout(svc.cfg.ReadTimeout)
	}
	if err := s.WriteFrame(req); err != nil {
		s.Reset()
		return nil, err
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, fmt.Errorf("p2p: service %s: %w", svc.name, err)
	}
	resp, err := s.ReadFrame()
	if err != nil {
		s.Reset()
		return nil, err
	}
	return resp, nil
}

// CallMsg is Call with CBOR values: req is encoded, the response decoded into resp.
func (svc *Service) CallMsg(ctx context.Context, p peer.ID, req, resp any) error {
	b, err := svcEnc.Marshal(req)
	if err != nil {
		return fmt.Errorf("p2p: service %s: encode request: %w", svc.name, err)
	}
	rb, err := svc.Call(ctx, p, b)
	if err != nil {
		return err
	}
	return svc.decode(rb, resp)
}

// Stream is one stream of a service. One goroutine may read while another writes; Reset
// and Close may be called from any goroutine.
type Stream struct {
	s           network.Stream
	br          *bufio.Reader
	svc         *Service
	ctx         context.Context
	cancel      context.CancelFunc
	stop        func() bool // unregisters the reset-on-cancel hooks
	readTimeout time.Duration

	mu       sync.Mutex // guards reserved and done
	reserved int        // bytes reserved for the frame last returned by ReadFrame
	done     bool

	watch sync.Once
}

// Peer is the remote member.
func (s *Stream) Peer() peer.ID { return s.s.Conn().RemotePeer() }

// Context ends when the stream ends (Close, Reset, the service closing, the caller's ctx
// for client streams, or the peer closing after CancelOnRemoteClose).
func (s *Stream) Context() context.Context { return s.ctx }

// SetReadTimeout bounds each following ReadFrame (0: no bound beyond the context).
func (s *Stream) SetReadTimeout(d time.Duration) { s.readTimeout = d }

// ReadFrame reads the next frame. It returns io.EOF when the peer closed its side
// cleanly between frames, an ErrTooLarge error for a frame over MaxFrame (or over what
// the resource manager grants), an ErrMalformed error for a truncated frame. The
// returned bytes are the caller's; their memory stays reserved until the next ReadFrame
// or the end of the stream.
func (s *Stream) ReadFrame() ([]byte, error) {
	s.release()
	if s.readTimeout > 0 {
		s.s.SetReadDeadline(time.Now().Add(s.readTimeout))
	}
	b, err := readFrameReserve(s.br, s.svc.cfg.MaxFrame, s.reserve)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("p2p: service %s: read from %s: %w", s.svc.name, s.Peer(), err)
	}
	return b, nil
}

func (s *Stream) reserve(n int) error {
	if n == 0 {
		return nil
	}
	if err := s.s.Scope().ReserveMemory(n, network.ReservationPriorityHigh); err != nil {
		return fmt.Errorf("%w: the resource manager refused %d bytes for a frame of service %s: %v", ErrTooLarge, n, s.svc.name, err)
	}
	s.mu.Lock()
	s.reserved = n
	s.mu.Unlock()
	return nil
}

func (s *Stream) release() {
	s.mu.Lock()
	n := s.reserved
	s.reserved = 0
	s.mu.Unlock()
	if n > 0 {
		s.s.Scope().ReleaseMemory(n)
	}
}

// ReadMsg reads one frame and decodes it as CBOR into v: no duplicate or unknown map
// keys, no indefinite lengths, no tags, bounded nesting and sizes, nothing trailing.
func (s *Stream) ReadMsg(v any) error {
	b, err := s.ReadFrame()
	if err != nil {
		return err
	}
	return s.svc.decode(b, v)
}

func (svc *Service) decode(b []byte, v any) error {
	if err := svcDec.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: service %s: %v", ErrMalformed, svc.name, err)
	}
	return nil
}

// WriteFrame writes b as one frame within WriteTimeout.
func (s *Stream) WriteFrame(b []byte) error {
	if len(b) > MaxServiceFrame {
		return fmt.Errorf("%w: frame of %d bytes for service %s (at most %d; split it)", ErrTooLarge, len(b), s.svc.name, MaxServiceFrame)
	}
	s.s.SetWriteDeadline(time.Now().Add(s.svc.cfg.WriteTimeout))
	if err := writeFrame(s.s, b); err != nil {
		return fmt.Errorf("p2p: service %s: write to %s: %w", s.svc.name, s.Peer(), err)
	}
	return nil
}

// WriteMsg encodes v as canonical CBOR and writes it as one frame.
func (s *Stream) WriteMsg(v any) error {
	b, err := svcEnc.Marshal(v)
	if err != nil {
		return fmt.Errorf("p2p: service %s: encode: %w", s.svc.name, err)
	}
	return s.WriteFrame(b)
}

// CloseWrite tells the peer nothing more will be written (its ReadFrame gets io.EOF).
func (s *Stream) CloseWrite() error { return s.s.CloseWrite() }

// CancelOnRemoteClose makes the stream's context end when the peer closes or resets the
// stream, or sends anything more. Call it once the handler will read no more frames:
// a handler that streams a long response then stops when its caller goes away.
func (s *Stream) CancelOnRemoteClose() {
	s.watch.Do(func() {
		if !s.svc.track() {
			s.cancel()
			return
		}
		go func() {
			defer s.svc.wg.Done()
			s.s.SetReadDeadline(time.Time{})
			var one [1]byte
			s.br.Read(one[:]) // returns on EOF, reset, or a protocol violation
			s.cancel()
		}()
	})
}

// Close ends the stream gracefully: what was written is delivered.
func (s *Stream) Close() error {
	if !s.finish() {
		return nil
	}
	return s.s.Close()
}

// Reset aborts the stream in both directions.
func (s *Stream) Reset() {
	if s.finish() {
		s.s.Reset()
	}
}

func (s *Stream) finish() bool {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return false
	}
	s.done = true
	s.mu.Unlock()
	s.stop()
	s.release()
	s.cancel()
	return true
}

// readFrameReserve reads one frame of at most max bytes, calling reserve with its length
// before allocating it.
func readFrameReserve(r *bufio.Reader, max int, reserve func(int) error) ([]byte, error) {
	n, err := readFrameLen(r, max)
	if err != nil {
		return nil, err
	}
	if err := reserve(int(n)); err != nil {
		return nil, err
	}
	return readFrameBody(r, n)
}

// Codec of service messages: canonical encoding; strict, bounded decoding.
var (
	svcEnc = mustEncMode()
	svcDec = mustServiceDecMode()
)

func mustServiceDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   16,
		MaxArrayElements:  1 << 16,
		MaxMapPairs:       1 << 16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}
