// Package fault holds process-level fault tests of constellation: real `constellation peer`
// processes on loopback, real instances (root: cgroups, namespaces), and the faults an
// operator meets — kill -9 of a deployment's owner, a node frozen with SIGSTOP, a restart
// from an old backup of the data dir, full, one-way and partial partitions made with
// iptables rules on the test's own ports — plus a seeded randomized nemesis in the style of
// Jepsen.
//
// After every fault the tests check the scheduler's promises (issue 11): a healthy instance
// is never replaced (placement is sticky), the instance processes never exceed the desired
// count plus the make-before-break moves in progress (also as the scheduler reports it:
// running <= instances + moves in `constellation deployments --json`), after a heal the
// count is exactly the desired one within a bounded time, and no acknowledged deployment,
// scale or quota is lost.
//
// The package has only tests:
//
//	go test -count=1 -v ./test/fault/                       # as root
//	CONSTELLATION_NEMESIS_SEED=42 go test -run Nemesis ./test/fault/   # replay a seed
//
// They need root and iptables; they skip otherwise unless CONSTELLATION_TEST_REQUIRE_ROOT=1
// (CI), which makes a missing root or iptables a failure.
package fault
