package membership

import (
	"context"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/p2p/liveness"
)

// livenessDetector runs the SWIM/Lifeguard failure detector over the host's packets.
type livenessDetector struct {
	r   *liveness.Runner
	log *slog.Logger
}

// packetTransport sends liveness packets over the p2p host.
type packetTransport struct{ h Host }

func (t packetTransport) SendPacket(ctx context.Context, to string, b []byte) error {
	id, err := peer.Decode(to)
	if err != nil {
		return err
	}
	return t.h.SendPacket(ctx, id, "liveness", b)
}

func newLivenessDetector(s *Service, h Host, incarnation uint64, cfg liveness.Config, log *slog.Logger) detector {
	d, err := liveness.New(h.ID().String(), incarnation, cfg)
	if err != nil {
		panic(err) // a validated config and a valid peer ID: cannot fail
	}
	r, err := liveness.NewRunner(d, liveness.RunnerConfig{
		Transport: packetTransport{h},
		// A packet later than a probe interval is useless, and a send may have to
		// reconnect first: over a slow link (the wan profile) that takes more than 1 s.
		SendTimeout: max(time.Second, cfg.ProbeInterval),
		Logger:      log.With("component", "liveness"),
		OnEvent:     func(e liveness.Event) { s.onDetectorEvent(e.ID) },
	})
	if err != nil {
		panic(err)
	}
	return &livenessDetector{r: r, log: log}
}

func (l *livenessDetector) start(ctx context.Context) error { return l.r.Start(ctx) }

func (l *livenessDetector) AddMember(id string) {
	if err := l.r.AddMember(id); err != nil {
		l.log.Debug("liveness: add member", "id", id, "err", err)
	}
}

func (l *livenessDetector) RemoveMember(id string)             { l.r.RemoveMember(id) }
func (l *livenessDetector) HandlePacket(from string, b []byte) { l.r.HandlePacket(from, b) }
func (l *livenessDetector) Leave(ctx context.Context) error    { return l.r.Leave(ctx) }
func (l *livenessDetector) Close() error                       { return l.r.Close() }

func (l *livenessDetector) Member(id string) (string, time.Time, bool) {
	// One lookup, not a copy of every member: listing N nodes stays O(N).
	m, ok := l.r.Status(id)
	if !ok {
		return "", time.Time{}, false
	}
	return m.State.String(), m.LastSeen, true
}
