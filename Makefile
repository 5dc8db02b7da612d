GO ?= go
BIN := bin

.PHONY: build test test-unit test-integration run drill bench vet fmt clean

# The version both binaries report (scheduler version, GET /cluster/status,
# mo_build_info); without git, the Go toolchain's build information.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null)
LDFLAGS := $(if $(VERSION),-X github.com/micro-orchestrator/mo/internal/version.Version=$(VERSION))

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/scheduler ./cmd/scheduler
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/agent ./cmd/agent

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l . | grep -v '^vendor/')" || (echo "gofmt needed:"; gofmt -l .; exit 1)

# Unit tests under the race detector, then the integration tests that start
# real bin/scheduler and bin/agent processes on 127.0.0.1.
test: build vet
	$(GO) test -race -count=1 -timeout 8m ./...
	./scripts/test_fault_tolerance.sh --quick

run: build
	$(BIN)/scheduler dev

drill: build
	./scripts/test_fault_tolerance.sh

# The drill's short form (fewer workloads), as `make test` runs it.
.PHONY: drill-quick
drill-quick: build
	./scripts/test_fault_tolerance.sh --quick

# The partition lab (needs root): every replica and agent in a network
# namespace of its own, links cut and healed with blackhole routes; every
# scenario (make test runs them too). MO_BENCH=1 adds the silent-failure
# benchmark.
.PHONY: partition-drill
partition-drill:
	$(GO) test -count=1 -v -timeout 30m -run . ./integration/partition

# Every row of the performance table against its target (a real cluster on
# 127.0.0.1, one measurement at a time; under 15 minutes on 2 cores): prints
# one table and writes bench.json. See scripts/bench.sh for the counts.
bench: build
	./scripts/bench.sh

# The Go micro-benchmarks of every package.
.PHONY: bench-micro
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w .

clean:
	rm -rf $(BIN)
