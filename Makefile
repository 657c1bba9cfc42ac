# Genflow — the two commands: `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift
CONFIG ?= etc/genflow.yaml

.PHONY: deps build release install uninstall run test validate schemas faults bench bench-queue bench-model bench-reload bench-websocket bench-submit bench-latency bench-branches bench-scaling clean

## Install the Debian packages Genflow needs (only those missing).
deps:
	@scripts/install-deps.sh

## Build the `genflow` binary.
build: deps
	$(SWIFT) build

## Release builds of `genflow` and the shipped Swift plugin, in .build-release/release.
release: deps
	$(SWIFT) build -c release --scratch-path .build-release --product genflow
	$(SWIFT) build -c release --scratch-path .build-release --product genflow-plugin-anthropic

## Install the release build: PREFIX (default /usr/local), DESTDIR (staging for packages), SYSCONFDIR,
## STATEDIR. Binaries in PREFIX/bin; dashboard, schemas and the shipped examples in PREFIX/share/genflow;
## the config, pipelines and plugins in SYSCONFDIR (never overwritten); the systemd unit and its user in
## PREFIX/lib. See scripts/install.sh and docs/operator.md, "Deploying".
install: release
	BINARIES=.build-release/release scripts/install.sh install

## Remove what `make install` put in PREFIX (same variables); the configuration and state stay.
uninstall:
	scripts/install.sh uninstall

## Build, check the pipelines and config, and start the daemon (embedded PostgreSQL unless
## DATABASE_URL or database.url is set). Stop it with Ctrl-C.
run: build
	.build/debug/genflow validate --config $(CONFIG)
	.build/debug/genflow serve --config $(CONFIG)

## Check that Package.swift declares exactly what each module imports, run the test suite against a
## throwaway PostgreSQL cluster of its own, then the shipped pipeline tests (genflow test pipelines/)
## on the same cluster.
test: deps
	scripts/check-imports.py
	$(SWIFT) build --build-tests
	scripts/with-test-db.sh bash -c "$(SWIFT) test --skip-build && .build/debug/genflow test pipelines/"

## Check pipelines and config only.
validate: build
	.build/debug/genflow validate --config $(CONFIG)

## Regenerate the editor schemas in etc/schema/ from the validation tables.
schemas: build
	.build/debug/genflow schema pipeline > etc/schema/pipeline.schema.json
	.build/debug/genflow schema config > etc/schema/config.schema.json
	.build/debug/genflow schema plugin > etc/schema/plugin.schema.json
	.build/debug/genflow schema test > etc/schema/pipeline-test.schema.json

## The fault-injection suite of SPEC §12 (kill -9 cycles, PostgreSQL restarts, provider faults,
## plugin kills, a slow WebSocket client, fuzzing, schemathesis); writes docs/reliability.md and
## exits 1 on any loss, duplicate, crash or 5xx. See scripts/faults/run.
faults: deps
	scripts/faults/run

## Benchmarks of SPEC §11, printed as figures next to a baseline measured in the same run: runs
## every bench/ command in turn (bench/report) and writes docs/performance.md; logs and JSON in
## .build-release/bench-logs. BENCH_ONLY=queue,scaling runs a subset, BENCH_QUICK=1 small sizes.
bench: deps
	bench/report

## Queue throughput: genflow (release build in .build-release) next to PgQueuer and a pgbench
## write ceiling, on one throwaway PostgreSQL cluster. See bench/README.md.
bench-queue: deps
	bench/queue

## Model concurrency: 2,000 chat calls in flight against a local provider that answers after 1 s,
## through genflow's HTTP client and through the daemon, next to a plain Python asyncio client.
## See bench/README.md.
bench-model: deps
	bench/model-concurrency

## Pipeline reload and start-up: how long a changed pipeline file (and SIGHUP) takes to show in
## GET /v1/pipelines/NAME, and daemon start to ready, next to the client's round trip and
## `genflow validate` of the same file. See bench/README.md.
bench-reload: deps
	bench/reload

## WebSocket fan-out: 10,000 connections to genflow serve, memory per idle connection and
## event-to-client latency while jobs run, next to a minimal Python websockets server. See bench/README.md.
bench-websocket: deps
	bench/websocket

## Submit latency: POST /v1/jobs at 1,000 requests/s (open loop), next to the client on a trivial
## server, GET /healthz and the same transaction through pgbench. See bench/README.md.
bench-submit: deps
	bench/submit

## One canvas job at a time on an idle daemon, end to end (p50 of 50); BENCH_BASELINE=COMMIT also
## measures a release build of that commit in the same run. See bench/README.md.
bench-latency: deps
	bench/latency

## Parallel steps: a pipeline of three branches whose model calls take 1 s each, next to the same
## calls in sequence, against a local provider (bench/slow_provider.py). See bench/README.md.
bench-branches: deps
	bench/branches

## Queue scaling and the hot path: throughput by worker count and with 1, 2 and 3 daemons on one
## database, the canvas pipeline on the offline provider at zero delay, and commits and round trips
## per job from pg_stat_statements, next to a pgbench write ceiling. See bench/README.md.
bench-scaling: deps
	bench/scaling

clean:
	rm -rf .build
