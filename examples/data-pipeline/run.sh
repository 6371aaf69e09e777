#!/bin/sh
# The data pipeline on two nodes of this machine: raw files put on node a, one worker per
# file, results read on node b. Needs root (instances, FUSE).
#
#   sudo examples/data-pipeline/run.sh [path/to/constellation]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../bin/constellation}
[ -x "$bin" ] || { echo "build it first: make build (or pass the binary)"; exit 1; }
work=$(mktemp -d /tmp/constellation-pipeline.XXXXXX)

cleanup() {
	kill "$pa" "$pb" 2>/dev/null || true
	wait "$pa" "$pb" 2>/dev/null || true
	$bin teardown --data-dir "$work/a" >/dev/null 2>&1 || true
	$bin teardown --data-dir "$work/b" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

$bin peer --data-dir "$work/a" --node a --cluster pipeline --bind 127.0.0.1:17111 --no-mdns 2>"$work/a.log" &
pa=$!
$bin peer --data-dir "$work/b" --node b --cluster pipeline --bind 127.0.0.1:17112 --no-mdns \
	--join 127.0.0.1:17111 2>"$work/b.log" &
pb=$!
until $bin nodes --data-dir "$work/a" 2>/dev/null | grep -q '^b .*alive'; do sleep 0.2; done

echo "== raw files, put on a"
for n in 1 2 3; do
	printf 'sample %s\nthe quick brown fox\njumps over the lazy dog\n' "$n" >"$work/sample-$n.txt"
	until $bin fs put "$work/sample-$n.txt" "/cluster/data/raw/sample-$n.txt" --data-dir "$work/a" 2>/dev/null; do sleep 0.5; done
done
echo "== pipeline, driven from a"
C7="$bin --data-dir $work/a" "$here/pipeline.sh"
echo "== a result, read on b"
$bin fs cat /cluster/data/processed/sample-2.txt.out --data-dir "$work/b"
