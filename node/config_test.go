package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	base := func() Config { c := Config{DataDir: t.TempDir(), Node: "n1"}; c.Defaults(); return c }
	tests := []struct {
		name  string
		mod   func(*Config)
		field string // "" = valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"bind host only", func(c *Config) { c.Bind = "127.0.0.1" }, ""},
		{"bind port only", func(c *Config) { c.Bind = ":7000" }, ""},
		{"bind v6", func(c *Config) { c.Bind = "[::1]:7000" }, ""},
		{"bind bad port", func(c *Config) { c.Bind = "127.0.0.1:99999" }, "bind"},
		{"bind junk", func(c *Config) { c.Bind = "a b:1" }, "bind"},
		{"cluster empty chars", func(c *Config) { c.Cluster = "bad name" }, "cluster"},
		{"node too long", func(c *Config) { c.Node = strings.Repeat("x", 64) }, "node"},
		{"advertise bad", func(c *Config) { c.Advertise = "1.2.3.4:port" }, "advertise"},
		{"label key", func(c *Config) { c.Labels = map[string]string{"bad key": "v"} }, "labels"},
		{"label value", func(c *Config) { c.Labels = map[string]string{"k": "a,b"} }, "labels"},
		{"api listen", func(c *Config) { c.APIListen = "7947" }, "api_listen"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "log_level"},
		{"liveness wan", func(c *Config) { c.Liveness = "wan" }, ""},
		{"liveness local", func(c *Config) { c.Liveness = "local" }, ""},
		{"liveness unknown", func(c *Config) { c.Liveness = "fast" }, "liveness"},
		{"liveness case", func(c *Config) { c.Liveness = "WAN" }, "liveness"},
		{"anti entropy", func(c *Config) { c.AntiEntropyInterval = time.Millisecond }, "anti_entropy_interval"},
	}
	if c := base(); c.Liveness != "lan" {
		t.Errorf("default liveness = %q; want lan", c.Liveness)
	}
	c := base()
	c.Liveness = "fast"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "one of lan, wan, local") {
		t.Errorf("Validate with liveness fast = %v; want the accepted profiles named", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			err := c.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("Validate() = %v; want a ConfigError on %q", err, tt.field)
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	m, err := ParseLabels("region=us-east, type=database")
	if err != nil || m["region"] != "us-east" || m["type"] != "database" || len(m) != 2 {
		t.Fatalf("ParseLabels = %v, %v", m, err)
	}
	if got := FormatLabels(m); got != "region=us-east,type=database" {
		t.Fatalf("FormatLabels = %q", got)
	}
	for _, bad := range []string{"region", "=x", "a=b,,c"} {
		if _, err := ParseLabels(bad); err == nil {
			t.Errorf("ParseLabels(%q) = nil error; want one", bad)
		}
	}
}

func TestConfigFileAndMerge(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte("cluster: prod\nnode: file-node\njoin: [\"10.0.0.1:7946\"]\nlabels: {region: eu}\ngossip_batch: 10ms\nliveness: wan\n"), 0o600)
	c, err := LoadConfigFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != "prod" || c.Node != "file-node" || len(c.Join) != 1 || c.Labels["region"] != "eu" || c.GossipBatch != 10*time.Millisecond || c.Liveness != "wan" {
		t.Fatalf("file config = %+v", c)
	}
	// Flags win over the file; unset flags do not.
	c.Merge(Config{Node: "flag-node", Cluster: "ignored", Liveness: "local"}, map[string]bool{"node": true, "liveness": true})
	if c.Node != "flag-node" || c.Cluster != "prod" || c.Liveness != "local" {
		t.Fatalf("after merge: node=%q cluster=%q liveness=%q", c.Node, c.Cluster, c.Liveness)
	}
	os.WriteFile(p, []byte("clustr: typo\n"), 0o600)
	if _, err := LoadConfigFile(p); err == nil || !strings.Contains(err.Error(), "clustr") {
		t.Fatalf("unknown key: err = %v; want it named", err)
	}
	os.WriteFile(p, []byte(""), 0o600)
	if _, err := LoadConfigFile(p); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	l, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second lock: err = %v; want ErrDataDirInUse", err)
	}
	l.release()
	l2, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.release()
}
