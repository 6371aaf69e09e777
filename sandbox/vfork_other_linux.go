//go:build linux && (riscv64 || loong64 || ppc64le || s390x)

package sandbox

import "syscall"

const haveVfork = false

func rawVfork(args *cloneArgs, size uintptr, ops *rawOp, n uintptr, report *[2]uint32) (uintptr, syscall.Errno) {
	panic("sandbox: no vfork")
}
