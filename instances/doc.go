// Package instances is the instance service: it runs this node's instances on the sandbox
// runtime (opened lazily, so a node that never runs one mounts nothing), replicates their
// records (collection "instances") and the node's resource accounting ("resources"),
// admits creates against free resources (less the reserve and the scheduler's
// reservations), resolves duplicate names cluster-wide (the earlier HLC create stamp wins),
// forwards operations on other nodes' instances over a member-only libp2p protocol, serves
// the loopback API that instances call, and publishes "instance" events.
//
// It serves its routes on the node's internal/httpapi server, follows its collection with
// state.Watch, and reaches reservations only through the Reservations interface it
// declares (implemented by the scheduler). The scheduler's agent uses Info, Create,
// StartAgain, Remove and Admit; nothing outside takes the service's locks.
package instances
