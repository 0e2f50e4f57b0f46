# The two commands: `make run` (the whole platform embedded, Envoy in front) and `make test` (the suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

SOURCES := pyproject.toml setup.py $(shell find proto third_party core_ext services -name '*.proto' -o -name '*.pyx' -o -name '*.pxd' 2>/dev/null)

.PHONY: certs run test install lint-proto breaking-proto backends pytest bench run-distributed clean dashboard dashboard-test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) $(SOURCES)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The development CA, server and client certificates of the gateway's mTLS listener (make run writes them too).
certs: install
	$(PY) -m gateway.certs .run/certs

run: install dashboard
	$(PY) -m services.embedded

# The dashboard (dashboard/): npm packages from the registry at the versions the lock file pins, then a
# type check and the Vite build into dashboard/dist, which the embedded runner serves at `/`. Rebuilt only
# when a source changed.
DASHBOARD_SOURCES := $(shell find dashboard/src dashboard/index.html dashboard/package.json dashboard/package-lock.json dashboard/tsconfig.json dashboard/vite.config.ts -type f 2>/dev/null)

dashboard: dashboard/dist/index.html

dashboard/node_modules/.package-lock.json: dashboard/package.json dashboard/package-lock.json
	cd dashboard && npm ci --no-audit --no-fund
	touch $@

dashboard/dist/index.html: dashboard/node_modules/.package-lock.json $(DASHBOARD_SOURCES)
	cd dashboard && npm run build

dashboard-test: dashboard/node_modules/.package-lock.json
	cd dashboard && npm test

# Every service in its own process on its port (machine's PostgreSQL, Redis, RabbitMQ), Envoy routing by package.
run-distributed: install backends
	$(PY) -m services.distributed

test: install backends lint-proto breaking-proto pytest

backends:
	bash scripts/ensure-backends.sh

lint-proto: install
	buf lint

# buf breaking compares the contracts with the previous commit; skipped (and said so) when there is none.
breaking-proto: install
	@if git rev-parse --verify --quiet HEAD~1 >/dev/null && git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then \
		echo "buf breaking --against '.git#ref=HEAD~1'"; buf breaking --against '.git#ref=HEAD~1'; \
	else echo "buf breaking: skipped, HEAD~1 has no buf.yaml (no previous contract to compare with)"; fi

pytest: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Every benchmark, one after the other (each prints its figures and ratios; see benchmarks/*/README.md).
bench: install backends
	PYTHONPATH=. $(PY) benchmarks/core_ext/bench_core_ext.py
	PYTHONPATH=. $(PY) benchmarks/calculator/bench_batch_rpc.py
	PYTHONPATH=. $(PY) benchmarks/marketdata/bench_streams.py
	PYTHONPATH=. $(PY) benchmarks/deltamonitor/bench_deltamonitor.py
	PYTHONPATH=. $(PY) benchmarks/portfolio/bench_portfolio.py

clean:
	rm -rf $(VENV) build gen *.egg-info core_ext/*.so core_ext/_bsm.c services/deltamonitor/domain/_book_kernel.c services/deltamonitor/domain/_book_kernel*.so dashboard/dist dashboard/node_modules
