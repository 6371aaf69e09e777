package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
)

// addLockCommands adds the lock commands to `constellation fs` (docs/locks.md).
func addLockCommands(root *cobra.Command, g *globals) {
	for _, c := range root.Commands() {
		if c.Name() == "fs" {
			c.AddCommand(fsLockCmd(g), fsLocksCmd(g), fsLockStatusCmd(g))
		}
	}
}

func fsLockCmd(g *globals) *cobra.Command {
	var ttl, wait time.Duration
	var holder string
	c := &cobra.Command{
		Use:   "lock PATH [--ttl 10s] [--wait 30s] -- CMD [ARGS...]",
		Short: "Run a command while holding a cluster-wide lock (its fencing token in $CONSTELLATION_LOCK_TOKEN)",
		Long: `Acquire the lock PATH, run CMD while renewing the lease, release the lock when CMD exits.
CMD gets CONSTELLATION_LOCK_PATH and CONSTELLATION_LOCK_TOKEN (the fencing token: strictly
increasing across grants; pass it to storage so a stale holder's writes are refused).
If the lease is lost (renewal refused, or no renewal succeeded for a TTL), CMD is killed and
the command exits 75. Without --wait a held lock fails at once; with it the command waits.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			if c.ArgsLenAtDash() != 1 {
				return fmt.Errorf("give the lock path then -- and the command: fs lock /cluster/job -- ./run.sh")
			}
			if ttl < time.Second {
				return fmt.Errorf("--ttl %s is too short for a command's lease; give 1s or more (default 10s)", ttl)
			}
			if holder == "" {
				host, _ := os.Hostname()
				holder = fmt.Sprintf("%s/pid-%d", host, os.Getpid())
			}
			return runLocked(c.Context(), g.client(), args[0], holder, ttl, wait, args[1:])
		},
	}
	c.Flags().DurationVar(&ttl, "ttl", 10*time.Second, "lease length; the lease is renewed every third of it")
	c.Flags().DurationVar(&wait, "wait", 0, "how long to wait for a held lock (0: fail at once)")
	c.Flags().StringVar(&holder, "holder", "", "holder name shown to others (default HOST/pid-PID)")
	return c
}

// exitLeaseLost is the exit code when the lease was lost while CMD ran (EX_TEMPFAIL).
const exitLeaseLost = 75

func runLocked(ctx context.Context, cl *api.Client, path, holder string, ttl, wait time.Duration, argv []string) error {
	actx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, wait+5*time.Second)
		defer cancel()
	}
	sent := time.Now()
	l, err := cl.LockAcquire(actx, path, holder, ttl, wait)
	if err != nil {
		return err
	}
	deadline := sent.Add(ttl) // the lease as the holder counts it: from its own request
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "CONSTELLATION_LOCK_PATH="+path, "CONSTELLATION_LOCK_TOKEN="+strconv.FormatUint(l.Token, 10))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	release := func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := cl.LockRelease(rctx, path, l.Token); err != nil {
			fmt.Fprintf(os.Stderr, "constellation: release %s (token %d): %v\n", path, l.Token, err)
		}
	}
	if err := cmd.Start(); err != nil {
		release()
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	kill := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	renew := time.NewTicker(ttl / 3)
	defer renew.Stop()
	lost := ""
	for {
		select {
		case err := <-done:
			if lost != "" {
				fmt.Fprintf(os.Stderr, "constellation: lock %s lost (%s); the command was killed\n", path, lost)
				return exitError{exitLeaseLost}
			}
			release()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if code := ee.ExitCode(); code >= 0 {
					return exitError{code}
				}
				return exitError{128 + int(ee.Sys().(syscall.WaitStatus).Signal())}
			}
			return err
		case s := <-sigs:
			_ = syscall.Kill(-cmd.Process.Pid, s.(syscall.Signal))
		case <-renew.C:
			if lost != "" {
				continue
			}
			if time.Now().After(deadline) {
				lost = "no renewal succeeded within the TTL"
				kill()
				continue
			}
			sent := time.Now()
			rctx, cancel := context.WithTimeout(ctx, time.Until(deadline))
			_, err := cl.LockRenew(rctx, path, l.Token)
			cancel()
			var re *api.RemoteError
			switch {
			case err == nil:
				deadline = sent.Add(ttl)
			case errors.As(err, &re) && re.Code == "not_held":
				lost = re.Error()
				kill()
			case time.Now().After(deadline):
				lost = "renewal failed past the lease: " + err.Error()
				kill()
			}
		}
	}
}

func fsLocksCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "locks",
		Short: "List the held cluster locks with holder, fencing token and lease",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ls, err := g.client().Locks(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), ls)
			}
			t := newTable(c.OutOrStdout(), "PATH", "HOLDER", "TOKEN", "TTL", "EXPIRES IN")
			for _, l := range ls {
				t.row(l.Path, l.Holder, strconv.FormatUint(l.Token, 10), (time.Duration(l.TTLMs) * time.Millisecond).String(),
					time.Until(l.Expires).Round(100*time.Millisecond).String())
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func fsLockStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "lock-status",
		Short: "Show the lock group: leader, voters, term and log index as this node sees them",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			st, err := g.client().LockStatus(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), st)
			}
			fmt.Fprintf(c.OutOrStdout(), "self:       %s (%s)\nleader:     %s\nvoters:     %s\nnon-voters: %s\nterm:       %d\nlast index: %d (applied %d)\nlocks:      %d (last token %d)\n",
				st.Self, st.State, orDash(st.Leader), orDash(strings.Join(st.Voters, ", ")), orDash(strings.Join(st.Nonvoters, ", ")),
				st.Term, st.LastIndex, st.Applied, st.Locks, st.LastToken)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
