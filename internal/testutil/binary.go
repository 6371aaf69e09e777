package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

var (
	buildMu   sync.Mutex
	buildDir  string
	buildBins = map[bool]string{} // race -> path
)

// Binary builds cmd/constellation once per test process (with -race when race is true, so
// that nodes run as child processes report their own data races) and returns its path. The
// package's TestMain calls RemoveBinaries when the tests are done.
func Binary(tb testing.TB, race bool) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildBins[race]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "c7n-test-bin-")
		if err != nil {
			tb.Fatal(err)
		}
		buildDir = d
	}
	p := fmt.Sprintf("%s/constellation-race-%v", buildDir, race)
	args := []string{"build", "-o", p}
	if race {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "github.com/rads-lang/constellation/cmd/constellation")...).CombinedOutput()
	if err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	buildBins[race] = p
	return p
}

// RemoveBinaries removes what Binary built (call it from TestMain after m.Run).
func RemoveBinaries() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir, buildBins = "", map[bool]string{}
	}
}

// CleanEnv is the environment without CONSTELLATION_* variables, which would point a
// child process at another node.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSTELLATION_") {
			env = append(env, kv)
		}
	}
	return env
}

// FreePort returns a port free on 127.0.0.1 for both TCP and UDP (a node's QUIC and TCP
// listeners share it), not in taken (which it then records; may be nil).
func FreePort(tb testing.TB, taken map[int]bool) int {
	tb.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if !taken[port] {
			if taken != nil {
				taken[port] = true
			}
			return port
		}
	}
	tb.Fatal("no free TCP+UDP port on 127.0.0.1")
	return 0
}
