package p2p

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/internal/testutil"
)

// requireRoot skips the test when not root, unless CONSTELLATION_TEST_REQUIRE_ROOT=1,
// in which case it fails (CI must run these tests, not skip them).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("ip"); err == nil {
			return
		}
		if os.Getenv("CONSTELLATION_TEST_REQUIRE_ROOT") == "1" {
			t.Fatal("the ip command (iproute2) is required")
		}
		t.Skip("needs the ip command (iproute2)")
	}
	if os.Getenv("CONSTELLATION_TEST_REQUIRE_ROOT") == "1" {
		t.Fatal("root required (CONSTELLATION_TEST_REQUIRE_ROOT=1)")
	}
	t.Skip("needs root for network namespaces")
}

const helperEnv = "CONSTELLATION_P2P_MDNS_HELPER"

// TestMDNSHelperProcess is not a test: TestMDNSJoinInNetns re-executes the test binary
// with this test selected inside a network namespace. It runs one host with mDNS and
// no join addresses and reports on stdout.
func TestMDNSHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return // only meaningful inside the namespace (os/exec's TestHelperProcess pattern)
	}
	cfg := Config{
		Cluster:      os.Getenv("HELPER_CLUSTER"),
		ClusterKey:   os.Getenv("HELPER_KEY"),
		MDNS:         true,
		IdentityFile: filepath.Join(t.TempDir(), "id.key"),
		Logger:       testLogger(t, os.Stderr),
		AdmitTimeout: 3 * time.Second,
	}
	cfg.Listen, _ = ParseBind("0.0.0.0:7946")
	seen := make(chan peer.ID, 16)
	cfg.OnPeerAdmitted = func(p peer.ID) { seen <- p }
	h, err := New(cfg)
	if err != nil {
		fmt.Println("ERROR", err)
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Start(context.Background(), nil); err != nil {
		fmt.Println("ERROR", err)
		t.Fatal(err)
	}
	fmt.Println("ID", h.ID())
	timeout := time.After(60 * time.Second)
	for {
		select {
		case p := <-seen:
			fmt.Println("ADMITTED", p)
		case <-timeout:
			return
		}
	}
}

func TestMDNSJoinInNetns(t *testing.T) {
	requireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("%d", os.Getpid()%100000)
	bridge := "c7nbr" + tag
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("link", "add", bridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	run("link", "set", bridge, "up")

	type node struct {
		name, key string
		out       chan string
		stderr    *logBuf
	}
	nodes := []*node{{name: "a", key: "k"}, {name: "b", key: "k"}, {name: "c", key: "wrong"}}
	subnet := 18 + os.Getpid()%2 // 198.18.x or 198.19.x: inside 198.18.0.0/15
	third := os.Getpid() % 250
	var wg sync.WaitGroup
	for i, n := range nodes {
		ns := "c7n" + n.name + tag
		vethHost := "c7v" + n.name + tag
		run("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run("link", "add", vethHost, "type", "veth", "peer", "name", "eth0", "netns", ns)
		t.Cleanup(func() { exec.Command("ip", "link", "del", vethHost).Run() })
		run("link", "set", vethHost, "master", bridge, "up")
		run("-n", ns, "link", "set", "lo", "up")
		run("-n", ns, "addr", "add", fmt.Sprintf("198.%d.%d.%d/24", subnet, third, i+1), "dev", "eth0")
		run("-n", ns, "link", "set", "eth0", "up", "multicast", "on")
		run("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")

		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, exe, "-test.run=^TestMDNSHelperProcess$", "-test.v")
		cmd.Env = append(os.Environ(), helperEnv+"=1", "HELPER_CLUSTER=netns-"+tag, "HELPER_KEY="+n.key)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stderr := &logBuf{}
		n.stderr = stderr
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cancel()
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("node %s stderr:\n%s", n.name, stderr.String())
			}
		})
		n.out = make(chan string, 64)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				n.out <- sc.Text()
			}
			close(n.out)
		}()
	}
	ids := map[string]string{}    // node -> peer ID
	admitted := map[string]bool{} // "x>y": x admitted y
	deadline := time.After(60 * time.Second)
	done := func() bool {
		return len(ids) == 3 && admitted[ids["a"]+">"+ids["b"]] && admitted[ids["b"]+">"+ids["a"]]
	}
	for !done() {
		progress := false
		for _, n := range nodes {
			select {
			case line, ok := <-n.out:
				if !ok {
					continue
				}
				progress = true
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && f[0] == "ID":
					ids[n.name] = f[1]
				case len(f) == 2 && f[0] == "ADMITTED":
					admitted[ids[n.name]+">"+f[1]] = true
				case len(f) > 0 && f[0] == "ERROR":
					t.Fatalf("node %s: %s", n.name, line)
				}
			default:
			}
		}
		if !progress {
			select {
			case <-deadline:
				t.Fatalf("a and b did not admit each other via mDNS within 60s; ids %v admitted %v", ids, admitted)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// Give the wrong-key node time to be found (and refused) too.
	time.Sleep(3 * time.Second)
	drain := func(n *node) {
		for {
			select {
			case line, ok := <-n.out:
				if !ok {
					return
				}
				if f := strings.Fields(line); len(f) == 2 && f[0] == "ADMITTED" {
					admitted[ids[n.name]+">"+f[1]] = true
				}
			default:
				return
			}
		}
	}
	for _, n := range nodes {
		drain(n)
	}
	for k := range admitted {
		if strings.Contains(k, ids["c"]) {
			t.Errorf("wrong-key node admitted: %s", k)
		}
	}
	// The wrong-key node was found by mDNS and refused with a clear line.
	testutil.WaitFor(t, 20*time.Second, "wrong-key node refused", func() (bool, string) {
		return strings.Contains(nodes[2].stderr.String(), "failed cluster admission: wrong cluster key"), ""
	})
}
