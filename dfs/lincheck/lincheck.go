// Package lincheck records histories of concurrent reads and writes of one register (a
// file of a strong DFS tree) and checks them for linearizability with porcupine
// (github.com/anishathalye/porcupine). Tests of package dfs and node use it; it does no I/O.
//
// A write whose outcome is unknown (it failed: it may or may not have been committed) is
// recorded as never returning, so the checker may place it anywhere after its call or
// leave it out. A failed read is not recorded (it observed nothing).
package lincheck

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// input is an operation's argument: a write of value, or a read.
type input struct {
	write bool
	value string
}

// Recorder collects operations from concurrent clients. Safe for concurrent use.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

// New starts a history.
func New() *Recorder { return &Recorder{start: time.Now()} }

// Now is the recorder's clock (monotonic nanoseconds since New).
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Write records a write of value by client between call and ret; ok false: the outcome is
// unknown (an error).
func (r *Recorder) Write(client int, value string, call, ret int64, ok bool) {
	if !ok {
		ret = math.MaxInt64
	}
	r.add(porcupine.Operation{ClientId: client, Input: input{write: true, value: value}, Call: call, Return: ret})
}

// Read records a read by client that returned value ("" : no file).
func (r *Recorder) Read(client int, value string, call, ret int64) {
	r.add(porcupine.Operation{ClientId: client, Input: input{}, Output: value, Call: call, Return: ret})
}

func (r *Recorder) add(op porcupine.Operation) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Len is the number of recorded operations (reads, writes).
func (r *Recorder) Len() (reads, writes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, op := range r.ops {
		if op.Input.(input).write {
			writes++
		} else {
			reads++
		}
	}
	return reads, writes
}

// Register is the sequential specification: a single value, "" at first; a write sets it,
// a read returns it.
var Register = porcupine.Model{
	Init: func() any { return "" },
	Step: func(state, in, out any) (bool, any) {
		i := in.(input)
		if i.write {
			return true, i.value
		}
		return out.(string) == state.(string), state
	},
	DescribeOperation: func(in, out any) string {
		i := in.(input)
		if i.write {
			return fmt.Sprintf("write(%q)", i.value)
		}
		return fmt.Sprintf("read() -> %q", out)
	},
}

// Check checks the history; it returns an error when it is not linearizable (or the
// checker ran out of time).
func (r *Recorder) Check(timeout time.Duration) error {
	r.mu.Lock()
	ops := append([]porcupine.Operation(nil), r.ops...)
	r.mu.Unlock()
	switch res := porcupine.CheckOperationsTimeout(Register, ops, timeout); res {
	case porcupine.Ok:
		return nil
	case porcupine.Illegal:
		return fmt.Errorf("lincheck: the history of %d operations is not linearizable", len(ops))
	default:
		return fmt.Errorf("lincheck: the checker gave up after %v (%d operations): %v", timeout, len(ops), res)
	}
}
