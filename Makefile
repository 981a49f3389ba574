# sdgen: `make demo` on a fresh machine generates a small dataset; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SDGEN := $(VENV)/bin/sdgen
DEMO_OUT ?= demo/customer_service.csv
DEMO_ROWS ?= 64
export PIP_DISABLE_PIP_VERSION_CHECK := 1

OPTIMUM_INTEL := optimum-intel==2.2.0

IPEX_VENV := .venv-ipex

.PHONY: install install-convert ipex-env test-ipex demo test test-fast bench models clean

install: $(VENV)/.installed

# Re-install when the package metadata changes. CPU-only: torch and friends are optional extras.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	$(SDGEN) models --provision smollm2-135m-instruct > /dev/null
	@touch $@

# Model conversion, the torch baseline and Ray: the [convert] and [ray] extras plus optimum-intel without its torchvision pin.
install-convert: $(VENV)/.installed-convert

$(VENV)/.installed-convert: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,convert,ray]'
	$(PY) -m pip install -q --no-deps '$(OPTIMUM_INTEL)'
	@touch $@

# IPEX lives in its own environment (torch 2.8, transformers 4.51): see requirements-ipex.txt.
ipex-env: $(IPEX_VENV)/.installed

$(IPEX_VENV)/.installed: requirements-ipex.txt pyproject.toml
	@test -x $(IPEX_VENV)/bin/python || $(PYTHON) -m venv $(IPEX_VENV)
	$(IPEX_VENV)/bin/pip install -q -r requirements-ipex.txt
	$(IPEX_VENV)/bin/pip install -q --no-deps -e .
	$(IPEX_VENV)/bin/sdgen models --provision smollm2-135m-instruct > /dev/null
	@touch $@

test-ipex: ipex-env
	$(IPEX_VENV)/bin/python -m pytest -q tests/test_engine_ipex.py

demo: install
	$(SDGEN) generate examples/customer_service.yaml --rows $(DEMO_ROWS) --output $(DEMO_OUT) --overwrite
	@echo "dataset written to $(DEMO_OUT)"
	@$(PY) -c "import pandas as pd; df = pd.read_csv('$(DEMO_OUT)'); print(df[['label', 'text']].head(8).to_string(max_colwidth=90))"

test: install-convert
	$(PY) -m pytest -q

test-fast: install-convert
	$(PY) -m pytest -q -m "not slow and not integration"

# The throughput matrix (built-in models x fewshot/reasoning x every backend; ~40 min on 2 cores). IPEX cells
# run in .venv-ipex when it exists (`make ipex-env`). Results: benchmarks/results.json + benchmarks/history.jsonl.
bench: install-convert
	$(PY) -m pytest benchmarks -p no:cacheprovider --benchmark-json=benchmarks/results.json -q
	$(SDGEN) bench --plot --history benchmarks/history.jsonl

models: install
	$(SDGEN) models

clean:
	rm -rf $(VENV) $(IPEX_VENV) demo .pytest_cache
