#!/bin/sh
# Two nodes on this machine, an instance created on node a and run by node b, operated from
# node a: create, list, stats, logs, stop, rm. Needs root (cgroups, namespaces).
#
#   sudo examples/hello/run.sh [path/to/constellation]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../bin/constellation}
[ -x "$bin" ] || { echo "build it first: make build (or pass the binary)"; exit 1; }
work=$(mktemp -d /tmp/constellation-hello.XXXXXX)
a="$bin --data-dir $work/a"
b="$bin --data-dir $work/b"

cleanup() {
	kill "$pa" "$pb" 2>/dev/null || true
	wait "$pa" "$pb" 2>/dev/null || true
	$bin teardown --data-dir "$work/a" >/dev/null 2>&1 || true
	$bin teardown --data-dir "$work/b" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

$bin peer --data-dir "$work/a" --node a --cluster hello --bind 127.0.0.1:17101 --no-mdns 2>"$work/a.log" &
pa=$!
$bin peer --data-dir "$work/b" --node b --cluster hello --bind 127.0.0.1:17102 --no-mdns \
	--join 127.0.0.1:17101 2>"$work/b.log" &
pb=$!
until $a nodes 2>/dev/null | grep -q '^b .*alive'; do sleep 0.2; done

echo "== nodes"; $a nodes
echo "== create on b, from a"
$a create --name hello --node b --cpu-percent 25 --ram-mb 64 --pids 32 \
	--env GREETING=hi --grant nodes:read --script "$here/app.sh"
sleep 2.5
echo "== list (from a and from b)"; $a list; $b list
echo "== stats"; $a stats hello
echo "== logs"; $a logs hello
echo "== resources"; $a resources
echo "== stop"; $a stop hello --grace 2s
$a logs hello --stream stdout | tail -1
echo "== rm"; $a rm hello
$a list
