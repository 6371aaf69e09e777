//go:build linux && (amd64 || arm64)

package sandbox

import "syscall"

// haveVfork: rawVfork (assembly) is available.
const haveVfork = true

// rawVfork is implemented in vfork_linux_$GOARCH.s.
//
//go:noescape
func rawVfork(args *cloneArgs, size uintptr, ops *rawOp, n uintptr, report *[2]uint32) (pid uintptr, errno syscall.Errno)
