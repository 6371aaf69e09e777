package p2p

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rads-lang/constellation/internal/testutil"
)

// natTrio starts a public member p and two members a and b that cannot connect directly
// (as behind symmetric NATs): both join p, reserve a relay slot on it, and reach each
// other through it.
func natTrio(t testing.TB) (p, a, b *Host) {
	t.Helper()
	p = startHost(t, fastConfig(t), nil)
	cfgA, cfgB := fastConfig(t), fastConfig(t)
	idA, idB := identityOf(t, cfgA), identityOf(t, cfgB)
	cut := func(x peer.ID) bool { return x == idA || x == idB }
	for _, cfg := range []*Config{&cfgA, &cfgB} {
		cfg.Join = []JoinAddr{joinOf(t, p, true)}
	}
	start := func(cfg Config) *Host {
		h, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		h.SetNoDirect(cut)
		if err := h.Start(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		return h
	}
	a, b = start(cfgA), start(cfgB)
	testutil.WaitFor(t, 10*time.Second, "a and b hold a reservation on p", func() (bool, string) {
		for _, h := range []*Host{a, b} {
			st := h.NAT()
			if len(st.Relays) != 1 || st.Relays[0].Relay != p.ID() {
				return false, "relays: " + describeRelays(st)
			}
		}
		return true, ""
	})
	return p, a, b
}

func identityOf(t testing.TB, cfg Config) peer.ID {
	t.Helper()
	sk, err := LoadIdentity(cfg.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func describeRelays(st NATStatus) string {
	var b strings.Builder
	for _, r := range st.Relays {
		b.WriteString(r.Relay.String() + " ")
	}
	return b.String()
}

// Two members that cannot connect directly reach each other through a third member's
// relay: admission, services and packets run over the relayed connection, with more data
// than libp2p's default relay limit (128 KiB).
func TestRelayedMembers(t *testing.T) {
	p, a, b := natTrio(t)
	var relayed []ma.Multiaddr
	for _, x := range b.Addrs() {
		if isRelayed(x) {
			relayed = append(relayed, x)
		}
	}
	if len(relayed) == 0 || !strings.Contains(relayed[0].String(), "/p2p/"+p.ID().String()+"/p2p-circuit/p2p/"+b.ID().String()) {
		t.Fatalf("b's addresses %v: want a relayed address through p", b.Addrs())
	}
	a.AddAddrs(b.ID(), b.Addrs()) // what membership records do

	big := bytes.Repeat([]byte("x"), 1<<20)
	newService(t, b, "echo/1.0.0", ServiceConfig{MaxFrame: 2 << 20}, func(ctx context.Context, s *Stream) error {
		f, err := s.ReadFrame()
		if err != nil {
			return err
		}
		return s.WriteFrame(f)
	})
	svc := newService(t, a, "echo/1.0.0", ServiceConfig{MaxFrame: 2 << 20}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ { // 3 MiB each way: far beyond a default relay's 128 KiB cut
		got, err := svc.Call(ctx, b.ID(), big)
		if err != nil {
			t.Fatalf("call %d over the relay: %v", i, err)
		}
		if !bytes.Equal(got, big) {
			t.Fatalf("call %d: echo of %d bytes differs", i, len(got))
		}
	}
	path, ok := a.Path(b.ID())
	if !ok || path.Type != PathRelayed || path.Relay != p.ID() {
		t.Fatalf("a's path to b = %+v, %v; want relayed through p", path, ok)
	}
	if !a.IsAdmitted(b.ID()) || !b.IsAdmitted(a.ID()) {
		t.Fatal("a and b are not admitted to each other over the relay")
	}
	got := make(chan []byte, 1)
	b.HandlePackets("ping", func(from peer.ID, pkt []byte) {
		if from == a.ID() {
			select {
			case got <- pkt:
			default:
			}
		}
	})
	if err := a.SendPacket(ctx, b.ID(), "ping", []byte("over the relay")); err != nil {
		t.Fatal(err)
	}
	select {
	case pkt := <-got:
		if string(pkt) != "over the relay" {
			t.Fatalf("packet %q", pkt)
		}
	case <-ctx.Done():
		t.Fatal("packet over the relay not delivered")
	}
	testutil.WaitFor(t, 15*time.Second, "a measured its round-trip time to b", func() (bool, string) {
		return a.RTT(b.ID()) > 0, ""
	})
	if st := p.NAT(); !st.RelayService {
		t.Error("p does not report its relay service")
	}
}

// A host that is not a member gets nothing from the relay protocols: no reservation, no
// relayed connection to a member, no STOP or hole punching stream.
func TestRelayRefusesNonMembers(t *testing.T) {
	p, _, b := natTrio(t)
	raw := rawHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := raw.Connect(ctx, peerInfo(p)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, raw, peer.AddrInfo{ID: p.ID()}); err == nil {
		t.Error("a non-member reserved a relay slot")
	}
	// Through the relay to member b (raw has no circuit transport: speak HOP by hand).
	if s, err := raw.NewStream(ctx, p.ID(), proto.ProtoIDv2Hop); err == nil {
		s.Write([]byte{0x04, 0x08, 0x01, 0x12, 0x00}) // any bytes: the stream must be reset
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := s.Read(make([]byte, 64)); n > 0 {
			t.Errorf("the relay answered a non-member's HOP stream with %d bytes", n)
		}
		s.Reset()
	}
	if err := raw.Connect(ctx, peerInfo(b)); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []protocol.ID{proto.ProtoIDv2Stop, proto.ProtoIDv2Hop, holepunch.Protocol, ping.ID} {
		s, err := raw.NewStream(ctx, b.ID(), pid)
		if err != nil {
			continue // not negotiated: fine
		}
		probe := make([]byte, 32) // a ping's size; to the relay protocols a malformed CONNECT
		copy(probe, []byte{0x02, 0x08, 0x01})
		s.Write(probe)
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := s.Read(make([]byte, 64)); n > 0 {
			t.Errorf("%s answered a non-member with %d bytes", pid, n)
		}
		s.Reset()
	}
}

func TestAdvertisedAddrs(t *testing.T) {
	m := func(s string) ma.Multiaddr { return ma.StringCast(s) }
	in := []ma.Multiaddr{m("/ip4/127.0.0.1/udp/1/quic-v1"), m("/ip4/198.18.0.2/udp/1/quic-v1"), m("/ip6/fe80::1/tcp/1"), m("/ip4/169.254.1.1/tcp/1"), m("/ip6/::1/tcp/1")}
	got := advertised(in)
	if len(got) != 1 || !got[0].Equal(in[1]) {
		t.Errorf("advertised(%v) = %v; want only the 198.18.0.2 address", in, got)
	}
	lo := []ma.Multiaddr{m("/ip4/127.0.0.1/udp/1/quic-v1"), m("/ip4/127.0.0.1/tcp/1")}
	if got := advertised(lo); len(got) != 2 {
		t.Errorf("advertised(%v) = %v; a loopback-only node keeps its loopback addresses", lo, got)
	}
}

func TestRelayConfig(t *testing.T) {
	cfg := Config{Listen: loopback(t), IdentityFile: filepath.Join(t.TempDir(), "k")}.withDefaults()
	rc := cfg.relayResources()
	if rc.Limit != nil || rc.MaxReservations != 128 || rc.MaxCircuits != 64 || rc.BufferSize != 64<<10 || rc.MaxReservationsPerIP != 128 {
		t.Errorf("default relay resources %+v", rc)
	}
	cfg.RelayLimitData = 1 << 20
	if rc := cfg.relayResources(); rc.Limit == nil || rc.Limit.Data != 1<<20 || rc.Limit.Duration <= 0 {
		t.Errorf("relay limit %+v; want 1 MiB and no practical duration cut", rc.Limit)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.MaxRelays = -2 },
		func(c *Config) { c.RelayBufferSize = 2 << 20 },
		func(c *Config) { c.RelayLimitData = -1 },
	} {
		c := cfg
		bad(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", c)
		}
	}
}

// BenchmarkPath compares a direct connection with one through a member's relay (both on
// loopback, in-process): round-trip time of a small call and throughput of 64 MiB
// streamed from a to b in 1 MiB frames.
func BenchmarkPath(b *testing.B) {
	for _, kind := range []string{PathDirect, PathRelayed} {
		b.Run(kind, func(b *testing.B) {
			var from, to *Host
			if kind == PathDirect {
				from = startHost(b, fastConfig(b), nil)
				cfg := fastConfig(b)
				cfg.Join = []JoinAddr{joinOf(b, from, true)}
				to = startHost(b, cfg, nil)
				testutil.WaitFor(b, 10*time.Second, "admission", func() (bool, string) { return admittedAll([]*Host{from, to}) })
			} else {
				_, from, to = natTrio(b)
				from.AddAddrs(to.ID(), to.Addrs())
			}
			const frame, total = 1 << 20, 64 << 20
			newService(b, to, "bench/1.0.0", ServiceConfig{MaxFrame: 2 * frame}, func(ctx context.Context, s *Stream) error {
				first, err := s.ReadFrame()
				if err != nil {
					return err
				}
				if len(first) == 1 { // a ping
					return s.WriteFrame(first)
				}
				for got := len(first); got < total; {
					f, err := s.ReadFrame()
					if err != nil {
						return err
					}
					got += len(f)
				}
				return s.WriteFrame([]byte("done"))
			})
			svc := newService(b, from, "bench/1.0.0", ServiceConfig{MaxFrame: 2 * frame}, nil)
			ctx := context.Background()
			if _, err := svc.Call(ctx, to.ID(), []byte{1}); err != nil {
				b.Fatal(err)
			}
			if path, _ := from.Path(to.ID()); path.Type != kind {
				b.Fatalf("path %+v; want %s", path, kind)
			}
			buf := make([]byte, frame)
			b.ResetTimer()
			var rtt, xfer time.Duration
			for range b.N {
				start := time.Now()
				for range 20 {
					if _, err := svc.Call(ctx, to.ID(), []byte{1}); err != nil {
						b.Fatal(err)
					}
				}
				rtt += time.Since(start) / 20
				start = time.Now()
				s, err := svc.Open(ctx, to.ID())
				if err != nil {
					b.Fatal(err)
				}
				for sent := 0; sent < total; sent += frame {
					if err := s.WriteFrame(buf); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := s.ReadFrame(); err != nil {
					b.Fatal(err)
				}
				s.Close()
				xfer += time.Since(start)
			}
			b.ReportMetric(float64(rtt.Microseconds())/float64(b.N), "µs/call")
			b.ReportMetric(float64(total)/(1<<20)/(xfer.Seconds()/float64(b.N)), "MB/s")
		})
	}
}
