//go:build linux && !(amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)

package sandbox

import "os"

// haveRawLaunch is false on 32-bit and big-endian-only architectures: instances start
// through the re-executed Go init (Init) instead, which cannot create user namespaces
// (a multi-threaded process cannot unshare one): only host_root instances run there.
const haveRawLaunch = false

func launchRaw(c *initConfig, hostDirs map[string]string, v1Procs []string, cgroupFD int, stdio []*os.File) (pid, pidfd int, err error) {
	panic("sandbox: raw launch not available")
}
