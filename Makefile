# The two commands a new machine needs are `make demo` and `make test`; everything else is
# for development. Every target installs what it needs first.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help deps build lint fmt test chaos demo bench stack-up stack-down stack-status stack-clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

deps: ## install the pinned Rust toolchain and the build's system packages
	@scripts/dev/deps.sh

build: deps ## build every binary
	$(CARGO) build --workspace --bins

lint: deps ## formatting and clippy checks, as CI runs them
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

test: deps stack-up ## run every test against the local stack (starts it when needed), then a short demo that must end clean
	$(CARGO) test --workspace --locked
	cd tests/packaging && go test -count=1 ./...
	$(CARGO) build --workspace --bins --locked
	DEMO_DURATION_S=10 DEMO_EXIT_AFTER_REPORT=1 scripts/dev/demo.sh

chaos: deps stack-up ## the long fault-injection run (release builds): kills, Kafka and PostgreSQL restarts, dropped SQL Server connections
	$(CARGO) build --release --locked --bins -p cdc-extractor -p cdc-transformer -p cdc-loader -p cdc-reconciler
	CDC_CHAOS=long $(CARGO) test --release --locked -p cdc-e2e-tests --test faults -- --nocapture

bench: deps stack-up ## run the benchmarks (simulator, loader, transformer, extractor, reconciler, the whole pipeline end to end on the local stack); results as JSON under target/bench
	$(CARGO) run --release -p mssql-sim --example bench -- --rows 200000 --out $(CURDIR)/target/bench/mssql-sim.json
	$(CARGO) bench -p cdc-loader --bench loader -- --rows 1000000 --out $(CURDIR)/target/bench/loader.json
	$(CARGO) bench -p cdc-transformer --bench transformer -- --events 2000000 --out $(CURDIR)/target/bench/transformer.json
	$(CARGO) bench -p cdc-extractor --bench extractor -- --rows 200000 --out $(CURDIR)/target/bench/extractor.json
	$(CARGO) bench -p cdc-reconciler --bench reconciler -- --rows 1000000 --out $(CURDIR)/target/bench/reconciler.json
	$(CARGO) build --release --bins -p cdc-extractor -p cdc-transformer -p cdc-loader -p cdc-reconciler
	$(CARGO) bench -p cdc-e2e-tests --bench pipeline -- --rows 500000 --rate 10000 --lag-seconds 60 --out $(CURDIR)/target/bench/pipeline.json

demo: build stack-up ## start the local stack and the four services
	@scripts/dev/demo.sh

stack-up: ## install and start Kafka, PostgreSQL and OpenBao on loopback; write .stack/env
	@scripts/stack/up.sh

stack-down: ## stop the local stack (data stays)
	@scripts/stack/down.sh

stack-status: ## show which stack components run
	@scripts/stack/status.sh

stack-clean: ## stop the local stack and delete its data (installed jars and binaries stay)
	@scripts/stack/down.sh --clean
