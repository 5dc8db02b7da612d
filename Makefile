GO ?= go
BIN := bin

.PHONY: build test test-unit test-integration run drill bench vet fmt clean

build:
	$(GO) build -o $(BIN)/scheduler ./cmd/scheduler
	$(GO) build -o $(BIN)/agent ./cmd/agent

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

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w .

clean:
	rm -rf $(BIN)
