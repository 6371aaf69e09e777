//go:build !linux

package sandbox

import "testing"

// testBridge: no bridge networking outside Linux.
func testBridge(testing.TB) (string, string) { return "", "" }
