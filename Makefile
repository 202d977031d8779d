# Prewarm: common tasks. `make test` is what CI runs (after .ci/run sets up the servers).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv proto lint test test-unit run bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)
	$(PY) -m pip install --quiet -e '.[test]'

# Regenerate the committed gRPC stubs from protos/ (a test fails when they drift).
proto: venv
	$(PY) -m scaler.protogen

lint: venv
	$(PY) -m ruff check scaler tests bench
	$(PY) -m mypy

test: venv lint
	$(PY) -m pytest -q

test-unit: venv
	$(PY) -m pytest -q tests/unit

# Run the scaler locally (text logs); KEDA or grpcurl can talk to it on :6000.
run: venv
	$(PY) -m scaler serve --log-format text

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
