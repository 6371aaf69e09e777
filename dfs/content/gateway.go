package content

import (
	"net/http"
	"strings"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/gateway"
)

// Gateway is boxo's trustless gateway over the store, read-only and local: GET (or
// HEAD) /ipfs/{cid}[/path]?format=raw|car (or the Accept header
// application/vnd.ipld.raw / application/vnd.ipld.car) answers with verifiable blocks
// or a CAR of what this node has. It never fetches from the network and serves no
// /ipns/ or DNSLink names. Mount it under the local API (the caller authorizes).
func (s *Store) Gateway() http.Handler {
	s.gwOnce.Do(func() {
		backend, err := gateway.NewBlocksBackend(blockservice.New(s.bs, nil))
		if err != nil {
			s.gwErr = err
			return
		}
		s.gw = gateway.NewHandler(gateway.Config{
			NoDNSLink:         true,
			DisableHTMLErrors: true,
			MetricsRegistry:   s.cfg.Metrics,
		}, backend)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.gwErr != nil {
			http.Error(w, "dfs gateway: "+s.gwErr.Error(), http.StatusInternalServerError)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "dfs gateway: read-only; use GET or HEAD", http.StatusMethodNotAllowed)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/ipfs/") {
			http.Error(w, "dfs gateway: only /ipfs/{cid} paths are served", http.StatusNotFound)
			return
		}
		s.gw.ServeHTTP(w, r)
	})
}
