# Genflow — the two commands: `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift
CONFIG ?= etc/genflow.yaml

.PHONY: deps build run test validate schemas bench bench-queue bench-model clean

## Install the Debian packages Genflow needs (only those missing).
deps:
	@scripts/install-deps.sh

## Build the `genflow` binary.
build: deps
	$(SWIFT) build

## Build, check the pipelines and config, and start the daemon (embedded PostgreSQL unless
## DATABASE_URL or database.url is set). Stop it with Ctrl-C.
run: build
	.build/debug/genflow validate --config $(CONFIG)
	.build/debug/genflow serve --config $(CONFIG)

## Run the test suite against a throwaway PostgreSQL cluster of its own.
test: deps
	$(SWIFT) build --build-tests
	scripts/with-test-db.sh $(SWIFT) test --skip-build

## Check pipelines and config only.
validate: build
	.build/debug/genflow validate --config $(CONFIG)

## Regenerate the editor schemas in etc/schema/ from the validation tables.
schemas: build
	.build/debug/genflow schema pipeline > etc/schema/pipeline.schema.json
	.build/debug/genflow schema config > etc/schema/config.schema.json
	.build/debug/genflow schema plugin > etc/schema/plugin.schema.json

## Benchmarks of SPEC §11, printed as figures next to a baseline measured in the same run.
bench: bench-queue bench-model

## Queue throughput: genflow (release build in .build-release) next to PgQueuer and a pgbench
## write ceiling, on one throwaway PostgreSQL cluster. See bench/README.md.
bench-queue: deps
	bench/queue

## Model concurrency: 2,000 chat calls in flight against a local provider that answers after 1 s,
## through genflow's HTTP client and through the daemon, next to a plain Python asyncio client.
## See bench/README.md.
bench-model: deps
	bench/model-concurrency

clean:
	rm -rf .build
