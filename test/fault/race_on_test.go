//go:build race

package fault

// raceEnabled: the nodes are built with -race too.
const raceEnabled = true
