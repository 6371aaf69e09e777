package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/rads-lang/constellation/api"
	"github.com/spf13/cobra"
)

// newMeshCmd is `constellation mesh ...`: the service registry, configuration, intentions,
// calls by name and metrics (docs/mesh.md).
func newMeshCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "mesh",
		Short: "Service mesh: register services, list endpoints, call by name, configure balancing and resilience",
	}
	c.AddCommand(newMeshRegisterCmd(g), newMeshDeregisterCmd(g), newMeshServicesCmd(g), newMeshEndpointsCmd(g),
		newMeshConfigureCmd(g, "configure"), newMeshConfigureCmd(g, "circuit-breaker"), newMeshIntentionCmd(g, "allow"),
		newMeshIntentionCmd(g, "deny"), newMeshIntentionsCmd(g), newMeshCallCmd(g), newMeshMetricsCmd(g), newMeshMTLSCmd(g))
	return c
}

func newMeshRegisterCmd(g *globals) *cobra.Command {
	var (
		req    api.MeshRegisterRequest
		tags   string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "register --name NAME --port PORT [--instance NAME]",
		Short: "Register an endpoint of a service hosted by this node (a program on the node, or --instance's port)",
		Example: `  constellation mesh register --name user-service --version 1.0.0 --protocol http --port 8080 --health-check /health --tags api,auth
  constellation mesh register --name cache --protocol tcp --port 6379 --instance cache-0`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if tags != "" {
				req.Tags = strings.Split(tags, ",")
			}
			ep, err := g.client().MeshRegister(c.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), ep)
			}
			fmt.Fprintf(c.OutOrStdout(), "registered %s endpoint %s (%s, %s)\n", ep.Service, ep.ID, ep.Address, ep.Health)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&req.Name, "name", "", "service name")
	f.StringVar(&req.Namespace, "namespace", "", "namespace (default: default)")
	f.StringVar(&req.Version, "version", "", "service version, e.g. 1.0.0")
	f.StringVar(&req.Protocol, "protocol", "http", "http, tcp or grpc")
	f.IntVar(&req.Port, "port", 0, "port the endpoint listens on")
	f.StringVar(&req.HealthCheck, "health-check", "", "HTTP health path, e.g. /health, or exec:CMD ARGS run on the hosting node (default: a TCP connect)")
	f.StringVar(&tags, "tags", "", "comma-separated tags")
	f.StringVar(&req.Instance, "instance", "", "the instance serving the port (on any node: the registration goes to the node running it)")
	f.BoolVar(&req.TLS, "tls", false, "the endpoint speaks TLS (the node's enable-mtls certificate is used on the last hop)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newMeshDeregisterCmd(g *globals) *cobra.Command {
	var req api.MeshDeregisterRequest
	c := &cobra.Command{
		Use:   "deregister --name NAME [--instance NAME | --port PORT]",
		Short: "Remove endpoints of a service hosted by this node",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			n, err := g.client().MeshDeregister(c.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "deregistered %d endpoint(s) of %s\n", n, req.Name)
			return nil
		},
	}
	c.Flags().StringVar(&req.Name, "name", "", "service name")
	c.Flags().StringVar(&req.Namespace, "namespace", "", "namespace")
	c.Flags().StringVar(&req.Instance, "instance", "", "only this instance's endpoint (removed on the node running it, from any node)")
	c.Flags().IntVar(&req.Port, "port", 0, "only the endpoint on this port (of this node)")
	return c
}

func newMeshServicesCmd(g *globals) *cobra.Command {
	var (
		ns     string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "services",
		Short: "List the registered services",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ss, err := g.client().MeshServices(c.Context(), ns)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), ss)
			}
			t := newTable(c.OutOrStdout(), "NAME", "NAMESPACE", "PROTOCOL", "HEALTHY", "VERSIONS", "NODES", "BALANCER", "TAGS")
			for _, s := range ss {
				t.row(s.Name, s.Namespace, s.Protocol, fmt.Sprintf("%d/%d", s.Healthy, s.Endpoints), orDash(strings.Join(s.Versions, ",")),
					strings.Join(s.Nodes, ","), s.Config.LoadBalancer, orDash(strings.Join(s.Tags, ",")))
			}
			return t.flush()
		},
	}
	c.Flags().StringVar(&ns, "namespace", "", "only this namespace")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newMeshEndpointsCmd(g *globals) *cobra.Command {
	var (
		ns     string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "endpoints NAME",
		Short: "List a service's endpoints with health, node, version and tags",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			eps, err := g.client().MeshEndpoints(c.Context(), ns, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), eps)
			}
			t := newTable(c.OutOrStdout(), "ENDPOINT", "NODE", "ADDRESS", "HEALTH", "VERSION", "PROTOCOL", "TAGS", "REASON")
			for _, e := range eps {
				t.row(e.ID, e.Node, e.Address, e.Health, orDash(e.Version), e.Protocol, orDash(strings.Join(e.Tags, ",")), orDash(e.Reason))
			}
			return t.flush()
		},
	}
	c.Flags().StringVar(&ns, "namespace", "", "namespace")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newMeshConfigureCmd(g *globals, verb string) *cobra.Command {
	var (
		cfg     api.MeshServiceConfig
		ns      string
		retries int
		hedge   bool
	)
	short := "Configure a service's balancing, health checks, timeout and retries"
	if verb == "circuit-breaker" {
		short = "Configure a service's per-endpoint circuit breaker"
	}
	c := &cobra.Command{
		Use:   verb + " NAME [flags]",
		Short: short,
		Example: `  constellation mesh configure user-service --load-balancer p2c_ewma --health-check-interval 10 --unhealthy-threshold 3 --healthy-threshold 2
  constellation mesh circuit-breaker payment-service --failure-threshold 5 --timeout 30 --half-open-requests 3`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if c.Flags().Changed("retries") {
				cfg.Retries = &retries
			}
			if c.Flags().Changed("hedge") {
				cfg.Hedge = &hedge
			}
			out, err := g.client().MeshConfigure(c.Context(), ns, args[0], cfg)
			if err != nil {
				return err
			}
			return printJSON(c.OutOrStdout(), out)
		},
	}
	f := c.Flags()
	f.StringVar(&ns, "namespace", "", "namespace")
	f.IntVar(&cfg.FailureThreshold, "failure-threshold", 0, "consecutive failures that open an endpoint's breaker")
	f.IntVar(&cfg.BreakerTimeout, "timeout", 0, "seconds a breaker stays open before half-opening")
	f.IntVar(&cfg.HalfOpenRequests, "half-open-requests", 0, "probe requests while half open")
	if verb == "configure" {
		f.StringVar(&cfg.LoadBalancer, "load-balancer", "", "round_robin, least_conn, random, ip_hash, p2c_ewma or geo_proximity")
		f.IntVar(&cfg.HealthCheckInterval, "health-check-interval", 0, "seconds between health checks")
		f.IntVar(&cfg.HealthCheckTimeout, "health-check-timeout-ms", 0, "health check timeout")
		f.IntVar(&cfg.UnhealthyThreshold, "unhealthy-threshold", 0, "failed checks before unhealthy")
		f.IntVar(&cfg.HealthyThreshold, "healthy-threshold", 0, "passed checks before healthy again")
		f.IntVar(&cfg.TimeoutMs, "timeout-ms", 0, "default deadline of a call (covers retries)")
		f.IntVar(&retries, "retries", 0, "default retries of idempotent calls")
		f.BoolVar(&hedge, "hedge", true, "hedge idempotent calls after the observed p95")
	}
	return c
}

func newMeshIntentionCmd(g *globals, action string) *cobra.Command {
	var remove bool
	c := &cobra.Command{
		Use:   action + " FROM TO",
		Short: "Set an intention: " + action + " calls from service FROM to service TO ([NAMESPACE/]NAME, NAMESPACE/* or *)",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			a := action
			if remove {
				a = "delete"
			}
			out, err := g.client().MeshSetIntention(c.Context(), api.MeshIntention{From: args[0], To: args[1], Action: a})
			if err != nil {
				return err
			}
			if remove {
				fmt.Fprintf(c.OutOrStdout(), "removed the intention %s -> %s\n", out.From, out.To)
				return nil
			}
			fmt.Fprintf(c.OutOrStdout(), "%s %s -> %s\n", out.Action, out.From, out.To)
			return nil
		},
	}
	c.Flags().BoolVar(&remove, "remove", false, "remove the intention for the pair instead")
	return c
}

func newMeshIntentionsCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "intentions",
		Short: "List intentions (default: allow within a namespace, deny across)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			in, err := g.client().MeshIntentions(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), in)
			}
			t := newTable(c.OutOrStdout(), "FROM", "TO", "ACTION", "SET")
			for _, x := range in {
				t.row(x.From, x.To, x.Action, ago(x.At))
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newMeshCallCmd(g *globals) *cobra.Command {
	var (
		req      api.MeshCallRequest
		retries  int
		headers  []string
		asJSON   bool
		verbose  bool
		bodyFile string
	)
	c := &cobra.Command{
		Use:     "call NAME [--method M] [--path P] [--data BODY]",
		Short:   "Call a service by name through the mesh and print the answer",
		Example: `  constellation mesh call user-service --method GET --path /users/123 --timeout-ms 5000 --retries 3`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			req.Service = args[0]
			if c.Flags().Changed("retries") {
				req.Retries = &retries
			}
			if bodyFile != "" {
				b, err := os.ReadFile(bodyFile)
				if err != nil {
					return fmt.Errorf("--data-file: %w", err)
				}
				req.Body = string(b)
			}
			if len(headers) > 0 {
				req.Headers = map[string]string{}
				for _, h := range headers {
					k, v, ok := strings.Cut(h, ":")
					if !ok {
						return fmt.Errorf("--header %q: want 'Name: value'", h)
					}
					req.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			}
			res, err := g.client().MeshCall(c.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), res)
			}
			out := c.OutOrStdout()
			if verbose {
				fmt.Fprintf(c.ErrOrStderr(), "< %d from %s on %s in %.2f ms (%d attempt(s))\n", res.Status, res.Endpoint, res.Node, res.DurationMs, len(res.Attempts))
				keys := make([]string, 0, len(res.Headers))
				for k := range res.Headers {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					fmt.Fprintf(c.ErrOrStderr(), "< %s: %s\n", k, res.Headers[k])
				}
			}
			fmt.Fprint(out, res.Body)
			if res.Body != "" && !strings.HasSuffix(res.Body, "\n") && isTerminal(os.Stdout) {
				fmt.Fprintln(out)
			}
			if res.Status >= 400 {
				return fmt.Errorf("%s answered %d", req.Service, res.Status)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&req.Namespace, "namespace", "", "namespace")
	f.StringVar(&req.Method, "method", "GET", "HTTP method")
	f.StringVar(&req.Path, "path", "/", "path and query")
	f.StringVar(&req.Body, "data", "", "request body")
	f.StringVar(&bodyFile, "data-file", "", "request body from a file")
	f.StringArrayVarP(&headers, "header", "H", nil, "request header 'Name: value' (repeatable)")
	f.IntVar(&req.TimeoutMs, "timeout-ms", 0, "deadline covering retries (default: the service's)")
	f.IntVar(&retries, "retries", 0, "retries (idempotent calls only)")
	f.BoolVar(&req.Idempotent, "idempotent", false, "the call is safe to retry even if not GET/HEAD/PUT/DELETE")
	f.BoolVarP(&verbose, "verbose", "v", false, "print status, endpoint and headers on stderr")
	f.BoolVar(&asJSON, "json", false, "print the whole answer as JSON")
	return c
}

func newMeshMetricsCmd(g *globals) *cobra.Command {
	var (
		ns, window string
		asJSON     bool
	)
	c := &cobra.Command{
		Use:   "metrics NAME",
		Short: "Show rps, p50/p95/p99 latency and error rate of this node's calls to a service",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			mt, err := g.client().MeshMetrics(c.Context(), ns, args[0], window)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), mt)
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "%s over %gs: %d requests, %.1f rps, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, errors %.2f%%\n",
				mt.Service, mt.WindowS, mt.Requests, mt.RPS, mt.P50Ms, mt.P95Ms, mt.P99Ms, mt.ErrorRate)
			if len(mt.Errors) > 0 {
				var parts []string
				for k, v := range mt.Errors {
					parts = append(parts, k+"="+strconv.FormatInt(v, 10))
				}
				sort.Strings(parts)
				fmt.Fprintln(out, "errors by class:", strings.Join(parts, " "))
			}
			t := newTable(out, "ENDPOINT", "NODE", "REQUESTS", "P50_MS", "P99_MS", "ERRORS")
			for _, e := range mt.Endpoints {
				t.row(e.Endpoint, e.Node, strconv.FormatInt(e.Requests, 10), fmt.Sprintf("%.2f", e.P50Ms), fmt.Sprintf("%.2f", e.P99Ms), fmt.Sprintf("%.2f%%", e.ErrorRate))
			}
			return t.flush()
		},
	}
	c.Flags().StringVar(&ns, "namespace", "", "namespace")
	c.Flags().StringVar(&window, "window", "60s", "window, 1s to 1h")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newMeshMTLSCmd(g *globals) *cobra.Command {
	var req api.MeshTLSRequest
	c := &cobra.Command{
		Use:   "enable-mtls --cert FILE --key FILE --ca FILE",
		Short: "Use a certificate on the last hop to endpoints registered with --tls (paths on the node)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.client().MeshEnableMTLS(c.Context(), req); err != nil {
				return err
			}
			fmt.Fprintln(c.OutOrStdout(), "mTLS enabled for TLS endpoints of this node")
			return nil
		},
	}
	c.Flags().StringVar(&req.Cert, "cert", "", "client certificate (PEM)")
	c.Flags().StringVar(&req.Key, "key", "", "its key (PEM)")
	c.Flags().StringVar(&req.CA, "ca", "", "CA that signed the endpoints' certificates (PEM)")
	return c
}
