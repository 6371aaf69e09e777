package sandbox

import (
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPlanBindsBeforePivot: the binds are made in the new root before pivot_root, their
// target created (allowed to exist), read-only ones with MOUNT_ATTR_RDONLY.
func TestPlanBindsBeforePivot(t *testing.T) {
	c := &initConfig{Root: "/r", Hostname: "job", NetNS: -1, TmpMB: 8, Binds: []BindMount{
		{Source: "/host/a", Target: "/data"},
		{Source: "/host/b", Target: "/in/raw", ReadOnly: true},
	}}
	p := buildChild(c, nil, nil, nil, childSync{}, -1)
	idx := func(desc string) int { return slices.Index(p.desc, desc) }
	pivot := idx("pivot_root")
	for _, d := range []string{"mkdir /r/data", "mount /r/data", "mount_setattr /r/data", "mkdir /r/in", "mkdir /r/in/raw", "mount /r/in/raw", "mount_setattr /r/in/raw"} {
		i := idx(d)
		if i < 0 || i > pivot {
			t.Fatalf("%q at %d (pivot_root at %d) in %v", d, i, pivot, p.desc)
		}
	}
	if p.ops[idx("mkdir /r/in/raw")].flags&opMayFail == 0 {
		t.Error("the target mkdir must be allowed to fail (the directory may exist)")
	}
	attr := func(desc string) uint64 { // the MountAttr the op points to is in p.keep
		want := p.ops[idx(desc)].a[3]
		for _, k := range p.keep {
			if a, ok := k.(*unix.MountAttr); ok && uintptr(unsafe.Pointer(a)) == want {
				return a.Attr_set
			}
		}
		t.Fatalf("%s: no MountAttr kept", desc)
		return 0
	}
	if a := attr("mount_setattr /r/in/raw"); a&unix.MOUNT_ATTR_RDONLY == 0 || a&unix.MOUNT_ATTR_NOSUID == 0 {
		t.Errorf("the ro bind's attributes %#x", a)
	}
	if a := attr("mount_setattr /r/data"); a&unix.MOUNT_ATTR_RDONLY != 0 || a&unix.MOUNT_ATTR_NODEV == 0 {
		t.Errorf("the rw bind's attributes %#x", a)
	}
}
