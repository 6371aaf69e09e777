package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/internal/testutil"
	"github.com/rads-lang/constellation/telemetry/alert"
)

// TestAlertChannelCredentialsSealed plays a member that reads the replicated state (or a
// stolen state.db): with a cluster key, a PagerDuty routing key, an SMTP password and a
// Slack webhook's secret path are in no node's state in clear, every read masks them, and
// the node that delivers still sends the real routing key.
func TestAlertChannelCredentialsSealed(t *testing.T) {
	ns := startCluster(t, 2, func(_ int, c *Config) { c.ClusterKey = "seal-test-key" })
	stamp := fmt.Sprint(time.Now().UnixNano())
	routingKey, password, slackPath := "RK-"+stamp, "PW-"+stamp, "/services/T0/B0/SLACK-"+stamp

	var mu sync.Mutex
	var got []map[string]any
	pd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer pd.Close()

	for _, spec := range []api.ChannelSpec{
		{Name: "page", Type: api.ChannelPagerDuty, URL: pd.URL + "/v2/enqueue", RoutingKey: routingKey},
		{Name: "mail", Type: api.ChannelEmail, SMTPHost: "127.0.0.1:1", From: "a@example.com", To: []string{"b@example.com"}, Username: "u", Password: password},
		{Name: "chat", Type: api.ChannelSlack, URL: "https://hooks.example.com" + slackPath},
	} {
		info, err := ns[0].alerts.AddChannel(spec)
		if err != nil {
			t.Fatalf("add %s: %v", spec.Name, err)
		}
		if b, _ := json.Marshal(info); strings.Contains(string(b), stamp) {
			t.Errorf("the answer to adding %s shows a credential: %s", spec.Name, b)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "channels replicated", func() (bool, string) {
		_, ok := ns[1].GetState(alert.CollChannels, "chat")
		return ok, "chat missing on n1"
	})
	for _, n := range ns {
		var keys []string
		n.st.View(func(v *state.View) { keys = v.Keys(alert.CollChannels) })
		for _, k := range keys {
			b, _ := n.GetState(alert.CollChannels, k)
			if strings.Contains(string(b), stamp) {
				t.Errorf("%s: channel %s holds a credential in clear", n.cfg.Node, k)
			}
		}
	}
	// The other node opens the sealed key when it delivers.
	res, err := ns[1].alerts.TestChannel(t.Context(), "page")
	if err != nil || !res.OK {
		t.Fatalf("test delivery from n1: %+v %v", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || got[0]["routing_key"] != routingKey {
		t.Fatalf("PagerDuty got %v; want routing_key %s", got, routingKey)
	}
}
