package p2p

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/rads-lang/constellation/internal/testutil"
)

// memberPair starts two admitted hosts.
func memberPair(t *testing.T) (a, b *Host) {
	t.Helper()
	a = startHost(t, fastConfig(t), nil)
	cfg := fastConfig(t)
	cfg.Join = []JoinAddr{joinOf(t, a, true)}
	b = startHost(t, cfg, nil)
	testutil.WaitFor(t, 10*time.Second, "admission", func() (bool, string) { return admittedAll([]*Host{a, b}) })
	return a, b
}

func newService(t testing.TB, h *Host, name string, cfg ServiceConfig, fn Handler) *Service {
	t.Helper()
	svc, err := h.NewService(name, cfg, fn)
	if err != nil {
		t.Fatalf("NewService(%s): %v", name, err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

type echoReq struct {
	Text  string `cbor:"1,keyasint"`
	Count int    `cbor:"2,keyasint,omitempty"`
}

func TestServiceCallAndStream(t *testing.T) {
	a, b := memberPair(t)
	var scopeName atomic.Value
	var held atomic.Int64
	handler := func(ctx context.Context, s *Stream) error {
		var req echoReq
		if err := s.ReadMsg(&req); err != nil {
			return err
		}
		held.Store(s.s.Scope().Stat().Memory)
		if ms, ok := s.s.Scope().(network.StreamManagementScope); ok && ms.ServiceScope() != nil {
			scopeName.Store(ms.ServiceScope().Name())
		}
		if req.Count == 0 {
			return s.WriteMsg(echoReq{Text: strings.ToUpper(req.Text)})
		}
		for i := range req.Count { // a streamed response
			if err := s.WriteFrame([]byte(fmt.Sprintf("%s-%d", req.Text, i))); err != nil {
				return err
			}
		}
		return nil
	}
	newService(t, b, "echo/1.0.0", ServiceConfig{}, handler)
	svcA := newService(t, a, "echo/1.0.0", ServiceConfig{}, handler)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var resp echoReq
	if err := svcA.CallMsg(ctx, b.ID(), echoReq{Text: "hello"}, &resp); err != nil {
		t.Fatalf("CallMsg: %v", err)
	}
	if resp.Text != "HELLO" {
		t.Errorf("response %q; want HELLO", resp.Text)
	}
	if got := scopeName.Load(); got != "constellation/echo/1.0.0" {
		t.Errorf("stream service scope %v; want constellation/echo/1.0.0", got)
	}
	if held.Load() <= 0 {
		t.Errorf("no memory reserved on the stream scope while holding a frame")
	}

	s, err := svcA.Open(ctx, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteMsg(echoReq{Text: "line", Count: 5}); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	var got []string
	for {
		f, err := s.ReadFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
		got = append(got, string(f))
	}
	if strings.Join(got, ",") != "line-0,line-1,line-2,line-3,line-4" {
		t.Errorf("streamed frames %v", got)
	}
	// Memory reservations are returned once streams end.
	testutil.WaitFor(t, 2*time.Second, "service memory released", func() (bool, string) {
		var mem int64 = -1
		b.h.Network().ResourceManager().ViewService("constellation/echo/1.0.0", func(sc network.ServiceScope) error {
			mem = sc.Stat().Memory
			return nil
		})
		return mem == 0, ""
	})
}

func TestServiceCloseWaitsForInFlight(t *testing.T) {
	a, b := memberPair(t)
	started := make(chan struct{})
	var returned atomic.Bool
	svcB := newService(t, b, "slow/1.0.0", ServiceConfig{}, func(ctx context.Context, s *Stream) error {
		if _, err := s.ReadFrame(); err != nil {
			return err
		}
		close(started)
		<-ctx.Done()
		time.Sleep(100 * time.Millisecond) // cleanup work Close must wait for
		returned.Store(true)
		return ctx.Err()
	})
	svcA := newService(t, a, "slow/1.0.0", ServiceConfig{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	callErr := make(chan error, 1)
	go func() {
		_, err := svcA.Call(ctx, b.ID(), []byte("x"))
		callErr <- err
	}()
	<-started
	t0 := time.Now()
	svcB.Close()
	if !returned.Load() {
		t.Fatal("Close returned before the in-flight handler")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Close took %v with one in-flight handler", d)
	}
	if err := <-callErr; err == nil {
		t.Error("the call cut by Close succeeded")
	}
	for _, p := range b.h.Mux().Protocols() {
		if p == svcB.Protocol() {
			t.Error("handler still registered after Close")
		}
	}
	if _, err := svcA.Call(ctx, b.ID(), []byte("x")); err == nil {
		t.Error("call to a closed service succeeded")
	}
	if _, err := b.NewService("slow/1.0.0", ServiceConfig{}, nil); err != nil {
		t.Errorf("the name is not free again after Close: %v", err)
	}
}

func TestServiceOversizedFrames(t *testing.T) {
	a, b := memberPair(t)
	serverErr := make(chan error, 1)
	newService(t, b, "big/1.0.0", ServiceConfig{MaxFrame: 1024}, func(ctx context.Context, s *Stream) error {
		f, err := s.ReadFrame()
		if err != nil {
			serverErr <- err
			return err
		}
		serverErr <- nil
		return s.WriteFrame(bytes.Repeat([]byte("r"), len(f)*4)) // over the client's limit
	})
	svcA := newService(t, a, "big/1.0.0", ServiceConfig{MaxFrame: 2048}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := svcA.Call(ctx, b.ID(), make([]byte, 1025)); err == nil {
		t.Error("a frame over the server's MaxFrame was answered")
	}
	if err := <-serverErr; !errors.Is(err, ErrTooLarge) {
		t.Errorf("server read of an oversized frame: err = %v; want ErrTooLarge", err)
	}
	_, err := svcA.Call(ctx, b.ID(), make([]byte, 1000)) // answer: 4000 bytes > 2048
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("client read of an oversized answer: err = %v; want ErrTooLarge", err)
	}
	<-serverErr
	if _, err := a.NewService("huge/1.0.0", ServiceConfig{MaxFrame: MaxServiceFrame + 1}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("MaxFrame over MaxServiceFrame: err = %v; want ErrConfig", err)
	}
}

func TestServiceDeadlines(t *testing.T) {
	a, b := memberPair(t)
	serverErr := make(chan error, 1)
	newService(t, b, "quiet/1.0.0", ServiceConfig{ReadTimeout: 200 * time.Millisecond}, func(ctx context.Context, s *Stream) error {
		_, err := s.ReadFrame()
		if err == nil {
			<-ctx.Done() // never answer
			return ctx.Err()
		}
		serverErr <- err
		return err
	})
	svcA := newService(t, a, "quiet/1.0.0", ServiceConfig{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// A client that opens the stream and never completes a frame: the server's read
	// times out.
	s, err := svcA.Open(ctx, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	s.s.Write([]byte{0x80}) // an unfinished uvarint
	t0 := time.Now()
	select {
	case err := <-serverErr:
		if !isTimeout(err) {
			t.Errorf("server read err = %v; want a timeout", err)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("server read timed out after %v; want ~200ms", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("server read did not time out")
	}
	s.Close()

	// A call whose answer never comes ends with its ctx.
	cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer ccancel()
	t0 = time.Now()
	if _, err := svcA.Call(cctx, b.ID(), []byte("q")); err == nil {
		t.Error("call without an answer succeeded")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("call returned after %v; want ~300ms", d)
	}
}

func TestServiceCancelOnRemoteClose(t *testing.T) {
	a, b := memberPair(t)
	ended := make(chan struct{})
	newService(t, b, "follow/1.0.0", ServiceConfig{}, func(ctx context.Context, s *Stream) error {
		if _, err := s.ReadFrame(); err != nil {
			return err
		}
		s.CancelOnRemoteClose()
		if err := s.WriteFrame([]byte("first")); err != nil {
			return err
		}
		<-ctx.Done() // a follower with nothing more to send
		close(ended)
		return nil
	})
	svcA := newService(t, a, "follow/1.0.0", ServiceConfig{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := svcA.Open(ctx, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	s.WriteFrame([]byte("follow"))
	if f, err := s.ReadFrame(); err != nil || string(f) != "first" {
		t.Fatalf("first frame %q, %v", f, err)
	}
	cancel() // the caller goes away: its stream is reset
	select {
	case <-ended:
	case <-time.After(3 * time.Second):
		t.Fatal("handler did not see the caller go away")
	}
}

func TestServiceRefusesNonMembers(t *testing.T) {
	cfg := fastConfig(t)
	cfg.ClusterKey = "svc-key-0123456789abcdef0123"
	a := startHost(t, cfg, nil)
	var ran atomic.Int32
	svc := newService(t, a, "secret/1.0.0", ServiceConfig{}, func(ctx context.Context, s *Stream) error {
		ran.Add(1)
		return s.WriteFrame([]byte("secret"))
	})
	raw := rawHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := raw.Connect(ctx, peerInfo(a)); err != nil {
		t.Fatal(err)
	}
	if s, err := raw.NewStream(ctx, a.ID(), svc.Protocol()); err == nil {
		writeFrame(s, []byte("hi"))
		s.SetReadDeadline(time.Now().Add(cfg.AdmitTimeout + time.Second))
		if n, _ := s.Read(make([]byte, 16)); n > 0 {
			t.Errorf("a non-member got %d bytes from a service", n)
		}
		s.Reset()
	}
	// A wrong-key host: its client side fails, the handler never runs.
	cfgB := fastConfig(t)
	cfgB.ClusterKey = "another-key-0123456789abcdef"
	b := startHost(t, cfgB, nil)
	svcB := newService(t, b, "secret/1.0.0", ServiceConfig{}, nil)
	b.AddAddrs(a.ID(), a.h.Addrs())
	if _, err := svcB.Call(ctx, a.ID(), []byte("hi")); !errors.Is(err, ErrAdmission) && !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("call from a non-member: err = %v; want ErrAdmission", err)
	}
	if ran.Load() != 0 {
		t.Errorf("handler ran %d times for non-members", ran.Load())
	}
}

func TestListenerAndDial(t *testing.T) {
	a, b := memberPair(t)
	l, err := b.Listen("raft/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := b.Listen("raft/1.0.0"); !errors.Is(err, ErrConfig) {
		t.Errorf("second Listen on one protocol: err = %v; want ErrConfig", err)
	}
	la, err := a.Listen("raft/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()

	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		fmt.Fprintf(c, "%s from %s", strings.TrimSpace(line), c.RemoteAddr())
	}()
	c, err := la.Dial(l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial(%s): %v", l.Addr(), err)
	}
	if c.RemoteAddr().String() != b.ID().String() || c.RemoteAddr().Network() != "libp2p" || c.LocalAddr().String() != a.ID().String() {
		t.Errorf("addresses local %v remote %v", c.LocalAddr(), c.RemoteAddr())
	}
	fmt.Fprintln(c, "ping")
	c.(*Conn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "ping from "+a.ID().String() {
		t.Errorf("read %q, %v", got, err)
	}
	c.Close()

	// Deadlines are net.Conn's.
	c, err = la.Dial("/p2p/"+b.ID().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read past the deadline: err = %v; want a net.Error timeout", err)
	}
	c.Close()

	if _, err := la.Dial("not-a-peer", time.Second); !errors.Is(err, ErrBadAddress) {
		t.Errorf("Dial(bad address): err = %v; want ErrBadAddress", err)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: err = %v; want net.ErrClosed", err)
	}
	if c, err := la.Dial(b.ID().String(), 2*time.Second); err == nil {
		// Protocol negotiation may be lazy: the stream must then fail on use.
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte("x"))
		if n, err := c.Read(make([]byte, 1)); err == nil || n > 0 {
			t.Error("a closed listener's protocol still answers")
		}
		c.Close()
	}
}

func TestListenerRefusesNonMembers(t *testing.T) {
	cfg := fastConfig(t)
	cfg.ClusterKey = "lst-key-0123456789abcdef0123"
	a := startHost(t, cfg, nil)
	l, err := a.Listen("mesh/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c
		}
	}()
	raw := rawHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := raw.Connect(ctx, peerInfo(a)); err != nil {
		t.Fatal(err)
	}
	if s, err := raw.NewStream(ctx, a.ID(), l.Addr().(Addr).Protocol); err == nil {
		s.Write([]byte("hello"))
		s.SetReadDeadline(time.Now().Add(cfg.AdmitTimeout + time.Second))
		s.Read(make([]byte, 1))
		s.Reset()
	}
	select {
	case c := <-accepted:
		t.Errorf("listener accepted non-member %v", c.RemoteAddr())
	case <-time.After(200 * time.Millisecond):
	}
	cfgB := fastConfig(t)
	cfgB.ClusterKey = "other-key-0123456789abcdef0"
	b := startHost(t, cfgB, nil)
	lb, err := b.Listen("mesh/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	b.AddAddrs(a.ID(), a.h.Addrs())
	if _, err := lb.Dial(a.ID().String(), 3*time.Second); err == nil {
		t.Error("a non-member dialled a member's listener")
	}
}

func FuzzServiceFrame(f *testing.F) {
	var buf bytes.Buffer
	writeFrame(&buf, []byte("hello"))
	writeFrame(&buf, encodeMessage(wireMessage{ID: "a", Type: "t"}))
	f.Add(buf.Bytes())
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{0x81, 0x08, 'a'})
	f.Add([]byte{0x03, 0xa1, 0x01, 0x61})
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 1024
		r := bufio.NewReader(bytes.NewReader(b))
		for range 4 {
			reserved := -1
			got, err := readFrameReserve(r, max, func(n int) error {
				if n > max {
					t.Fatalf("reserve(%d) over the limit %d", n, max)
				}
				reserved = n
				return nil
			})
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v is not EOF, ErrTooLarge or ErrMalformed", err)
				}
				return
			}
			if len(got) != reserved {
				t.Fatalf("frame of %d bytes, %d reserved", len(got), reserved)
			}
			// Strict decoding of whatever arrived must not panic, and what it accepts
			// must re-encode to the same bytes (canonical, nothing trailing).
			var v echoReq
			if err := svcDec.Unmarshal(got, &v); err == nil {
				back, err := svcEnc.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				var v2 echoReq
				if err := svcDec.Unmarshal(back, &v2); err != nil || v2 != v {
					t.Fatalf("round trip %+v -> %+v, %v", v, v2, err)
				}
			}
		}
	})
}
