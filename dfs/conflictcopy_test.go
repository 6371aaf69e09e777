package dfs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestPutConflictCopy: a conflict copy stored by a shared directory is a file of its own
// on every node (listed, read, removed by name), while Put still refuses such names and
// PutConflictCopy refuses names that are not conflict names.
func TestPutConflictCopy(t *testing.T) {
	n := newNet(t, []string{"a", "b"}, tcfg{capacity: 1 << 30})
	a, b := n.nodes["a"], n.nodes["b"]
	ctx := context.Background()
	name := "/s/f.txt.conflict-b-20260112T100000.000Z"
	if _, err := a.svc.Put(ctx, name, strings.NewReader("x"), PutOptions{}); !errors.Is(err, ErrBadPath) {
		t.Fatalf("Put of a conflict name: %v", err)
	}
	if _, err := a.svc.PutConflictCopy(ctx, "/s/f.txt", strings.NewReader("x"), PutOptions{}); !errors.Is(err, ErrBadPath) {
		t.Fatalf("PutConflictCopy of a plain name: %v", err)
	}
	if _, err := a.svc.PutConflictCopy(ctx, name, strings.NewReader("the loser"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	n.settle(t)
	if got := read(t, b, name, 0); got != "the loser" {
		t.Fatalf("b read %q", got)
	}
	ls, _ := b.svc.List("/s", true)
	if fmt.Sprint(names(ls)) != "["+name+"]" || ls[0].Conflict {
		t.Fatalf("b lists %+v", ls)
	}
	if c, err := b.svc.Remove(name, false); err != nil || c != 1 {
		t.Fatalf("remove of the stored copy: %d %v", c, err)
	}
	n.settle(t)
	if ls, _ := a.svc.List("/s", true); len(ls) != 0 {
		t.Fatalf("a still lists %v", names(ls))
	}
}
