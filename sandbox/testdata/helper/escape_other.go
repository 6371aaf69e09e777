//go:build !linux

package main

import (
	"fmt"
	"os"
)

func escape(args []string) {
	fmt.Fprintln(os.Stderr, "escape probes need Linux")
	os.Exit(2)
}
