# constellation: one binary, leaderless cluster.
GO        ?= go
BIN       ?= bin/constellation
# Extra flags for `make run`, e.g. make run RUN_FLAGS='--join 192.0.2.10:7946'.
RUN_FLAGS ?=
# Packages whose tests also run under the race detector: every package with tests except
# test/fault, whose process-level fault tests drive race-free node processes for minutes (run
# them with -race by hand: the nodes are then built with -race too and their logs checked).
RACE_PKGS ?= ./api/... ./crdt/... ./p2p/... ./internal/... ./instances/... ./scheduler/... ./node/... ./cmd/... ./sched/... ./sandbox/... ./telemetry/... ./mesh/... ./dfs/... ./security/... ./locks/... ./ui/...
FUZZTIME  ?= 5s

.PHONY: all build run test test-unit test-race test-fuzz bench lint clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/constellation

# A working single node on embedded defaults (the default data dir: /var/lib/constellation as
# root, ~/.local/share/constellation otherwise), so client commands need no flags.
run: build
	$(BIN) peer $(RUN_FLAGS)

test: lint test-unit test-race test-fuzz

test-unit:
	$(GO) test -count=1 -timeout 20m ./...

test-race:
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)

# Each fuzz target runs for FUZZTIME (see scripts/fuzz.sh).
test-fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin .data
