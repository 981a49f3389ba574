"""pytest-benchmark matrix: model x prompt style x backend on the example spec (`make bench`).

Each cell runs once in its own process (as `sdgen bench` does) and lands in pytest-benchmark's
JSON with its measurements in `extra_info`, and in the JSONL history. The last test checks the
targets on the cells measured in this session. Choose the matrix with environment variables:
SDGEN_BENCH_MODELS, SDGEN_BENCH_STYLES, SDGEN_BENCH_BACKENDS (comma-separated), SDGEN_BENCH_ROWS,
SDGEN_BENCH_HISTORY.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdgen.bench import DEFAULT_BACKENDS, EXAMPLE_SPEC, STYLES, Bench, BenchConfig, check_targets
from sdgen.models import BUILTINS


def _env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "")
    return [v.strip() for v in value.split(",") if v.strip()] or default


CONFIG = BenchConfig(
    spec=EXAMPLE_SPEC,
    models=_env_list("SDGEN_BENCH_MODELS", list(BUILTINS)),
    styles=_env_list("SDGEN_BENCH_STYLES", list(STYLES)),
    backends=_env_list("SDGEN_BENCH_BACKENDS", list(DEFAULT_BACKENDS)),
    rows=int(os.environ.get("SDGEN_BENCH_ROWS", "256")),
    history=Path(os.environ.get("SDGEN_BENCH_HISTORY", "benchmarks/history.jsonl")),
)
SESSION = Bench(CONFIG)
MEASURED: list[dict] = []


@pytest.mark.parametrize(("model", "style", "backend"), CONFIG.cells(), ids=lambda v: Path(v).name)
def test_cell(benchmark, model, style, backend):
    cell = benchmark.pedantic(SESSION.cell, args=(model, style, backend), rounds=1, iterations=1)
    MEASURED.append(cell)
    benchmark.extra_info.update(cell)
    if "skipped" in cell:
        pytest.skip(cell["skipped"])
    assert "error" not in cell, cell["error"]
    assert cell["parsed"] > 0 and cell["distinct"] <= cell["parsed"] <= cell["rows"]


def test_targets():
    results = check_targets(MEASURED)
    if not results:
        pytest.skip("the matrix measured no sdgen cell with its baselines in the reasoning style")
    missed = [text for text, met in results if not met]
    assert not missed, "missed: " + "; ".join(missed)
