# herald's developer entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
WITH_SERVICES := deploy/local/with-services.sh

# Every goroutine starts with a 2 KiB stack, as the runtime's default had it
# before Go 1.19: herald waits for each response on a goroutine of its own
# that never needs more, and a larger start, taken from the average of all
# stacks, costs several KiB per request in flight (BENCHMARKS.md, scenario 7).
# The same as running with GODEBUG=adaptivestackstart=0.
HERALD_LDFLAGS := -X=runtime.godebugDefault=adaptivestackstart=0

.DEFAULT_GOAL := build
.PHONY: build run test bench lint clean services-up services-down chaos fuzz

build:
	$(GO) build -ldflags '$(HERALD_LDFLAGS)' -o bin/herald ./cmd/herald

run: build
	./bin/herald dev

# Real Apache Kafka and redis-server (started here unless already running,
# and stopped again if started here) behind internal/testkit.
test:
	deploy/local/chromium.sh >/dev/null
	$(WITH_SERVICES) $(GO) test -race -count=1 -timeout 20m ./...

# The benchmark of BENCHMARKS.md against the real Kafka and Redis: a table on
# stdout and bench/results.json. Not part of make test (its -short run is).
bench: build
	$(WITH_SERVICES) bash -c '$(GO) run -ldflags "$(HERALD_LDFLAGS)" ./cmd/herald-bench -kafka "$$HERALD_TEST_KAFKA" -redis "$$HERALD_TEST_REDIS" -herald bin/herald -out bench/results.json'

# The fault suite at full size (make test runs it small): 20,000 events,
# kill -9, broker restart, a 30 s Redis outage, failing subscribers, SIGTERM.
chaos:
	HERALD_CHAOS_SIZE=full $(WITH_SERVICES) $(GO) test -count=1 -v -run . -timeout 60m ./internal/chaos/

# Each fuzz target for FUZZTIME; make test runs their seed corpora.
FUZZTIME ?= 30s
FUZZ_TARGETS := pkg/webhook:FuzzVerify internal/event:FuzzFromRecord \
	internal/subscription:FuzzDecode internal/subscription:FuzzDecodePatch internal/subscription:FuzzIndex \
	internal/retry:FuzzParseHeaders internal/retry:FuzzHeadersRoundTrip internal/retry:FuzzParseSource \
	internal/dlq:FuzzParseEntry internal/delivery:FuzzIsJSON internal/outcome:FuzzAppendJSON internal/jsonenc:FuzzAppendString \
	internal/history:FuzzAttemptJSON internal/delivery:FuzzWholeBodiless
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in ./$${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./$${t%%:*}; \
	done

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Prints export lines: eval "$(make -s services-up)" points go test at them.
services-up:
	@kafka=$$(deploy/local/kafka.sh start) && echo "export HERALD_TEST_KAFKA=$$kafka"
	@redis=$$(deploy/local/redis.sh start) && echo "export HERALD_TEST_REDIS=$$redis"
	@jaeger=$$(deploy/local/jaeger.sh start) && echo "export HERALD_TEST_JAEGER=$$jaeger HERALD_TEST_OTLP=$$(deploy/local/jaeger.sh otlp)"

services-down:
	deploy/local/kafka.sh stop
	deploy/local/redis.sh stop
	deploy/local/jaeger.sh stop

clean: services-down
	rm -rf bin .herald .local-services
