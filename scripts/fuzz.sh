#!/usr/bin/env bash
# Runs every Fuzz target of the module for FUZZTIME each (go test takes one -fuzz target per
# package run). A real finding (a failing input written to testdata/fuzz, a panic, a failed
# check) fails the run. Go 1.26's fuzz coordinator can also report a bare "context deadline
# exceeded" when -fuzztime expires while a worker is mid-call, with no input written
# (golang/go#75804, fixed in Go 1.27): such a run is retried once, and fails if it happens again.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

is_deadline_race() {
  grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$log"
}

for pkg in $($GO list ./...); do
  dir=$($GO list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //'); do
    for try in 1 2; do
      echo "fuzz $pkg $f"
      if $GO test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
        cat "$log"
        break
      fi
      cat "$log"
      if [ "$try" = 1 ] && is_deadline_race; then
        echo "fuzz $f: the -fuzztime deadline race of Go's fuzz coordinator (golang/go#75804), no failing input; retrying once"
        continue
      fi
      echo "fuzz $pkg $f failed" >&2
      exit 1
    done
  done
done
