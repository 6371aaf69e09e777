package mesh

import (
	"testing"

	"github.com/rads-lang/constellation/api"
)

func TestHealthCounterThresholds(t *testing.T) {
	var h healthCounter
	if !h.observe(true, 2, 3) || !h.healthy {
		t.Fatal("the first passing check makes a new endpoint healthy")
	}
	for i := 0; i < 2; i++ {
		if h.observe(false, 2, 3) || !h.healthy {
			t.Fatalf("failure %d of 3 changed health", i+1)
		}
	}
	if !h.observe(false, 2, 3) || h.healthy {
		t.Fatal("the third failure must make it unhealthy")
	}
	if h.observe(true, 2, 3) || h.healthy {
		t.Fatal("one success of 2 must not make it healthy")
	}
	if !h.observe(true, 2, 3) || !h.healthy {
		t.Fatal("the second success makes it healthy")
	}
	var n healthCounter
	if !n.observe(false, 2, 3) || n.healthy {
		t.Fatal("a new endpoint failing its first check is unhealthy at once")
	}
}

func TestIntentions(t *testing.T) {
	in := map[string]IntentionRecord{}
	put := func(from, to string, allow bool) {
		in[from+">"+to] = IntentionRecord{From: from, To: to, Allow: allow}
	}
	cases := []struct {
		cns, c, tns, tgt string
		want             bool
	}{
		{"default", "web", "default", "api", true},
		{"default", "web", "team-a", "api", false},
		{"", "", "default", "api", true},
	}
	for _, c := range cases {
		if got, why := allowed(in, c.cns, c.c, c.tns, c.tgt); got != c.want {
			t.Errorf("%+v: %v (%s)", c, got, why)
		}
	}
	put("default/web", "team-a/api", true)
	put("default/*", "default/secrets", false)
	if ok, _ := allowed(in, "default", "web", "team-a", "api"); !ok {
		t.Error("an exact allow must allow across namespaces")
	}
	if ok, _ := allowed(in, "default", "other", "team-a", "api"); ok {
		t.Error("the allow is for web only")
	}
	if ok, _ := allowed(in, "default", "web", "default", "secrets"); ok {
		t.Error("a wildcard deny within the namespace must deny")
	}
	put("default/web", "default/secrets", true)
	if ok, _ := allowed(in, "default", "web", "default", "secrets"); !ok {
		t.Error("the exact pair wins over the wildcard")
	}
}

func TestConfigValidation(t *testing.T) {
	if err := validateConfig(api.MeshServiceConfig{LoadBalancer: "p2c_ewma", HealthCheckInterval: 10}); err != nil {
		t.Fatal(err)
	}
	neg := -1
	for _, c := range []api.MeshServiceConfig{{LoadBalancer: "x"}, {UnhealthyThreshold: -1}, {Retries: &neg}, {BreakerTimeout: 99999}} {
		if err := validateConfig(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	r := applyConfig(ServiceRecord{}, api.MeshServiceConfig{FailureThreshold: 7}).withDefaults()
	if r.FailureThreshold != 7 || r.LoadBalancer != DefaultLoadBalancer || r.Retries != DefaultRetries {
		t.Errorf("applyConfig: %+v", r)
	}
}
