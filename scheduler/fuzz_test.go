package scheduler

import (
	"testing"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
)

// FuzzDecodeSchedRequest: the scheduling protocol's request decoder never panics, and
// whatever it accepts is a known op with its required fields.
func FuzzDecodeSchedRequest(f *testing.F) {
	for _, r := range []schedRequest{
		{Op: "rights", Key: "team/cpu", Amount: 500, Replica: 42},
		{Op: "reserve", Reservation: &ReservationRecord{ID: "rsv-1", CPUCores: 2, RAMMB: 4096, DurationS: 3600}},
		{Op: "rights"},
		{Op: "drop tables"},
	} {
		b, err := state.Encode(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeSchedRequest(b)
		if err != nil {
			return
		}
		switch req.Op {
		case "rights":
			if req.Key == "" || req.Amount == 0 || req.Replica == 0 {
				t.Fatalf("accepted incomplete rights request %+v", req)
			}
		case "reserve":
			if req.Reservation == nil {
				t.Fatalf("accepted reserve without reservation")
			}
		default:
			t.Fatalf("accepted op %q", req.Op)
		}
		if _, err := state.Encode(req); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzDeploymentSpec: normalize never panics on decoded input and what it accepts has a
// valid name, a program and a known strategy.
func FuzzDeploymentSpec(f *testing.F) {
	f.Add([]byte(`{"name":"web","instances":3,"cpu_percent":25,"ram_mb":512,"command":["sleep","1"],"strategy":"binpack","constraints":["node.region=us-east"],"affinity":["service=cache;weight=80"],"anti_affinity":["service=db;hard"],"priority":"high"}`))
	f.Add([]byte(`{"name":"x","instances":-1,"command":[]}`))
	f.Add([]byte(`{"name":"a-b","instances":1,"script":"a.rads","ram_gb":0.5,"spread_by":"region","namespace":"team"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var spec api.DeploymentSpec
		if httpapi.DecodeStrict(b, &spec, false) != nil {
			return
		}
		if normalizeSpec(&spec) != nil {
			return
		}
		if !deployNameRE.MatchString(spec.Name) || (len(spec.Command) == 0) == (spec.Script == "") || spec.Strategy == "" {
			t.Fatalf("normalize accepted %+v", spec)
		}
		rs := specOf(spec)
		if r := specResources(&rs); r.CPUMilli < 0 || r.RAMMB < 0 || r.DiskMB < 0 {
			t.Fatalf("negative resources %+v", r)
		}
		// The replicated form round-trips through the record codec.
		b2, err := state.Encode(DeploymentRecord{Spec: rs})
		if err != nil {
			return // over the record size limit: Deploy refuses it
		}
		back, err := decodeRecord[DeploymentRecord](b2)
		if err != nil || back.Name != spec.Name || back.Instances != spec.Instances || back.Priority != rs.Priority {
			t.Fatalf("record round trip: %+v, %v", back, err)
		}
	})
}
