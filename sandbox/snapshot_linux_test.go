package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSnapshotQuota: snapshots count against disk_mb: one that would not fit is
// refused with ErrDiskQuota (nothing written), deleting one frees the room, and the
// instance's disk usage includes them.
func TestSnapshotQuota(t *testing.T) {
	e := newTestRuntime(t, nil)
	ctx := context.Background()
	// 12 MiB of data in a 32 MiB quota: two snapshots fit, a third does not.
	ex := e.run(t, Spec{Name: "q", Command: []string{"sh", "-c", "head -c 12582912 /dev/urandom > /app/blob"}, Limits: Limits{DiskMB: 32}})
	if ex.Code != 0 {
		t.Fatalf("writing the data: %+v: %s", ex, e.logs(t, "q", Stderr))
	}
	if _, err := e.rt.SaveSnapshot(ctx, "q", "a"); err != nil {
		t.Fatal(err)
	}
	st, _ := e.rt.Stats("q")
	if st.DiskMB < 23 {
		t.Fatalf("disk usage %.1f MiB with a 12 MiB snapshot of 12 MiB of data; want it counted", st.DiskMB)
	}
	_, err := e.rt.SaveSnapshot(ctx, "q", "b")
	if !errors.Is(err, ErrDiskQuota) || !strings.Contains(err.Error(), "disk_mb 32") {
		t.Fatalf("snapshot over the quota: %v; want ErrDiskQuota naming disk_mb", err)
	}
	if list, _ := e.rt.ListSnapshots("q"); len(list) != 1 {
		t.Fatalf("refused snapshot left something: %+v", list)
	}
	in, _ := e.rt.get("q")
	if _, err := os.Stat(filepath.Join(snapshotsDir(&in.st.Res), "b.tmp")); err == nil {
		t.Fatal("refused snapshot left its temporary copy")
	}
	if err := e.rt.DeleteSnapshot("q", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.SaveSnapshot(ctx, "q", "b"); err != nil {
		t.Fatalf("after deleting one: %v", err)
	}
}

// TestSnapshotRestoreMissingTagKeepsRunning: a tag the instance does not have fails
// before anything happens; the instance keeps running.
func TestSnapshotRestoreMissingTagKeepsRunning(t *testing.T) {
	e := newTestRuntime(t, nil)
	if _, err := e.rt.Create(Spec{Name: "live", Command: []string{"sleep", "1000"}}); err != nil {
		t.Fatal(err)
	}
	before, err := e.rt.Start("live")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.GetSnapshot("live", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetSnapshot of a missing tag: %v", err)
	}
	if err := e.rt.RestoreSnapshot(context.Background(), "live", "nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `no snapshot "nope"`) {
		t.Fatalf("restore of a missing tag: %v; want ErrNotFound naming the tag", err)
	}
	if err := e.rt.RestoreSnapshot(context.Background(), "live", "../x"); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("restore of a bad tag: %v; want ErrInvalidSpec", err)
	}
	after, _ := e.rt.Get("live")
	if after.State != StateRunning || after.PID != before.PID {
		t.Fatalf("instance after a refused restore: %+v; want still running pid %d", after, before.PID)
	}
}

// TestSnapshotsGoWithInstance: Destroy removes an instance's snapshots unless its data
// is kept; a new instance of the same name does not see the old one's snapshots.
func TestSnapshotsGoWithInstance(t *testing.T) {
	e := newTestRuntime(t, nil)
	ctx := context.Background()
	for _, keep := range []bool{true, false} {
		e.run(t, Spec{Name: "gone", Command: []string{"sh", "-c", "echo x > /app/f"}})
		if _, err := e.rt.SaveSnapshot(ctx, "gone", "t"); err != nil && !errors.Is(err, ErrExists) {
			t.Fatal(err)
		}
		in, _ := e.rt.get("gone")
		data, _ := snapshotPaths(&in.st.Res, "t")
		if err := e.rt.Destroy(ctx, "gone", keep); err != nil {
			t.Fatal(err)
		}
		_, statErr := os.Stat(data)
		if keep != (statErr == nil) {
			t.Fatalf("keepData=%v: snapshot data present=%v", keep, statErr == nil)
		}
		if _, err := e.rt.Create(Spec{Name: "gone", Command: []string{"true"}}); err != nil {
			t.Fatal(err)
		}
		list, _ := e.rt.ListSnapshots("gone")
		if keep != (len(list) == 1) {
			t.Fatalf("keepData=%v: snapshots after re-create: %+v", keep, list)
		}
		if err := e.rt.Destroy(ctx, "gone", keep); err != nil {
			t.Fatal(err)
		}
	}
}
