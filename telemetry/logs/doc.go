// Package logs is each node's log store and the cluster-wide log search.
//
// What goes in: every line instances write on stdout and stderr (Output, a
// sandbox.OutputSink the instance runtime calls as it writes the log files `logs NAME`
// reads, so that command is unchanged), the node's own slog records at info and above
// (Handler), and structured entries instances or admins submit with
// POST /v1/monitor/logs (the seed's monitor.log("info", "User logged in", {user_id: 123})).
// An Entry has a time, node, instance, deployment, namespace, stream (stdout, stderr,
// node, api), level, message and text fields.
//
// Storage (Store): append-only segments in <data-dir>/logs. The active segment
// (seg-N.log) holds checksummed frames (uvarint length, CRC-32C, a compact binary
// entry) and a term Bloom filter in memory; at Config.SegmentBytes (16 MiB) or
// Config.SegmentAge (1 h) it is sealed: compressed with zstd (klauspost/compress,
// already in go.sum) into seg-N.zst, beside seg-N.idx, its summary (time range, count,
// raw size, header checksum) and its filter folded down to the size its terms need
// (checksummed too). The filter holds the lower-cased words of messages and field
// values and the field=value pairs, so a term or field query skips every segment that
// cannot match without decompressing it. Retention removes sealed segments older than
// Config.MaxAge and the oldest ones beyond Config.MaxBytes. A segment whose index,
// filter, compression or frames are corrupt is skipped with a warning (logged once and
// returned with the result); a torn tail left by a crash is cut off when the store is
// reopened.
//
// Search reads the active segment and the sealed ones newest first, one per core at a
// time, keeps the newest Limit matches in a heap and stops as soon as no older segment
// can hold a newer match. This segment scan was chosen over bleve by the measure: a
// term query over 1 GiB of logs answers in about 0.1 s here (the filter skips
// segments; see docs/logs-traces.md for the figures), without a 20 MB dependency or
// an index several times the size of the compressed logs. A query no filter can narrow
// (a prefix, a NOT alone) reads every segment: about 2.8 CPU-seconds per GiB.
//
// The query language (Parse): words, "phrases", field:value and field=value (level,
// instance, node, service, deployment, namespace, stream, or any structured field;
// value* for a prefix), AND, OR, NOT or -x, parentheses; juxtaposition is AND. Words
// match whole words case-insensitively in the message and field values. A parse error
// (*QueryError) names the 1-based position.
//
// Cluster (Service): the protocol monitor-logs/1.0.0 on the member-only host carries a
// search (one request frame, answer frames of about 1 MiB, a last frame with Done and
// the node's warnings) or a follow (a stream of entry batches, a keepalive every 15 s).
// Search fans out to every alive member with a deadline (10 s), merges by time and
// applies the limit after the merge; a member that does not answer is a warning.
// Follow streams the matching entries of every member alive when it starts.
package logs
