# Planboard — the two commands a newcomer needs are `make run` and `make test`.
# Everything else is installed by these targets: Python deps into .venv (pinned by
# uv.lock), and the dev servers (Redis, Kafka, a MongoDB-compatible server) into
# the cache folder ($(PLANBOARD_CACHE_DIR)), reused by later runs. `make run` installs
# only what running needs; `make test` (and lint, setup, ...) everything.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
export PLANBOARD_CACHE_DIR ?= $(HOME)/.cache/planboard
UV_HOME := $(PLANBOARD_CACHE_DIR)/tools/uv-$(UV_VERSION)
UV := $(UV_HOME)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help setup setup-run system system-run servers k8s-tools js-tools cluster-tools run test test-unit test-integration test-compat test-k8s test-cluster lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Runtime dependencies only, plus the `devstack` group: the dev stack's own package
# (devstack/, planboard-devstack: `planboard dev`, its dev servers and their Python deps).
# `--inexact` keeps what a full sync installed, so `make run` after `make test` never
# uninstalls the test tools; `make test` after `make run` adds them.
$(VENV)/.synced-run: $(UV) pyproject.toml devstack/pyproject.toml uv.lock
	UV_CACHE_DIR=$(PLANBOARD_CACHE_DIR)/uv-cache $(UV) sync --frozen --inexact --group devstack --python $(PYTHON)
	touch $@

# Everything: runtime, the dev stack and the dev/test tools (pytest, playwright, mypy, ...).
$(VENV)/.synced: $(UV) pyproject.toml devstack/pyproject.toml uv.lock
	UV_CACHE_DIR=$(PLANBOARD_CACHE_DIR)/uv-cache $(UV) sync --frozen --all-extras --all-groups --python $(PYTHON)
	touch $@

setup: system $(VENV)/.synced ## install every Python dep (.venv, dev tools included) and system package

setup-run: system-run $(VENV)/.synced-run ## install only what `make run` needs

system: ## install the Debian packages the dev stack and the tests need (if missing)
	@bash scripts/system-deps.sh test

system-run: ## install the Debian packages `make run` needs (if missing)
	@bash scripts/system-deps.sh run

servers: setup-run ## download/build the dev servers into the cache (idempotent)
	$(BIN)/planboard dev --install-only

k8s-tools: setup ## build the control plane, Helm, kubeconform and promtool into the cache (idempotent)
	$(BIN)/python -m planboard_devstack.k8stools

js-tools: setup ## install the npm packages the tests use (mermaid's parser) into the cache (idempotent)
	$(BIN)/python -m tests.utils.jstools

cluster-tools: k8s-tools ## build the one-node cluster's tools and the images from this tree (idempotent; root)
	$(BIN)/python -m planboard_devstack.cluster tools

run: servers ## start the whole stack on embedded dev servers (API on http://127.0.0.1:8080)
	$(BIN)/planboard dev

lint: setup ## ruff, mypy (strict) and the import-layer contracts
	$(BIN)/ruff check service operator devstack tests
	$(BIN)/ruff format --check service operator devstack tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test-unit: setup ## pure unit tests (no servers)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-compat: setup servers ## the MongoDB compatibility suite against the dev server
	$(BIN)/pytest tests/compat $(PYTEST_ARGS)

test-integration: setup servers js-tools ## integration tests against real servers the session starts
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-k8s: k8s-tools ## operator/cluster tests on a local kube-apiserver (built once, cached)
	$(BIN)/pytest tests/k8s $(PYTEST_ARGS)

# The cluster tests, then a check that their teardown left nothing on the host.
define cluster_pytest
	status=0; $(BIN)/pytest tests/cluster $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/python -m planboard_devstack.cluster down --check || status=1; exit $$status
endef

test-cluster: cluster-tools ## the chart's real Pods on a one-node cluster in a network namespace (root, ~2 GB RAM; docs/cluster.md)
	$(cluster_pytest)

# The cluster tests run in a pytest session of their own, after the rest: never next to
# the integration servers' load, and the whole machine's memory is theirs. CLUSTER_TESTS=0
# leaves them out, for hosts that cannot run them (docs/cluster.md, "Requirements"): the
# hosted workflow's cgroup v2 runner; never on the project's machines.
CLUSTER_TESTS ?= 1
test: lint servers k8s-tools js-tools $(if $(filter 1,$(CLUSTER_TESTS)),cluster-tools) ## everything CI runs: lint, types, unit, compat, integration, k8s and cluster tests
	$(BIN)/pytest tests --ignore=tests/cluster $(PYTEST_ARGS)
	$(if $(filter 1,$(CLUSTER_TESTS)),$(cluster_pytest),@echo "cluster tests left out (CLUSTER_TESTS=$(CLUSTER_TESTS))")

format: setup ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix service operator devstack tests
	$(BIN)/ruff format service operator devstack tests

clean: ## remove the virtualenv and local state (the download cache is kept)
	rm -rf $(VENV) .planboard .pytest_cache .mypy_cache .ruff_cache

.PHONY: chart-crds
chart-crds: ## copy crds/*.yaml into the Helm chart (charts/planboard/crds/); a chart test fails on drift
	@ls crds/*.yaml >/dev/null 2>&1 || { echo "crds/ has no *.yaml files" >&2; exit 1; }
	rm -f charts/planboard/crds/*.yaml
	cp crds/*.yaml charts/planboard/crds/
	@echo "charts/planboard/crds/ now matches crds/ (apply them before helm upgrade: kubectl apply --server-side -f crds/)"

.PHONY: openapi
openapi: setup ## regenerate docs/openapi.json and the Postman collection from the code (a test fails on drift)
	$(BIN)/planboard openapi --output docs/openapi.json --postman docs/planboard.postman_collection.json

.PHONY: bench bench-growth bench-forecast bench-events
bench: setup servers ## HTTP benchmark of the main API paths vs a hello-world ceiling (writes docs/benchmarks.md); the event pipeline: make bench-events
	$(BIN)/python benchmarks/http_bench.py $(BENCH_ARGS)

bench-growth: setup servers ## the main paths at 1k, 10k and 100k tasks (writes docs/benchmarks.md)
	$(BIN)/python benchmarks/growth_bench.py $(BENCH_ARGS)

bench-events: setup servers ## event pipeline end to end: write → outbox → relay → Kafka → webhooks → receiver, throughput and latency at 100/s (writes docs/benchmarks.md)
	$(BIN)/python benchmarks/events_bench.py $(BENCH_ARGS)

bench-forecast: setup ## Monte Carlo schedule forecast at 1k and 10k tasks x 1,000 runs (prints a table for docs/benchmarks.md)
	$(BIN)/python benchmarks/forecast_bench.py $(BENCH_ARGS)
