//go:build linux && !(amd64 || arm64)

package sandbox

import "unsafe"

// havePID1 is false where no assembly init exists: instances start through the
// re-executed Go init, which stays resident as PID 1 (goPID1).
const havePID1 = false

func pid1Text() unsafe.Pointer { return nil }
