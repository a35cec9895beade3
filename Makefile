# Hermes Cache. The two commands a new user runs: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install lock test lint unit integration e2e chart-test demo demo-down bench bench-quick cluster-up cluster-down services-up services-down clean image image-vllm

## install: create .venv with the project and everything its tests use, and the embedding model
install: $(BIN)/.installed
	bash scripts/models/install.sh >/dev/null
# Exactly the locked versions (requirements/dev.txt, every file checked by its hash), then the project
# itself without resolving anything; `pip check` proves the lock is complete and consistent.
$(BIN)/.installed: pyproject.toml requirements/dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/dev.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

## lock: re-resolve requirements/*.txt to the newest versions pyproject.toml allows (review the diff)
lock: install
	bash scripts/lock.sh

## test: every tier: lint, unit, chart, integration (Redis + vLLM), e2e (Kubernetes)
test: install
	bash scripts/test.sh all

lint: install
	bash scripts/test.sh lint

unit: install
	bash scripts/test.sh unit

chart-test: install
	bash scripts/test.sh chart

integration: install
	bash scripts/test.sh integration

e2e: install
	bash scripts/test.sh e2e

## demo: the main job for a new user
demo: install
	bash scripts/demo.sh

## demo-down: stop the demo's operator and Redis, then the local cluster
demo-down:
	bash scripts/demo.sh down

## bench: every benchmark; bench-quick finishes in a few minutes
bench: install
	bash scripts/bench.sh full

bench-quick: install
	bash scripts/bench.sh quick

## image: the operator + sidecar image (and its Debian base) with podman, cached by a hash of its
## inputs; prints HERMES_IMAGE=localhost/hermes-cache:<hash>. image-vllm: the vLLM CPU engine image.
image:
	bash scripts/image/build.sh hermes

image-vllm:
	bash scripts/image/build.sh vllm

cluster-up:
	bash scripts/cluster-up.sh

cluster-down:
	bash scripts/cluster-down.sh

services-up:
	bash scripts/redis/start.sh
	bash scripts/vllm/start.sh

services-down:
	-bash scripts/vllm/stop.sh
	-bash scripts/redis/stop.sh

clean: cluster-down services-down
	rm -rf $(VENV) .e2e .mypy_cache .ruff_cache .pytest_cache
