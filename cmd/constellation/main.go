// Command constellation is the constellation node and its command-line client.
//
// `constellation peer` (alias `init`) runs a node in the foreground; every other command is a
// client of a running node's local API, found with --data-dir DIR or --api HOST:PORT
// (or CONSTELLATION_API). See README.md for the reference.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/node"
	"github.com/rads-lang/constellation/sandbox"
)

// exitError carries a process exit code through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	sandbox.Init() // returns at once unless this process is an instance's short-lived init
	root := newRoot()
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "constellation:", err)
		os.Exit(1)
	}
}

// globals are the flags every client command accepts anywhere among its flags.
type globals struct {
	dataDir     string
	api         string
	token       string
	fingerprint string
	trust       bool
}

// client is the API client the flags describe; a bad flag is returned by its first request.
func (g *globals) client() *api.Client {
	c, err := api.NewClientConfig(api.ClientConfig{
		DataDir: g.dataDir, API: g.api, Token: g.token, Fingerprint: g.fingerprint, Trust: g.trust,
		OnTrust: func(addr, fp, file string) {
			fmt.Fprintf(os.Stderr, "constellation: trusting %s on first use: recorded its certificate %s in %s\n", addr, fp, file)
		},
	})
	if err != nil {
		return api.FailedClient(err)
	}
	return c
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "constellation",
		Short: "A leaderless peer-to-peer cluster: isolated instances, placement, files and a mesh in one binary",
		Long: `constellation joins machines into one cluster with no controller.

Run a node:       constellation peer [--join HOST:PORT] [--cluster-key KEY]
Ask a node:       constellation status | nodes | events | send | broadcast
Run instances:    constellation create | list | stats | logs | stop | rm | resources ...

Client commands find their node with --data-dir DIR (its Unix socket) or --api HOST:PORT
(or the CONSTELLATION_API environment variable). A TCP API is TLS: the client pins its
certificate (--api-fingerprint, <data-dir>/api.fingerprint, or known_nodes with --trust) and
sends the token only to a server that holds it. Read commands print a table, or JSON with --json.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       node.Version,
	}
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", "", "the node's data directory (default $CONSTELLATION_DATA_DIR, /var/lib/constellation as root, else ~/.local/share/constellation)")
	root.PersistentFlags().StringVar(&g.api, "api", "", "the node's API address HOST:PORT or unix:/path/api.sock (default $CONSTELLATION_API, else the socket in --data-dir)")
	root.PersistentFlags().StringVar(&g.token, "api-token", "", "bearer token for a TCP --api (default $CONSTELLATION_API_TOKEN or <data-dir>/api.token)")
	root.PersistentFlags().StringVar(&g.fingerprint, "api-fingerprint", "", "pin the TLS certificate of a TCP --api: sha256:<64 hex> as 'constellation status' shows it on the node (default $CONSTELLATION_API_FINGERPRINT, else <data-dir>/api.fingerprint and the known_nodes file)")
	root.PersistentFlags().BoolVar(&g.trust, "trust", false, "trust a TCP --api with no known fingerprint on first use: record the one it presents in ~/.config/constellation/known_nodes ($CONSTELLATION_KNOWN_NODES); a changed one is still refused")
	root.AddCommand(newPeerCmd(g), newStatusCmd(g), newNodesCmd(g), newSendCmd(g), newBroadcastCmd(g), newEventsCmd(g), newVersionCmd())
	root.AddCommand(newKeygenCmd())
	root.AddCommand(instanceCommands(g)...)
	root.AddCommand(deployCommands(g)...)
	root.AddCommand(monitorCommands(g)...)
	addLogsTracesCommands(root, g)
	root.AddCommand(securityCommands(g)...)
	root.AddCommand(newMeshCmd(g))
	root.AddCommand(newFSCmd(g))
	root.AddCommand(newUICmd(g))
	bench := newBenchCmd()
	bench.AddCommand(newBenchInstancesCmd(), newBenchSandboxCmd(), newBenchMeshCmd(), newBenchFSCmd(), newBenchUICmd())
	root.AddCommand(bench)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%v\nRun '%s --help' for the accepted flags", err, c.CommandPath())
	})
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(c *cobra.Command, _ []string) {
			fmt.Fprintln(c.OutOrStdout(), "constellation", node.Version)
		},
	}
}
