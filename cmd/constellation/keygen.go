package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/p2p"
)

func newKeygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new random cluster key (256 bits as 64 hex digits)",
		Long: `keygen prints a new cluster key: 32 bytes from the operating system's secure random
source, as 64 lowercase hex digits, on one line. Give the same key to every node of the
cluster (--cluster-key, $CONSTELLATION_CLUSTER_KEY or cluster_key in the config file).

A random key is what makes admission safe: a host that captures one admission proof (a
fake node that a member dialled) can only guess the key offline, and each guess costs an
argon2id derivation; a passphrase can be guessed, a 256-bit key cannot. A node started with
a short or low-entropy key logs a warning.`,
		Example: `  export CONSTELLATION_CLUSTER_KEY=$(constellation keygen)`,
		Args:    cobra.NoArgs,
		Run: func(c *cobra.Command, _ []string) {
			fmt.Fprintln(c.OutOrStdout(), p2p.GenerateKey())
		},
	}
}
