// Package api is the node's local HTTP/JSON API as its clients see it: the wire types
// (requests, answers, events), the error codes, and the Go client. The CLI, the dashboard
// and the RADS runtime import this package, never node. It depends on the standard library
// only, and its types are never stored or replicated: replicated records have their own
// types in the feature packages, so renaming a JSON field here cannot break replication
// between nodes of different versions.
package api
