# CAAS: the two commands a newcomer needs are `make up` and `make test`.
# Everything downloaded or built is cached under ~/.cache/caas (override with CAAS_CACHE_DIR).

SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/caas
export CARGO_TARGET_DIR ?= $(CACHE)/target
# Incremental compilation keeps a copy of every build session per crate and test target; on a
# machine that runs `make test` every session the cache grew past 70 GB and filled the disk.
# Unchanged crates are still reused without it.
export CARGO_INCREMENTAL ?= 0
STACK := infra/local/stack.sh

.PHONY: up down status logs test lint fmt unit reset infra install docs up-cluster down-cluster status-cluster chaos

## up: install what is missing, build, start the stack and every service, print the URLs
up:
	@$(STACK) up

## down: stop everything `make up` started (data is kept; `make reset` wipes it)
down:
	@$(STACK) down

## status: what runs where and whether it is ready (exit 1 when something is not)
status:
	@$(STACK) status

## logs: follow every log (make logs PART=kafka for one)
logs:
	@$(STACK) logs $(PART)

## reset: stop everything and wipe the local state folder
reset:
	@$(STACK) reset

## install: only install the local stack's parts (Kafka, registry, SecantusDB, Redis)
install:
	@$(STACK) install

## test: start the stack if needed, then formatting, lints and every test against it
test: up lint
	cargo test --workspace --no-fail-fast
	@bash tests/system/run.sh

## lint: cargo fmt --check and clippy with warnings as errors
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings

## fmt: format the code
fmt:
	cargo fmt --all

## docs: regenerate topics/README.md and topics/asyncapi.yaml from the catalogue
docs:
	cargo run --quiet -p caasctl -- topics docs

## up-cluster: a second stack on other ports: three Kafka brokers (RF 3, min ISR 2) and its own services
up-cluster:
	@infra/local/cluster.sh up

## down-cluster: stop everything `make up-cluster` started (its state is kept in ~/.cache/caas/cluster)
down-cluster:
	@infra/local/cluster.sh down

## status-cluster: what runs in the three-broker stack and whether it is ready
status-cluster:
	@infra/local/cluster.sh status

## chaos: fault-injection and scaling tests against the three-broker stack (not part of `make test`)
chaos: up-cluster
	@bash tests/chaos/run.sh

.PHONY: bench bench-quick

## bench: the load tests side by side with the Node.js peers and the limits (under 25 minutes);
## writes load-tests/results/<timestamp>/report.md (needs `make up`)
bench: up
	python3 load-tests/bench.py --profile full

## bench-quick: every load-test scenario for a few seconds
bench-quick: up
	python3 load-tests/bench.py --profile quick
