package node

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// LocksConfig configures the lock service (config key "locks"; package locks).
type LocksConfig struct {
	// LockDelay is how long a lock stays unavailable after its holder's lease expired
	// (default 1s; negative: none).
	LockDelay time.Duration `yaml:"lock_delay"`
	// Grace is how long a voter may be dead before another member replaces it (default 30s).
	Grace time.Duration `yaml:"grace"`
	// StableAfter is how long a member must be alive to vote (default 3s).
	StableAfter time.Duration `yaml:"stable_after"`
	// Voters forces the number of voters (default 0: 3, or 5 with 7 stable members or more).
	Voters int `yaml:"voters"`
}

func (c *LocksConfig) validate() error {
	switch {
	case c.Grace < 0:
		return fmt.Errorf("node: locks.grace %s is negative; give a duration such as 30s", c.Grace)
	case c.StableAfter < 0:
		return fmt.Errorf("node: locks.stable_after %s is negative; give a duration such as 3s", c.StableAfter)
	case c.Voters < 0 || c.Voters > 7 || (c.Voters > 0 && c.Voters%2 == 0):
		return fmt.Errorf("node: locks.voters %d; give 1, 3, 5 or 7, or 0 for automatic", c.Voters)
	}
	return nil
}

// AddLocksFlags declares the lock service's peer flags.
func AddLocksFlags(f *pflag.FlagSet, c *Config) {
	f.DurationVar(&c.Locks.LockDelay, "lock-delay", 0, "locks: how long a lock stays unavailable after its holder's lease expired (default 1s; negative: none)")
	f.DurationVar(&c.Locks.Grace, "lock-voter-grace", 0, "locks: how long a dead voter of the lock group stays before another member replaces it (default 30s)")
	f.DurationVar(&c.Locks.StableAfter, "lock-stable-after", 0, "locks: how long a member must be alive before it may vote (default 3s)")
	f.IntVar(&c.Locks.Voters, "lock-voters", 0, "locks: number of voters of the lock group (default: 3, or 5 with 7 members or more)")
}

// mergeLocks takes the lock flags that were set.
func (c *Config) mergeLocks(over Config, set map[string]bool) {
	if set["lock-delay"] {
		c.Locks.LockDelay = over.Locks.LockDelay
	}
	if set["lock-voter-grace"] {
		c.Locks.Grace = over.Locks.Grace
	}
	if set["lock-stable-after"] {
		c.Locks.StableAfter = over.Locks.StableAfter
	}
	if set["lock-voters"] {
		c.Locks.Voters = over.Locks.Voters
	}
}
