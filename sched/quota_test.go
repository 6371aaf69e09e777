package sched

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestCheckQuota(t *testing.T) {
	base := Quota{MaxCPUCores: 16, MaxRAMGB: 64, MaxInstances: 50}
	burst := base
	burst.AllowCPUBurst, burst.MaxBurstPercent = true, 150
	tests := []struct {
		name      string
		q         Quota
		used, add Usage
		dim       Dimension // "" = admitted
		burstCPU  int64
		msg       string
	}{
		{"fits", base, Usage{8000, 1024, 10}, Usage{8000, 1024, 1}, "", 0, ""},
		{"instances", base, Usage{0, 0, 50}, Usage{0, 0, 1}, DimInstances, 0,
			"sched: namespace team: instances quota exceeded: asked 1, used 50 of 50"},
		{"cpu", base, Usage{15500, 0, 1}, Usage{1000, 0, 1}, DimCPU, 0,
			"cpu_cores quota exceeded: asked 1, used 15.5 of 16"},
		{"ram", base, Usage{0, 64 * 1024, 1}, Usage{0, 1, 1}, DimRAM, 0, "ram_mb quota exceeded: asked 1, used 65536 of 65536"},
		{"burst admits over base", burst, Usage{15000, 0, 1}, Usage{4000, 0, 1}, "", 3000, ""},
		{"burst ceiling", burst, Usage{20000, 0, 1}, Usage{4001, 0, 1}, DimCPU, 0, "quota with burst exceeded: asked 4.001, used 20 of 24"},
		{"burst does not cover ram", burst, Usage{0, 64 * 1024, 1}, Usage{0, 1, 1}, DimRAM, 0, "ram_mb quota exceeded"},
		{"unlimited", Quota{}, Usage{1 << 40, 1 << 40, 1 << 40}, Usage{1 << 20, 1 << 20, 1 << 20}, "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := CheckQuota("team", tt.q, tt.used, tt.add)
			if tt.dim == "" {
				if err != nil || d.BurstCPUMilli != tt.burstCPU || d.InBurst() != (tt.burstCPU > 0) {
					t.Fatalf("CheckQuota = %+v, %v; want admitted with burst %d", d, err, tt.burstCPU)
				}
				return
			}
			var qe *QuotaError
			if !errors.As(err, &qe) || !errors.Is(err, ErrQuota) || qe.Dim != tt.dim {
				t.Fatalf("CheckQuota error %v; want %s QuotaError", err, tt.dim)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q; want it to contain %q", err, tt.msg)
			}
		})
	}
	for _, q := range []Quota{{MaxCPUCores: -1}, {MaxBurstPercent: 50}, {MaxBurstPercent: 1001}, {MaxRAMGB: math.NaN()}} {
		if _, err := CheckQuota("x", q, Usage{}, Usage{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckQuota with %+v: %v; want ErrInvalid", q, err)
		}
	}
}

func TestMaxFit(t *testing.T) {
	q := Quota{MaxCPUCores: 4, MaxRAMGB: 2, MaxInstances: 10, AllowRAMBorrow: true, MaxBurstPercent: 200}
	r := Resources{CPUMilli: 500, RAMMB: 1024}
	// CPU allows 8, RAM with borrow 4096/1024 = 4, instances 10.
	if got := MaxFit(q, Usage{}, r); got != 4 {
		t.Fatalf("MaxFit = %d; want 4", got)
	}
	if got := MaxFit(q, Usage{RAMMB: 3500, Instances: 3}, r); got != 0 {
		t.Fatalf("MaxFit nearly full = %d; want 0", got)
	}
	if got := MaxFit(Quota{}, Usage{}, r); got != math.MaxInt {
		t.Fatalf("MaxFit unlimited = %d", got)
	}
	// MaxFit agrees with CheckQuota at the boundary.
	for used := int64(0); used < 4096; used += 300 {
		u := Usage{RAMMB: used}
		n := MaxFit(q, u, r)
		if _, err := CheckQuota("x", q, u, UsageOf(r, n)); err != nil {
			t.Fatalf("used %d: MaxFit %d rejected by CheckQuota: %v", used, n, err)
		}
		if _, err := CheckQuota("x", q, u, UsageOf(r, n+1)); err == nil {
			t.Fatalf("used %d: MaxFit %d but %d also fit", used, n, n+1)
		}
	}
}
