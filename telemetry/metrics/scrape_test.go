package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type targets []ScrapeTarget

func (t targets) ScrapeTargets() []ScrapeTarget { return t }

const expo = `# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{route="/a",instance="spoofed"} 7
# TYPE go_goroutines gauge
go_goroutines 12
`

// TestScraper: instances' own /metrics are scraped and relabelled (their instance label
// cannot spoof another's), a failing one is reported down, and one over the series
// limit is refused.
func TestScraper(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			_, _ = w.Write([]byte(expo))
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer down.Close()
	s := NewScraper(targets{{Instance: "app", Namespace: "prod", Addr: addr}, {Instance: "broken", Namespace: "default", Addr: strings.TrimPrefix(down.URL, "http://")}})
	fams, err := s.Gather()
	if err == nil || !strings.Contains(err.Error(), "instance broken") {
		t.Fatalf("gather error %v, want one naming broken", err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	got := map[string]string{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			got[f.GetName()] = strings.Join(ls, ",")
		}
	}
	if got["app_requests_total"] != "route=/a,exported_instance=spoofed,instance=app,namespace=prod" || got["go_goroutines"] != "instance=app,namespace=prod" {
		t.Fatalf("relabelled: %v", got)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP constellation_instance_scrape_up 1 when the last scrape of the instance's /metrics (create --metrics-port) worked, else 0.
# TYPE constellation_instance_scrape_up gauge
constellation_instance_scrape_up{instance="app",namespace="prod"} 1
constellation_instance_scrape_up{instance="broken",namespace="default"} 0
`), "constellation_instance_scrape_up"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseExposition(strings.NewReader(expo), "i", "n", 1); err == nil || !strings.Contains(err.Error(), "more than the 1 allowed") {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := ParseExposition(strings.NewReader("x{"), "i", "n", 10); err == nil {
		t.Fatal("bad exposition accepted")
	}
}

// FuzzParseExposition: whatever an instance serves, parsing returns families carrying
// its instance label, or an error; it never panics.
func FuzzParseExposition(f *testing.F) {
	f.Add([]byte(expo))
	f.Add([]byte("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fams, err := ParseExposition(strings.NewReader(string(b)), "app", "ns", 1000)
		if err != nil {
			return
		}
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				n := 0
				for _, l := range m.GetLabel() {
					if l.GetName() == "instance" {
						n++
						if l.GetValue() != "app" {
							t.Fatalf("instance label %q", l.GetValue())
						}
					}
				}
				if n != 1 {
					t.Fatalf("%d instance labels", n)
				}
			}
		}
	})
}
