//go:build linux && (amd64 || arm64)

package sandbox

import "unsafe"

// havePID1: pid1Main (assembly) is available.
const havePID1 = true

// pid1Text returns the address of pid1Main's code (assembly).
func pid1Text() unsafe.Pointer

// pid1Main is the init's code; never called from Go (see pid1_linux.go).
func pid1Main()
