package p2p

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseBind(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"0.0.0.0:7946", []string{"/ip4/0.0.0.0/udp/7946/quic-v1", "/ip4/0.0.0.0/tcp/7946"}},
		{"0.0.0.0", []string{"/ip4/0.0.0.0/udp/7946/quic-v1", "/ip4/0.0.0.0/tcp/7946"}},
		{"127.0.0.1:9000", []string{"/ip4/127.0.0.1/udp/9000/quic-v1", "/ip4/127.0.0.1/tcp/9000"}},
		{":7000", []string{"/ip4/0.0.0.0/udp/7000/quic-v1", "/ip4/0.0.0.0/tcp/7000"}},
		{"[::]:7946", []string{"/ip6/::/udp/7946/quic-v1", "/ip6/::/tcp/7946"}},
		{"::1", []string{"/ip6/::1/udp/7946/quic-v1", "/ip6/::1/tcp/7946"}},
		{"[fe80::1]", []string{"/ip6/fe80::1/udp/7946/quic-v1", "/ip6/fe80::1/tcp/7946"}},
		{" 10.0.0.1:0 ", []string{"/ip4/10.0.0.1/udp/0/quic-v1", "/ip4/10.0.0.1/tcp/0"}},
		{"/ip4/0.0.0.0/tcp/1234", []string{"/ip4/0.0.0.0/tcp/1234"}},
	}
	for _, tt := range tests {
		got, err := ParseBind(tt.in)
		if err != nil {
			t.Errorf("ParseBind(%q) error %v", tt.in, err)
			continue
		}
		var gs []string
		for _, m := range got {
			gs = append(gs, m.String())
		}
		if strings.Join(gs, " ") != strings.Join(tt.want, " ") {
			t.Errorf("ParseBind(%q) = %v; want %v", tt.in, gs, tt.want)
		}
	}
	for _, bad := range []string{"", "host.example:7946", "1.2.3.4:99999", "1.2.3.4:x", "1:2:3", "/ip4/1.2.3.4/bogus", "[::1", "-1"} {
		_, err := ParseBind(bad)
		if !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseBind(%q) error = %v; want ErrBadAddress", bad, err)
			continue
		}
		if !strings.Contains(err.Error(), "accepted forms") {
			t.Errorf("ParseBind(%q) error %q does not list the accepted forms", bad, err)
		}
	}
}

func TestParseJoin(t *testing.T) {
	const id = "12D3KooWBXPvBpYjoo4CqjrG1gVKuot2hZCix28P3q4pZVDpsypZ"
	tests := []struct {
		in     string
		wantID string
		want   []string
	}{
		{"10.0.0.5:7946", "", []string{"/ip4/10.0.0.5/udp/7946/quic-v1", "/ip4/10.0.0.5/tcp/7946"}},
		{"10.0.0.5", "", []string{"/ip4/10.0.0.5/udp/7946/quic-v1", "/ip4/10.0.0.5/tcp/7946"}},
		{"node-1.example.com:8000", "", []string{"/dns/node-1.example.com/udp/8000/quic-v1", "/dns/node-1.example.com/tcp/8000"}},
		{"localhost", "", []string{"/dns/localhost/udp/7946/quic-v1", "/dns/localhost/tcp/7946"}},
		{"[2001:db8::1]:7946", "", []string{"/ip6/2001:db8::1/udp/7946/quic-v1", "/ip6/2001:db8::1/tcp/7946"}},
		{"/ip4/1.2.3.4/udp/7946/quic-v1/p2p/" + id, id, []string{"/ip4/1.2.3.4/udp/7946/quic-v1"}},
		{"/ip4/1.2.3.4/tcp/7946", "", []string{"/ip4/1.2.3.4/tcp/7946"}},
		{"/dns4/seed.example/udp/7946/quic-v1", "", []string{"/dns4/seed.example/udp/7946/quic-v1"}},
	}
	for _, tt := range tests {
		got, err := ParseJoin(tt.in)
		if err != nil {
			t.Errorf("ParseJoin(%q) error %v", tt.in, err)
			continue
		}
		var gs []string
		for _, m := range got.Addrs {
			gs = append(gs, m.String())
		}
		if strings.Join(gs, " ") != strings.Join(tt.want, " ") || got.ID.String() != tt.wantID && !(tt.wantID == "" && got.ID == "") {
			t.Errorf("ParseJoin(%q) = %v %v; want %v %v", tt.in, got.ID, gs, tt.wantID, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("ParseJoin(%q).String() = %q; want the input", tt.in, got.String())
		}
	}
	bad := []string{"", "0.0.0.0:7946", ":7946", "1.2.3.4:70000", "bad host:1", "-x-.example", "/ip4/1.2.3.4",
		"/ip4/1.2.3.4/udp/7946/quic", "/ip4/1.2.3.4/tcp/1/ws", "/p2p/" + id, "/ip4/1.2.3.4/udp/1/quic-v1/p2p/notanid", "a..b"}
	for _, s := range bad {
		_, err := ParseJoin(s)
		if !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseJoin(%q) error = %v; want ErrBadAddress", s, err)
			continue
		}
		if !strings.Contains(err.Error(), "accepted forms") || !strings.Contains(err.Error(), "join") {
			t.Errorf("ParseJoin(%q) error %q does not name the address and the accepted forms", s, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	base := Config{}.withDefaults()
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if base.Cluster != DefaultCluster || len(base.Listen) != 2 {
		t.Errorf("defaults: cluster %q listen %v", base.Cluster, base.Listen)
	}
	mods := map[string]func(*Config){
		"tiny gossip":     func(c *Config) { c.MaxGossipBytes = 10 },
		"huge gossip":     func(c *Config) { c.MaxGossipBytes = 8 << 20 },
		"sync < gossip":   func(c *Config) { c.MaxSyncBytes = c.MaxGossipBytes - 1 },
		"negative batch":  func(c *Config) { c.GossipBatch = -1 },
		"backoff order":   func(c *Config) { c.JoinBackoffMax = c.JoinBackoffMin / 2 },
		"watermarks":      func(c *Config) { c.ConnHigh = c.ConnLow - 1 },
		"empty join addr": func(c *Config) { c.Join = []JoinAddr{{Raw: "x"}} },
		"huge message":    func(c *Config) { c.MaxMessageBytes = MaxServiceFrame + 1 },
		"log window":      func(c *Config) { c.RejectLogWindow = -1 },
		"log burst":       func(c *Config) { c.RejectLogBurst = -1 },
	}
	for name, mod := range mods {
		c := base
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate() = %v; want ErrConfig", name, err)
		}
	}
}

func TestIdentityPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "identity.key")
	k1, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode %v; want 0600", st.Mode().Perm())
	}
	k2, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Error("identity changed across loads")
	}
	// A host restarted on the same file keeps its peer ID.
	cfg := Config{Listen: loopback(t), IdentityFile: path, Logger: testLogger(t, nil)}
	h1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id1 := h1.ID()
	h1.Close()
	h2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if h2.ID() != id1 {
		t.Errorf("peer ID after restart %s; want %s", h2.ID(), id1)
	}
	// A corrupt file is refused, named, and left alone.
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadIdentity(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("corrupt identity: err = %v; want an error naming %s", err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != "garbage" {
		t.Error("corrupt identity file was overwritten")
	}
}

func TestAddrsExpandUnspecified(t *testing.T) {
	cfg := fastConfig(t)
	cfg.Listen, _ = ParseBind("0.0.0.0:0")
	h := startHost(t, cfg, nil)
	addrs := h.Addrs()
	if len(addrs) == 0 {
		t.Fatal("no addresses")
	}
	for _, a := range addrs {
		s := a.String()
		if strings.Contains(s, "/0.0.0.0/") {
			t.Errorf("address %s not expanded", s)
		}
		if !strings.HasSuffix(s, "/p2p/"+h.ID().String()) {
			t.Errorf("address %s lacks /p2p/<id>", s)
		}
	}
}
