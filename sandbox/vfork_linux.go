//go:build linux && (amd64 || arm64)

package sandbox

import "syscall"

// haveVfork: rawVfork (assembly: clone3 with CLONE_VM, the child runs from registers)
// is available.
const haveVfork = true

// rawVfork is implemented in vfork_linux_$GOARCH.s.
//
//go:noescape
func rawVfork(args *cloneArgs, size uintptr, ops *rawOp, n uintptr, report *[2]uint32) (pid uintptr, errno syscall.Errno)
