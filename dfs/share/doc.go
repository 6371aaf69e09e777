// Package share keeps local directories of a node in two-way sync with DFS trees: the
// shared directories of `constellation fs share` (docs/dfs.md, "Shared directories").
//
// The package is split the way the rest of the project is:
//
//   - plan.go is pure: Plan compares the local files, the DFS files and the last-synced
//     state (the base of a three-way comparison) and returns the steps for each path
//     (classified local-new, local-modified, local-deleted, remote-changed or
//     both-changed; both-changed resolved by the share's policy: last_write_wins or
//     keep_both with the loser kept as NAME.conflict-<node>-<time> on both sides). It
//     takes no clock; times come in the inputs.
//   - runner.go is the I/O: one goroutine per share scans the directory (scan.go: regular
//     files only, hashes reused while size and mtime match), lists the DFS tree, plans
//     and applies (uploads through the DFS service, downloads to a temp file renamed over
//     the target), and records every applied path's hash and CID, so that what it wrote
//     itself is never seen as a new change on either side. Rounds run when fsnotify and
//     DFS watch events settle (realtime), every interval (periodic; realtime's safety
//     net), after errors with backoff, and at start (catching up on what changed while
//     the node was down).
//   - manager.go owns the runners and the persisted shares (<data-dir>/dfs-shares:
//     shares.json and one state file per share, both decoded with limits and checked);
//     routes.go serves /v1/fs/shares.
//
// The package reaches the DFS only through the FS interface it declares (the subset of
// *dfs.Service it uses); its metrics are constellation_dfs_share_* on the registry its
// Config names.
package share
