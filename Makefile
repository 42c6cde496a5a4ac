# pgshard: `make demo` to try it, `make test` before sending a change.
#
# The integration tests, the demo and the benchmarks find PostgreSQL in one
# place, test/pgtest: $PG_BINDIR when set, else a real postgres on PATH, else
# the newest /usr/lib/postgresql/*/bin. Set PG_BINDIR to pick a version.

GO           ?= go
BIN          := bin/pgshard
FUZZTIME     ?= 30s
FUZZMEM      ?= 1024
FUZZPARALLEL ?= 2
DURATION     ?= 10m
CLIENTS      ?= 200
THINK        ?= 50ms
STATICCHECK  ?= honnef.co/go/tools/cmd/staticcheck@latest

export GO FUZZTIME FUZZMEM FUZZPARALLEL

.PHONY: build test test-race vet fmt-check demo postgres bench fuzz soak lint fmt image

## build: the pgshard binary, in bin/
build:
	$(GO) build -o $(BIN) ./cmd/pgshard

## test: vet, gofmt check, then every test, integration tests included
test: vet fmt-check
	$(GO) test -count=1 -timeout 14m ./...

## test-race: test, under the race detector (slower)
test-race: vet fmt-check
	$(GO) test -race -count=1 -timeout 30m ./...

vet:
	$(GO) vet ./...

fmt-check:
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then \
		echo "gofmt: these files need formatting (make fmt):"; echo "$$files"; exit 1; fi

## demo: pgshard on 127.0.0.1:6432 in front of 2 shards, each a primary and a streaming replica, on 5433-5436 (installs PostgreSQL if needed)
demo: postgres build
	$(GO) run ./test/demo

## postgres: make sure PostgreSQL's server binaries are installed
postgres:
	@bash scripts/ensure-postgres.sh

## bench: the benchmarks against real servers
bench:
	$(GO) run ./test/bench

## fuzz: every Fuzz target for FUZZTIME (default 30s) each, FUZZPARALLEL workers, FUZZMEM MiB of RSS per process (FUZZ=regexp picks targets)
fuzz:
	@bash scripts/fuzz.sh

## soak: CLIENTS clients (default 200) through the pgshard binary for DURATION (default 10m) while shards restart; prints a report
soak:
	$(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./test/ -args -soak.duration=$(DURATION) -soak.clients=$(CLIENTS) -soak.think=$(THINK)

## lint: vet, gofmt, and staticcheck when it can be fetched
lint: vet fmt-check
	@if $(GO) run $(STATICCHECK) -version >/dev/null 2>&1; then \
		echo "$(GO) run $(STATICCHECK) ./..."; $(GO) run $(STATICCHECK) ./...; \
	else \
		echo "lint: staticcheck is unavailable (offline, or it does not build with this Go); skipped"; \
	fi

## fmt: gofmt every Go file
fmt:
	gofmt -w .

## image: the container image pgshard, from deploy/Dockerfile; `pgshard -version` in it prints git describe
image:
	docker build -f deploy/Dockerfile -t pgshard \
		--build-arg VERSION="$$(git describe --tags --always --dirty 2>/dev/null || echo devel)" .
