package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/ui"
)

// uiLink is what `constellation ui --json` prints once it serves.
type uiLink struct {
	URL      string    `json:"url"`
	LoginURL string    `json:"login_url"`
	Expires  time.Time `json:"login_expires"`
	Socket   string    `json:"socket"`
}

func newUICmd(g *globals) *cobra.Command {
	var listen string
	var open, asJSON bool
	c := &cobra.Command{
		Use:   "ui [--listen 127.0.0.1:0] [--open]",
		Short: "Open the web dashboard of a node reachable only on its Unix socket",
		Long: `Serves the dashboard of the node whose Unix socket is in --data-dir (or --api unix:PATH)
on a local port and prints a one-time login link: it works once, within 60 seconds, and
gives the browser a session (12 hours) as the node's owner. The port admits no request
without that session. Runs until interrupted.

A node started with --api-listen serves the dashboard itself at https://HOST:PORT/ui/
(log in with a token from 'constellation token create').`,
		Example: `  constellation ui --open
  constellation ui --data-dir /var/lib/constellation --listen 127.0.0.1:8080`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			sock, err := uiSocket(g)
			if err != nil {
				return err
			}
			host, _, err := net.SplitHostPort(listen)
			if err != nil {
				return fmt.Errorf("--listen %q: %v; want HOST:PORT on loopback, e.g. 127.0.0.1:0", listen, err)
			}
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				return fmt.Errorf("--listen %q: the dashboard is served in plain HTTP as the node's owner, so only on loopback (127.0.0.1, ::1 or localhost); to reach it from elsewhere, start the node with --api-listen (TLS, tokens)", listen)
			}
			// The node must answer before we print a link.
			cl := api.NewClient("", "unix:"+sock, "")
			ctx, cancel := context.WithTimeout(c.Context(), 10*time.Second)
			st, err := cl.Status(ctx)
			cancel()
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", listen, err)
			}
			p := ui.NewProxy(sock, ui.NewSessions(ui.SessionsConfig{}))
			defer p.Close()
			srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(l) }()
			code, err := p.NewLoginCode()
			if err != nil {
				srv.Close()
				return err
			}
			base := "http://" + l.Addr().String()
			link := uiLink{URL: base + "/ui/", LoginURL: base + "/ui/login?code=" + code,
				Expires: time.Now().Add(ui.LoginCodeTTL).UTC().Truncate(time.Second), Socket: sock}
			out := c.OutOrStdout()
			if asJSON {
				if err := json.NewEncoder(out).Encode(link); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "dashboard of node %s (cluster %s) at %s\n", st.Name, st.Cluster, link.URL)
				fmt.Fprintf(out, "open this login link within 60 s (it works once): %s\n", link.LoginURL)
				fmt.Fprintln(out, "Ctrl-C stops serving.")
			}
			if open {
				if err := openBrowser(link.LoginURL); err != nil {
					fmt.Fprintf(c.ErrOrStderr(), "constellation: could not open a browser (%v); open the link above\n", err)
				}
			}
			sig, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			select {
			case <-sig.Done():
			case err := <-served:
				return fmt.Errorf("serving the dashboard: %w", err)
			}
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
			if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "local address to serve on (loopback only; port 0 picks a free one)")
	c.Flags().BoolVar(&open, "open", false, "open the login link in the browser ($BROWSER, else xdg-open)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the addresses as one JSON line")
	return c
}

// uiSocket is the node's Unix socket: --api unix:PATH, else the one in the data dir.
func uiSocket(g *globals) (string, error) {
	a := g.api
	if a == "" {
		a = os.Getenv("CONSTELLATION_API")
	}
	switch {
	case strings.HasPrefix(a, "unix:"):
		return strings.TrimPrefix(strings.TrimPrefix(a, "unix:"), "//"), nil
	case a != "":
		return "", fmt.Errorf("--api %s is a TCP API: a node with --api-listen serves the dashboard itself at https://%s/ui/ (log in with a token); 'constellation ui' is for a node reachable only on its Unix socket (--data-dir DIR or --api unix:PATH)",
			a, strings.TrimPrefix(a, "https://"))
	}
	dir := g.dataDir
	if dir == "" {
		dir = api.DefaultDataDir()
	}
	return filepath.Join(dir, "api.sock"), nil
}

// openBrowser opens url with $BROWSER or xdg-open (which return once the browser has it).
func openBrowser(url string) error {
	prog := os.Getenv("BROWSER")
	if prog == "" {
		prog = "xdg-open"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, prog, url).Run()
}
