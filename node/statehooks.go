package node

import (
	"fmt"
	"strings"

	"github.com/rads-lang/constellation/crdt"
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
	n.mu.Lock()
	defer n.mu.Unlock()
	deltas := make([]*crdt.Delta, 0, len(entries))
	for k, v := range entries {
		d, err := n.doc.PutLWW(collection, k, v)
		if err != nil {
			return fmt.Errorf("node: PutState %s/%s: %w", collection, k, err)
		}
		deltas = append(deltas, d)
	}
	d, err := crdt.Batch(deltas...)
	if err != nil {
		return fmt.Errorf("node: PutState: %w", err)
	}
	if len(deltas) > 0 {
		n.publishLocked(d)
	}
	return nil
}

// GetState reads an LWW register of the replicated document. For tests and benchmarks.
func (n *Node) GetState(collection, key string) ([]byte, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v, _, ok := n.doc.GetLWW(collection, key)
	return v, ok
}

// StateLen is the number of entries of collection in the replicated document.
func (n *Node) StateLen(collection string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.doc.Len(collection)
}

// OnStateChange sets fn (nil: none) to be called for every entry a remote delta changes,
// right after it is joined. fn runs with the node's lock held: it must be quick and must
// not call the node. For tests and benchmarks.
func (n *Node) OnStateChange(fn func(collection, key string)) {
	n.mu.Lock()
	n.onChange = fn
	n.mu.Unlock()
}
