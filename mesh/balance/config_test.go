package balance

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"": RoundRobin, "least-conn": LeastConn, " P2C_EWMA ": P2CEWMA, "geo_proximity": GeoProximity} {
		if p, err := ParsePolicy(in); err != nil || p != want {
			t.Errorf("ParsePolicy(%q) = %q, %v; want %q", in, p, err, want)
		}
	}
	_, err := ParsePolicy("fastest")
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), `"fastest"`) || !strings.Contains(err.Error(), "round_robin, least_conn, random, ip_hash, p2c_ewma, geo_proximity") {
		t.Fatalf("error %v should name the bad value and the valid ones", err)
	}
	b, _ := newTest(t, Config{Policy: "Least-Conn"})
	if b.Config().Policy != LeastConn {
		t.Fatalf("policy %q not normalised", b.Config().Policy)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Policy: "nearest"}, `unknown load balancer "nearest"`},
		{Config{Breaker: BreakerConfig{FailureThreshold: -1}}, "Breaker.FailureThreshold (failure_threshold) -1"},
		{Config{Breaker: BreakerConfig{HalfOpenRequests: 5000}}, "half_open_requests"},
		{Config{Breaker: BreakerConfig{FailureRate: 1.5}}, "Breaker.FailureRate 1.5"},
		{Config{Outlier: OutlierConfig{MaxEjectionPercent: 150}}, "MaxEjectionPercent 150"},
		{Config{Outlier: OutlierConfig{BaseEjectionTime: time.Hour}}, "MaxEjectionTime"},
		{Config{Budget: BudgetConfig{Ratio: -0.5}}, "Budget.Ratio"},
		{Config{Retry: RetryConfig{MaxAttempts: 1000}}, "Retry.MaxAttempts 1000"},
		{Config{Retry: RetryConfig{BaseBackoff: time.Second}}, "MaxBackoff"},
		{Config{Hedge: HedgeConfig{Quantile: 1}}, "Hedge.Quantile 1"},
		{Config{DecayTime: -time.Second}, "DecayTime"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v; want an error naming %q", c.cfg, err, c.want)
		}
		if _, err := New(c.cfg); err == nil {
			t.Errorf("New accepted %+v", c.cfg)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	b, _ := newTest(t, Config{})
	if err := b.Reconfigure(Config{Policy: "bogus"}); err == nil || b.Config().Policy != RoundRobin {
		t.Fatal("Reconfigure with a bad policy must fail and keep the old config")
	}
}
