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
