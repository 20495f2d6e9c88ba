# orderflow — make targets. Bare `make` prints this help.
SHELL := /bin/bash
GO ?= go
PKG ?= ./...
BENCH ?= .
COUNT ?= 10
BENCHTIME ?= 1s
FUZZTIME ?= 60s
DURATION ?= 10s
CONNS ?= 64
SCENARIO ?= orders
ADMIN ?= 127.0.0.1:6060
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo nocommit)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
export DATABASE_URL ?= postgres://127.0.0.1:5432/orderflow?sslmode=disable

.PHONY: help fmt vet lint test test-race test-integration test-deploy smoke fuzz bench benchstat build run db redis tools image loadtest soak profile profile-cpu profile-heap profile-allocs check chaos

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

db: ## start (installing if needed) local PostgreSQL and create the orderflow database
	@bash scripts/db.sh

redis: ## start (installing if needed) a local Redis on 127.0.0.1:6379 for the shared rate-limit tests
	@bash scripts/redis.sh

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

vet: ## go vet
	$(GO) vet $(PKG)

# staticcheck is pinned: a new release may add checks, and the lint must not change under a commit.
# v0.8.2 (2026.2.2) is built for Go 1.26 (its go.mod says go 1.26.0), which loading this module needs.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: ## gofmt check, go vet, staticcheck (pinned) and go mod tidy -diff; zero findings (a suppression says why)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKG)
	$(GO) run $(STATICCHECK) $(PKG)
	$(GO) mod tidy -diff

tools: ## install (with apt, when missing) promtool and HAProxy for the deployment and rollout tests
	@bash scripts/tools.sh

image: ## build the container image (docker, or buildah without a daemon); prints its name and size (IMAGE=orderflow IMAGE_TAG=<git describe>)
	@bash scripts/image.sh

test: lint db redis tools ## make lint, database and Redis set-up, then every test with -race (integration tests, the 10 s load-test smoke and the 60 s soak included; a dead database fails them), then the deploy module's tests
	$(GO) test -race -count=1 -timeout 8m $(PKG)
	$(MAKE) test-deploy

test-deploy: db tools ## the deploy/ module: go vet, go mod tidy -diff, then image build and run, kustomize render and checks, dashboard and alert metrics, promtool
	cd deploy && $(GO) vet ./... && $(GO) mod tidy -diff && $(GO) test -count=1 -timeout 15m -v ./...

smoke: db ## only the load-test smoke (part of test): ~10 s of load against an in-process server, reconciled
	$(GO) test -race -count=1 -run TestSmokeLoadAgainstRealServer -v ./cmd/loadtest/

test-race: test ## alias of test (tests always run with -race)

test-integration: db redis ## only the tests that talk to PostgreSQL, Redis and the broker
	$(GO) test -race -count=1 ./engine/store/... ./engine/publish/... ./engine/ingest/... ./engine/ ./cmd/...

fuzz: ## run each fuzz target for FUZZTIME
	@for t in FuzzDecode FuzzDecodeImpls FuzzDecodeStatus FuzzSplitArray FuzzParseRFC3339; do \
		$(GO) test -run XXX -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./engine/order/ || exit 1; done
	$(GO) test -run XXX -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME) ./engine/ingest/

BENCHPKG ?= ./engine/...
bench: db ## micro-benchmarks of engine/ (BENCH, COUNT, BENCHTIME, BENCHPKG=./bench/ for the database and end-to-end ones), tee to bench/out/<commit>.txt
	@mkdir -p bench/out
	$(GO) test -run XXX -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) -count $(COUNT) $(BENCHPKG) | tee bench/out/$(COMMIT).txt

benchstat: ## compare two bench outputs: make benchstat OLD=a.txt NEW=b.txt
	$(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da $(OLD) $(NEW)

build: ## build bin/orderflow, bin/loadtest, bin/soak and bin/benchtargets (the naive baseline, no-op and broker)
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/orderflow ./cmd/orderflow
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/loadtest ./cmd/loadtest
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/soak ./cmd/soak
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/benchtargets ./cmd/benchtargets

run: db build ## local PostgreSQL + demo catalog + server with the embedded broker
	./bin/orderflow seed-demo-catalog
	@echo
	@echo "Try:  curl -i -X POST localhost:8080/v1/orders -H 'Content-Type: application/json' \\"
	@echo "        -d '{\"id\":\"ord_demo1\",\"user_id\":\"u_42\",\"items\":[{\"sku\":\"milk-1l\",\"qty\":2},{\"sku\":\"bread-rye\",\"qty\":1}]}'"
	@echo "      curl -s localhost:8080/v1/orders/ord_demo1"
	@echo "      curl -s $(ADMIN)/metrics | grep ^orderflow_orders_total"
	@echo
	./bin/orderflow

loadtest: db build ## orderflow vs naive baseline vs no-op, reconciled, JSON + PNG charts in loadtest/out/ (DURATION= CONNS= SCENARIO= SWEEP=)
	DURATION=$(DURATION) CONNS=$(CONNS) SCENARIO=$(SCENARIO) bash scripts/loadtest.sh

# make soak: DURATION defaults to 30m here (10s is the load test's default).
SOAK_DURATION = $(if $(filter file,$(origin DURATION)),30m,$(DURATION))
SHARE ?= 0.7
AUTOVACUUM ?= on
soak: db build ## open loop at SHARE (0.7) of the measured max for DURATION (30m), private PostgreSQL (AUTOVACUUM=on|off), broker in its own process; samples every minute, charts, reconciliation, targets (RATE= skips the max; SOAK_ARGS= more flags)
	./bin/soak -duration $(SOAK_DURATION) -share $(SHARE) -autovacuum $(AUTOVACUUM) $(if $(RATE),-rate $(RATE)) $(SOAK_ARGS)

profile: db build ## load a fresh server and capture CPU, heap, allocs, mutex, block, trace + SVGs into pprof/out/ (TARGET= SCENARIO=)
	CONNS=$(CONNS) SCENARIO=$(SCENARIO) bash scripts/profile.sh

profile-cpu: ## 30 s CPU profile from a running server's admin port into pprof/
	@mkdir -p pprof/out
	curl -sf "http://$(ADMIN)/debug/pprof/profile?seconds=30" -o pprof/out/$$(date +%F)_cpu_$(COMMIT).cpu.pprof

profile-heap: ## heap profile from a running server
	@mkdir -p pprof/out
	curl -sf "http://$(ADMIN)/debug/pprof/heap" -o pprof/out/$$(date +%F)_heap_$(COMMIT).heap.pprof

profile-allocs: ## allocs profile from a running server
	@mkdir -p pprof/out
	curl -sf "http://$(ADMIN)/debug/pprof/allocs" -o pprof/out/$$(date +%F)_allocs_$(COMMIT).allocs.pprof

chaos: db tools ## long crash/fault runs (SIGKILL under load, PostgreSQL restarts, Kafka faults, 3 instances, Kafka gone for 1 of 2 instances, rolling restart behind HAProxy); appends to chaos/RESULTS.md
	@bash scripts/chaos.sh

check: lint test ## fmt check + vet + tests with -race
