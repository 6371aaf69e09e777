package node

import (
	"fmt"
	"strings"

	"github.com/rads-lang/constellation/internal/state"
)

// The methods in this file reach the replicated document directly. They exist for tests
// and benchmarks (replication latency, large-state sync, partitions); cluster features get
// typed APIs of their own.

// PutState writes every entry as an LWW register in collection, as one local mutation: one
// delta, persisted and published like any other. Collections owned by the node itself
// (CollNodes) are refused. For tests and benchmarks.
func (n *Node) PutState(collection string, entries map[string][]byte) error {
	if collection == CollNodes || strings.TrimSpace(collection) == "" {
		return fmt.Errorf("node: PutState: collection %q is reserved or empty", collection)
	}
	err := n.st.Update(func(tx *state.Tx) error {
		for k, v := range entries {
			if err := tx.Put(collection, k, v); err != nil {
				return fmt.Errorf("node: PutState %s/%s: %w", collection, k, err)
			}
		}
		return nil
	})
	return err
}

// GetState reads an LWW register of the replicated document. For tests and benchmarks.
func (n *Node) GetState(collection, key string) ([]byte, bool) {
	return n.get(collection, key)
}

// StateLen is the number of entries of collection in the replicated document.
func (n *Node) StateLen(collection string) int {
	var l int
	n.st.View(func(v *state.View) { l = v.Len(collection) })
	return l
}

// OnStateChange sets fn (nil: none) to be called for every entry a remote delta changes,
// after it is committed (from the state's watch goroutine; fn must be quick). For tests and
// benchmarks.
func (n *Node) OnStateChange(fn func(collection, key string)) {
	if fn == nil {
		n.onChange.Store(nil)
		return
	}
	n.onChange.Store(&fn)
}
