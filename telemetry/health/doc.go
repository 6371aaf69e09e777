// Package health runs named health checks (the seed's monitor.health_check(name, ...)): a
// check is a replicated record (collection "health_checks") of kind http (GET, 2xx or 3xx
// passes), tcp (a connection opens) or exec (a shell command on the node's host exits 0),
// attached to a node or to an instance (it then runs on whichever node runs the
// instance). Each node probes the checks it is responsible for at their interval and
// writes a result record (collection "health_results") only when the status changes, so a
// steady cluster writes nothing. Results feed the dashboard's health and the metric
// constellation_health_check_up.
package health
