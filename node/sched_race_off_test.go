//go:build !race

package node

// schedRaceEnabled: the race detector slows in-process clusters down about tenfold.
const schedRaceEnabled = false
