package fault

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Partitions are iptables rules in the INPUT chain that match only loopback packets to or
// from the test's own node ports (QUIC on UDP and TCP share a port, and both transports
// send from the listening port), tagged with a comment unique to the test process. Every
// rule is removed when the partition heals and, whatever happens, in t.Cleanup, which also
// checks that no rule of the test is left.

// iptablesPath finds iptables (CI installs it; it lives in /usr/sbin).
func iptablesPath() (string, error) {
	if p, err := exec.LookPath("iptables"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/iptables", "/sbin/iptables"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("iptables not found (apt-get install iptables): the partition tests need it")
}

type firewall struct {
	t       testing.TB
	bin     string
	comment string

	mu    sync.Mutex // guards rules
	rules [][]string // the match part of each rule in place
}

func newFirewall(t testing.TB) *firewall {
	t.Helper()
	bin, err := iptablesPath()
	if err != nil {
		t.Fatal(err)
	}
	f := &firewall{t: t, bin: bin, comment: fmt.Sprintf("c7n-fault-%d", os.Getpid())}
	before := f.ours()
	if before != "" {
		t.Fatalf("iptables already holds rules of this test process:\n%s", before)
	}
	t.Cleanup(func() {
		f.heal()
		if left := f.ours(); left != "" {
			t.Errorf("iptables rules left after cleanup:\n%s", left)
		}
	})
	return f
}

// ours lists the rules of the INPUT chain that carry this test's comment.
func (f *firewall) ours() string {
	out, err := exec.Command(f.bin, "-w", "-S", "INPUT").CombinedOutput()
	if err != nil {
		f.t.Errorf("iptables -S INPUT: %v: %s", err, out)
		return ""
	}
	var mine []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, f.comment) {
			mine = append(mine, l)
		}
	}
	return strings.Join(mine, "\n")
}

// drop inserts a rule dropping loopback packets of proto that match the port matches
// (e.g. "--dport", "7946").
func (f *firewall) drop(proto string, match ...string) {
	f.t.Helper()
	spec := append([]string{"-i", "lo", "-p", proto}, match...)
	spec = append(spec, "-m", "comment", "--comment", f.comment, "-j", "DROP")
	if out, err := exec.Command(f.bin, append([]string{"-w", "-I", "INPUT"}, spec...)...).CombinedOutput(); err != nil {
		f.t.Fatalf("iptables -I INPUT %s: %v: %s", strings.Join(spec, " "), err, out)
	}
	f.mu.Lock()
	f.rules = append(f.rules, spec)
	f.mu.Unlock()
}

// isolate cuts node port p from every other node: nothing in, nothing out.
func (f *firewall) isolate(p int) {
	for _, proto := range []string{"udp", "tcp"} {
		f.drop(proto, "--dport", fmt.Sprint(p))
		f.drop(proto, "--sport", fmt.Sprint(p))
	}
}

// deafen drops what is sent to node port p: the node still sends, hears nothing.
func (f *firewall) deafen(p int) {
	for _, proto := range []string{"udp", "tcp"} {
		f.drop(proto, "--dport", fmt.Sprint(p))
	}
}

// cut drops the traffic between node ports a and b only (a partial partition: both still
// reach everyone else).
func (f *firewall) cut(a, b int) {
	for _, proto := range []string{"udp", "tcp"} {
		f.drop(proto, "--sport", fmt.Sprint(a), "--dport", fmt.Sprint(b))
		f.drop(proto, "--sport", fmt.Sprint(b), "--dport", fmt.Sprint(a))
	}
}

// heal removes every rule in place.
func (f *firewall) heal() {
	f.mu.Lock()
	rules := f.rules
	f.rules = nil
	f.mu.Unlock()
	for _, spec := range rules {
		if out, err := exec.Command(f.bin, append([]string{"-w", "-D", "INPUT"}, spec...)...).CombinedOutput(); err != nil {
			f.t.Errorf("iptables -D INPUT %s: %v: %s", strings.Join(spec, " "), err, out)
		}
	}
}
