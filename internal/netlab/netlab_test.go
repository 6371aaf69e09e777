package netlab

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const helperEnv = "NETLAB_TEST_HELPER"

// TestHelperUDP is not a test: the tests below re-execute the test binary with it inside
// a namespace. "echo" answers every datagram on NETLAB_PORTS with the sender's address as
// it sees it; "ask" sends from NETLAB_LOCAL to each of NETLAB_TARGETS and prints the
// answers (or "timeout").
func TestHelperUDP(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "echo":
		for _, port := range strings.Split(os.Getenv("NETLAB_PORTS"), ",") {
			c, err := net.ListenPacket("udp4", ":"+port)
			if err != nil {
				fmt.Println("ERROR", err)
				os.Exit(1)
			}
			go func() {
				buf := make([]byte, 64)
				for {
					_, from, err := c.ReadFrom(buf)
					if err != nil {
						return
					}
					c.WriteTo([]byte(from.String()), from)
				}
			}()
		}
		fmt.Println("READY")
		time.Sleep(time.Minute)
		os.Exit(0)
	case "ask":
		c, err := net.ListenPacket("udp4", os.Getenv("NETLAB_LOCAL"))
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		for _, target := range strings.Split(os.Getenv("NETLAB_TARGETS"), ",") {
			ua, err := net.ResolveUDPAddr("udp4", target)
			if err != nil {
				fmt.Println("ERROR", err)
				os.Exit(1)
			}
			answer := "timeout"
			buf := make([]byte, 64)
			for try := 0; try < 3 && answer == "timeout"; try++ {
				c.WriteTo([]byte("?"), ua)
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				if n, _, err := c.ReadFrom(buf); err == nil {
					answer = string(buf[:n])
				}
			}
			fmt.Println(answer)
		}
		os.Exit(0)
	}
}

// helper starts the test binary in h's namespace in the given helper mode.
func helper(t *testing.T, h *Host, mode string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Command(exe, "-test.run=^TestHelperUDP$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	return cmd
}

// ask sends from h (local address local) to targets and returns the answers.
func ask(t *testing.T, h *Host, local string, targets ...string) []string {
	t.Helper()
	out, err := helper(t, h, "ask", "NETLAB_LOCAL="+local, "NETLAB_TARGETS="+strings.Join(targets, ",")).Output()
	if err != nil {
		t.Fatalf("ask from %s: %v: %s", h.Name, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(targets) {
		t.Fatalf("ask from %s: %q", h.Name, out)
	}
	return lines
}

// The builder's NATs behave as named: a cone keeps one public port for every destination,
// a symmetric NAT uses a new port per destination, full cone accepts unsolicited packets
// on the forwarded port, UDP-blocked drops UDP, and a double NAT shows the outer
// router's address. Everything is gone after Close.
func TestNATBehaviours(t *testing.T) {
	RequireRoot(t)
	lab := New(t)
	p := lab.Public("p")
	rPR := lab.Router("rpr", PortRestricted, nil)
	rSym := lab.Router("rsym", Symmetric, nil)
	rFC := lab.Router("rfc", FullCone, nil)
	rUDP := lab.Router("rudp", UDPBlocked, nil)
	rIn := lab.Router("rin", PortRestricted, rPR) // behind rPR: two levels
	a, b, c, d, e := rPR.NewHost("a"), rSym.NewHost("b"), rFC.NewHost("c"), rUDP.NewHost("d"), rIn.NewHost("e")
	rFC.ForwardPort(c, 7000)

	echo := func(h *Host) {
		cmd := helper(t, h, "echo", "NETLAB_PORTS=7000,7001")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line := make(chan string, 1)
		go func() {
			l, _ := bufio.NewReader(stdout).ReadString('\n')
			line <- l
		}()
		select {
		case l := <-line:
			if !strings.HasPrefix(l, "READY") {
				t.Fatalf("echo helper in %s: %q", h.Name, l)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("echo helper in %s did not start", h.Name)
		}
	}
	echo(p)
	echo(c)
	to := []string{p.IP + ":7000", p.IP + ":7001"}

	if got := ask(t, a, ":7000", to...); got[0] != rPR.IP+":7000" || got[1] != got[0] {
		t.Errorf("port-restricted: observed %v; want %s:7000 for both destinations", got, rPR.IP)
	}
	if got := ask(t, b, ":7000", to...); !strings.HasPrefix(got[0], rSym.IP+":") || got[0] == got[1] {
		t.Errorf("symmetric: observed %v; want two different ports of %s", got, rSym.IP)
	}
	if got := ask(t, d, ":7000", to...); got[0] != "timeout" || got[1] != "timeout" {
		t.Errorf("udp-blocked: answers %v; want none", got)
	}
	// (Port 7003: a's mapping already holds rpr:7000 towards p:7000.)
	if got := ask(t, e, ":7003", to[0]); got[0] != rPR.IP+":7003" {
		t.Errorf("double NAT: observed %v; want the outer router's %s:7003", got, rPR.IP)
	}
	// Unsolicited: the full cone's forwarded port answers anyone; a port-restricted
	// mapping only the endpoint it was made for (a's mapping to p:7000, from p:7001 is
	// another endpoint... p has no mapping on rpr at all: nothing answers).
	if got := ask(t, p, ":7002", rFC.IP+":7000"); got[0] != p.IP+":7002" {
		t.Errorf("full cone: unsolicited packet answered %v; want c to see %s:7002", got, p.IP)
	}
	if got := ask(t, p, ":7002", rPR.IP+":7000"); got[0] != "timeout" {
		t.Errorf("port-restricted: unsolicited packet answered %v", got)
	}

	lab.Close()
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), lab.tag) {
		t.Errorf("namespaces left after Close:\n%s", out)
	}
}
