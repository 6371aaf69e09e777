#!/bin/sh
# The seed's data pipeline: list /cluster/data/raw, run one worker instance per file
# (process.sh, with the DFS tree /cluster/data mounted at /data) spread over the alive
# nodes, wait for all of them, list the results in /cluster/data/processed.
#
#   C7="constellation --data-dir /var/lib/constellation" examples/data-pipeline/pipeline.sh
#
# C7 is the command that reaches a node (default: constellation). Workers are removed when
# they are done; a worker that failed makes the pipeline fail (its logs are printed).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
c7=${C7:-constellation}
# the files directly under raw/ (not the marker of a directory made through a mount)
files=$($c7 fs ls /cluster/data/raw | sed -n 's#^/cluster/data/raw/\([^/]*\)$#\1#p' | grep -vx '.constellation-dir' || true)
[ -n "$files" ] || { echo "no files in /cluster/data/raw: put some with 'constellation fs put FILE /cluster/data/raw/NAME'" >&2; exit 1; }

# the alive nodes, to spread the workers over (round robin)
nodes=$($c7 nodes | awk 'NR > 1 && / alive / {print $1}')
set -- $nodes
workers=""
for f in $files; do
	[ $# -gt 0 ] || set -- $nodes
	w=processor-$(printf '%s' "$f" | tr -c 'a-zA-Z0-9-' '-' | cut -c1-40)
	$c7 create --name "$w" --node "$1" --network none --ram-mb 64 --pids 64 \
		--mount-fs /cluster/data:/data --env INPUT_FILE="/data/raw/$f" --script "$here/process.sh" >/dev/null
	echo "started $w on $1 for /cluster/data/raw/$f"
	workers="$workers $w"
	shift
done

failed=0
for w in $workers; do
	if $c7 wait "$w" >/dev/null; then
		$c7 logs "$w" --stream stdout | tail -n 1
	else
		echo "$w failed:" >&2
		$c7 logs "$w" >&2 || true
		failed=1
	fi
	$c7 rm "$w" >/dev/null
done
echo "results:"
$c7 fs ls /cluster/data/processed | grep -v '/\.constellation-dir$' || true
exit $failed
