package p2p

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/rads-lang/constellation/internal/testutil"
)

// BenchmarkAdmissionExchange measures one admission exchange (initiator side, over an
// existing connection) between two keyed members: the argon2id-stretched key is cached,
// so this is two round trips and four HMACs.
func BenchmarkAdmissionExchange(b *testing.B) {
	key := "bench-key-0123456789abcdef0123456789"
	cfgA := fastConfig(b)
	cfgA.ClusterKey = key
	a := startHost(b, cfgA, nil)
	cfgB := fastConfig(b)
	cfgB.ClusterKey = key
	cfgB.Join = []JoinAddr{joinOf(b, a, true)}
	h := startHost(b, cfgB, nil)
	testutil.WaitFor(b, 10*time.Second, "admission", func() (bool, string) { return admittedAll([]*Host{a, h}) })
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if o := h.runInitiator(ctx, a.ID()); o.err != nil || o.verdict != admitOK {
			b.Fatalf("exchange: %+v", o)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/exchange")
}

// BenchmarkAdmitKeyDerivation is the one-time argon2id cost per process and key.
func BenchmarkAdmitKeyDerivation(b *testing.B) {
	for range b.N {
		stretchKey("bench-key", "bench")
	}
}

// BenchmarkServiceVsRawStream compares one request/response over Service.Call with the
// same exchange hand-written on a raw libp2p stream (same frames), and a streamed
// response of 64 KiB frames both ways.
func BenchmarkServiceVsRawStream(b *testing.B) {
	a := startHost(b, fastConfig(b), nil)
	cfgB := fastConfig(b)
	cfgB.Join = []JoinAddr{joinOf(b, a, true)}
	h := startHost(b, cfgB, nil)
	testutil.WaitFor(b, 10*time.Second, "admission", func() (bool, string) { return admittedAll([]*Host{a, h}) })

	const chunk, chunks = 64 << 10, 64
	payload := make([]byte, chunk)
	serve := func(req []byte, write func([]byte) error) error {
		if len(req) > 0 && req[0] == 's' {
			for range chunks {
				if err := write(payload); err != nil {
					return err
				}
			}
			return nil
		}
		return write(req)
	}
	// Service.
	svcName := "bench/1.0.0"
	if _, err := a.NewService(svcName, ServiceConfig{}, func(ctx context.Context, s *Stream) error {
		req, err := s.ReadFrame()
		if err != nil {
			return err
		}
		return serve(req, s.WriteFrame)
	}); err != nil {
		b.Fatal(err)
	}
	client, err := h.NewService(svcName, ServiceConfig{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	// Raw stream with the same frames, deadlines set by hand, no scopes.
	rawProto := a.ProtocolID("bench-raw/1.0.0")
	a.Libp2p().SetStreamHandler(rawProto, func(s network.Stream) {
		s.SetDeadline(time.Now().Add(10 * time.Second))
		req, err := readFrame(bufio.NewReader(s), 1<<20)
		if err != nil {
			s.Reset()
			return
		}
		if err := serve(req, func(p []byte) error { return writeFrame(s, p) }); err != nil {
			s.Reset()
			return
		}
		s.Close()
	})
	rawCall := func(ctx context.Context, req []byte, each func([]byte)) error {
		s, err := h.Libp2p().NewStream(ctx, a.ID(), rawProto)
		if err != nil {
			return err
		}
		defer s.Close()
		s.SetDeadline(time.Now().Add(10 * time.Second))
		if err := writeFrame(s, req); err != nil {
			return err
		}
		s.CloseWrite()
		br := bufio.NewReader(s)
		for {
			f, err := readFrame(br, 1<<20)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			each(f)
		}
	}
	svcCall := func(ctx context.Context, req []byte, each func([]byte)) error {
		s, err := client.Open(ctx, a.ID())
		if err != nil {
			return err
		}
		defer s.Close()
		if err := s.WriteFrame(req); err != nil {
			return err
		}
		s.CloseWrite()
		for {
			f, err := s.ReadFrame()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			each(f)
		}
	}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		call func(context.Context, []byte, func([]byte)) error
	}{{"raw", rawCall}, {"service", svcCall}} {
		b.Run(fmt.Sprintf("rpc/%s", c.name), func(b *testing.B) {
			req := []byte("ping")
			start := time.Now()
			for range b.N {
				n := 0
				if err := c.call(ctx, req, func(f []byte) { n += len(f) }); err != nil || n != len(req) {
					b.Fatalf("call: %v (%d bytes)", err, n)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/call")
		})
		b.Run(fmt.Sprintf("stream/%s", c.name), func(b *testing.B) {
			b.SetBytes(chunk * chunks)
			start := time.Now()
			for range b.N {
				n := 0
				if err := c.call(ctx, []byte("s"), func(f []byte) { n += len(f) }); err != nil || n != chunk*chunks {
					b.Fatalf("stream: %v (%d bytes)", err, n)
				}
			}
			b.ReportMetric(float64(chunk*chunks*b.N)/time.Since(start).Seconds()/1e6, "MB/s")
		})
	}
}
