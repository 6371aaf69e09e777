package p2p

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

// A second host on a port that is taken (TCP or UDP) must fail with a clear error, not start
// with one transport missing or share the TCP port through SO_REUSEPORT.
func TestListenPortInUse(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			var port int
			if proto == "tcp" {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				port = l.Addr().(*net.TCPAddr).Port
			} else {
				c, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				port = c.LocalAddr().(*net.UDPAddr).Port
			}
			listen, err := ParseBind("127.0.0.1:" + strconv.Itoa(port))
			if err != nil {
				t.Fatal(err)
			}
			h, err := New(Config{Listen: listen})
			if err == nil {
				h.Close()
				t.Fatalf("New on a %s port in use succeeded; want an error", proto)
			}
			if !errors.Is(err, ErrConfig) && !strings.Contains(err.Error(), "in use") {
				t.Fatalf("New on a %s port in use: %v; want an error saying the port is in use", proto, err)
			}
		})
	}
}

// The TCP transport binds with SO_REUSEPORT (TCP hole punching dials from the listen
// port); a second node on the same port must still fail rather than share it.
func TestSecondNodeSamePortRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := fastConfig(t)
	cfg.Listen, _ = ParseBind("/ip4/127.0.0.1/tcp/" + strconv.Itoa(port))
	first := startHost(t, cfg, nil)
	cfg2 := fastConfig(t)
	cfg2.Listen = cfg.Listen
	h, err := New(cfg2)
	if err == nil {
		h.Close()
		t.Fatalf("a second node on TCP port %d (first: %s) started; want an error", port, first.ID())
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second node: %v; want it to say the port is in use", err)
	}
}
