package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"
)

// lockTokenEnv carries the fencing token of the lock `fs lock PATH -- CMD` holds while CMD
// runs: fs put/rm/mv/revert in CMD send it without a flag.
const lockTokenEnv = "CONSTELLATION_LOCK_TOKEN"

// lockTokenFlag adds --lock-token to a mutating fs command.
func lockTokenFlag(c *cobra.Command, tok *string) {
	c.Flags().StringVar(tok, "lock-token", "", "fencing token of a lock you hold (fs lock); a strong tree refuses a token older than one it saw (default: $"+lockTokenEnv+")")
}

// lockToken is the token of --lock-token, else of $CONSTELLATION_LOCK_TOKEN (0: none).
func lockToken(flag string) (uint64, error) {
	src, v := "--lock-token", flag
	if v == "" {
		src, v = "$"+lockTokenEnv, os.Getenv(lockTokenEnv)
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid %s %q: the decimal fencing token of a lock you hold (fs lock passes it in $%s)", src, v, lockTokenEnv)
	}
	return n, nil
}
