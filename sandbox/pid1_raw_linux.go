//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)

package sandbox

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// execInit ends the raw launcher's child program: execveat of the init binary (a memfd,
// c.InitFD) with argv "init PATH ARGV...". Every signal is still blocked (the parent
// blocked them before the clone): the init starts that way and cannot miss a stop
// sent before it waits for signals; its child unblocks them for the program.
func (p *childProg) execInit(c *initConfig) {
	argv, _ := syscall.SlicePtrFromStrings(pid1Argv(c.Path, c.Argv))
	envv, _ := syscall.SlicePtrFromStrings(c.Env)
	p.keep = append(p.keep, argv, envv)
	p.add("exec init for "+c.Path, unix.SYS_EXECVEAT, uintptr(c.InitFD), p.str(""), uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH)
}
