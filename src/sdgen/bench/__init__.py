"""`sdgen bench`: throughput per model x prompt style x backend, measured side by side in one run.

Each cell runs in its own process, one at a time; anchors (recipe, genai-default) run first in
each model x style group so every later cell carries its ratio against them. Every finished cell
is appended to a JSONL history with the machine, versions and git commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from sdgen.bench.cell import RESULT_TAG
from sdgen.bench.history import append_history
from sdgen.bench.machine import git_commit, machine_info, versions
from sdgen.errors import SdgenError
from sdgen.models.registry import BUILTINS
from sdgen.spec import EngineOptions, format_validation_error

BACKENDS = ["recipe", "genai-default", "llama.cpp", "optimum", "torch", "ipex", "engine", "sdgen"]  # anchors first
# `engine` (no retries, no writing) is opt-in; `llama.cpp` builds llama-server once (~10 min on 2 cores)
DEFAULT_BACKENDS = [b for b in BACKENDS if b not in ("engine", "llama.cpp")]
ANCHORS = ("recipe", "genai-default", "llama.cpp")
BASELINE_PREFIX = "sdgen@"  # `sdgen@COMMIT`: this repository's sdgen at COMMIT, on the same model file
STYLES = ["fewshot", "reasoning"]
# One row at a time or static batches of 16 at 0.3-1 rows/s: these run on the first rows of the same plan.
SLOW_BACKENDS = {"recipe": 16, "torch": 64, "ipex": 64}
EXAMPLE_SPEC = Path(__file__).resolve().parents[1] / "examples" / "customer_service.yaml"  # package data
SOURCE_TREE = Path(__file__).resolve().parents[3]  # the checkout, when sdgen runs from one (git commit, .venv-ipex)
CELL_TIMEOUT_S = 3 * 3600


class BenchError(SdgenError):
    pass


@dataclass
class BenchConfig:
    spec: Path
    models: list[str] = field(default_factory=lambda: list(BUILTINS))
    styles: list[str] = field(default_factory=lambda: list(STYLES))
    backends: list[str] = field(default_factory=lambda: list(DEFAULT_BACKENDS))
    rows: int = 256
    sizes: list[int] | None = None  # run sizes (rows) to measure each cell at, instead of `rows`
    baseline_rows: int | None = None  # rows for the slow backends; default SLOW_BACKENDS
    threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    history: Path | None = Path("sdgen-bench.jsonl")
    engine: dict = field(default_factory=dict)  # EngineOptions overrides for every cell
    ipex_python: str | None = None
    real: Path | None = None  # real labelled rows: every cell's agreement, and useful rows/s
    real_columns: tuple[str, str] = ("text", "label")

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in BACKENDS and not b.startswith(BASELINE_PREFIX)]
        if unknown:
            raise BenchError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
        if self.rows <= 0 or (self.baseline_rows is not None and self.baseline_rows <= 0):
            raise BenchError("--rows and --baseline-rows must be positive")
        if self.sizes is not None and (not self.sizes or min(self.sizes) <= 0):
            raise BenchError(f"--sizes must be positive row counts, as in 64,256,1024 (got {self.sizes})")
        if not self.spec.is_file():
            raise BenchError(f"spec {self.spec} does not exist (pass the workload with --spec)")
        try:
            EngineOptions.model_validate(self.engine)  # fail before any cell runs, not once per cell
        except ValidationError as exc:
            raise BenchError(format_validation_error(exc, "--engine")) from None

    def rows_for(self, backend: str, size: int | None = None) -> int:
        rows = self.rows if size is None else size
        if backend in SLOW_BACKENDS:
            return min(rows, self.baseline_rows or SLOW_BACKENDS[backend])
        return rows

    def cells(self) -> list[tuple[str, str, str, int]]:
        """(model, style, backend, run size) in run order: per model x style x size, anchors first."""
        order = sorted(self.backends, key=lambda b: BACKENDS.index("sdgen") - 0.5 if b.startswith(BASELINE_PREFIX)
                       else BACKENDS.index(b))  # fmt: skip
        sizes = self.sizes or [self.rows]
        return [(m, s, b, n) for m in self.models for s in self.styles for n in sizes for b in order]


def ipex_python(explicit: str | None = None) -> str | None:
    """The interpreter of an environment with IPEX: given, $SDGEN_IPEX_PYTHON, this one, or ./.venv-ipex."""
    if explicit or os.environ.get("SDGEN_IPEX_PYTHON"):
        return explicit or os.environ["SDGEN_IPEX_PYTHON"]
    import importlib.util

    if importlib.util.find_spec("intel_extension_for_pytorch"):
        return sys.executable
    for root in (Path.cwd(), SOURCE_TREE):
        candidate = root / ".venv-ipex" / "bin" / "python"
        if candidate.is_file():
            return str(candidate)
    return None


def baseline_source(commit: str) -> Path:
    """This checkout's ``src/`` at ``commit``, exported once into the cache (for `sdgen@COMMIT` cells)."""
    from sdgen.models.registry import CACHE_DIR

    target = CACHE_DIR / "baselines" / commit
    if not (target / "src" / "sdgen").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(SOURCE_TREE), "archive", commit, "src"], capture_output=True)
        if archive.returncode != 0:
            raise BenchError(f"{BASELINE_PREFIX}{commit}: not a commit of {SOURCE_TREE} ({archive.stderr.decode().strip()})")
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "src"


def _child(python: str, args: dict, threads: int, pythonpath: Path | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.run([python, "-m", "sdgen.bench.cell", json.dumps(args)], capture_output=True, text=True,
                          env=env, timeout=CELL_TIMEOUT_S)  # fmt: skip
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or [f"exit code {proc.returncode}"]
    return {"error": f"cell process died: {tail[0][:300]}"}


def measure_peak(threads: int) -> dict[str, float]:
    result = _child(sys.executable, {"kind": "peak", "threads": threads}, threads)
    return result.get("peak", {})


def add_ratios(cell: dict, anchors: dict[str, dict]) -> None:
    for name, anchor in anchors.items():
        key = name.replace("-", "_").replace(".", "")
        for metric in ("distinct_rows_s", "tok_s"):
            if anchor.get(metric) and cell.get(metric) is not None:
                cell[f"x_{key}_{metric}"] = round(cell[metric] / anchor[metric], 3)


# The targets for the `reasoning` style: (metric, baseline, minimum ratio of sdgen over the baseline).
TARGETS = [("tok_s", "genai-default", 1.5), ("tok_s", "optimum", 2.0), ("tok_s", "recipe", 40.0),
           ("distinct_rows_s", "genai-default", 10.0)]  # fmt: skip


def check_targets(cells: list[dict], style: str = "reasoning") -> list[tuple[str, bool]]:
    """(description, met) for every target whose cells were measured in this run."""
    found = []
    ok_cells = {(c["model"], c["style"], c["backend"]): c for c in cells if "error" not in c and "skipped" not in c}
    for (model, cell_style, backend), cell in ok_cells.items():
        if backend != "sdgen" or cell_style != style:
            continue
        for metric, baseline, minimum in TARGETS:
            base = ok_cells.get((model, style, baseline))
            if base and base.get(metric):
                ratio = cell[metric] / base[metric]
                text = f"{Path(model).name} {style}: sdgen {metric} {ratio:.1f}x {baseline} (target >= {minimum:g}x)"
                found.append((text, ratio >= minimum))
    return found


class Bench:
    """One benchmark session: the machine's peak measured once, anchors kept per model x style."""

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.common: dict = {"run": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine_info(config.threads),
                             "versions": versions(),
                             "git_commit": git_commit(SOURCE_TREE)}  # fmt: skip
        self.anchors: dict[tuple[str, str, int], dict[str, dict]] = {}
        self._ipex = ipex_python(config.ipex_python)
        self._peak: float | None = None
        self._judge = None
        if config.real is not None:
            from sdgen.quality.evaluate import RealClassifier

            self._judge = RealClassifier.from_file(config.real, *config.real_columns)

    def measure_peak(self) -> float | None:
        peaks = measure_peak(self.config.threads)
        self.common["matmul_peaks"] = peaks
        self._peak = self.common["matmul_peak_gflops"] = max(peaks.values()) if peaks else None
        return self._peak

    def cell(self, model: str, style: str, backend: str, size: int | None = None) -> dict:
        """Run one cell (of run size ``size``, default --rows) in its own process; add its share of peak and ratios
        against the anchors of the same model, style and size; append it to the history."""
        if "matmul_peaks" not in self.common:
            self.measure_peak()
        size = self.config.rows if size is None else size
        rows = self.config.rows_for(backend, size)
        args = {"spec": str(self.config.spec), "model": model, "style": style, "backend": backend,
                "rows": rows, "threads": self.config.threads, "engine": self.config.engine}
        t0 = time.perf_counter()
        if backend == "ipex" and self._ipex is None:
            result = {"skipped": "no IPEX environment: run `make ipex-env` (or set SDGEN_IPEX_PYTHON)"}
        elif backend.startswith(BASELINE_PREFIX):  # an older sdgen: the same model file, named by path
            from sdgen.models.resolve import resolve_model

            path = str(resolve_model(model).path)
            result = _child(sys.executable, {**args, "backend": "sdgen", "model": path}, self.config.threads,
                            baseline_source(backend.removeprefix(BASELINE_PREFIX)))  # fmt: skip
        else:
            result = _child(self._ipex if backend == "ipex" else sys.executable, args, self.config.threads)
        labelled = result.pop("labelled", None)
        cell = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": model, "style": style, "backend": backend,
                "size": size, "rows_asked": args["rows"], "wall_s": round(time.perf_counter() - t0, 1), **result}  # fmt: skip
        if "error" in cell or "skipped" in cell:
            return cell
        # Rows of labels the real file lacks cannot be judged: agreement is over the others.
        known = self._judge.labels if self._judge is not None else set()
        judged = [(t, lab) for t, lab in labelled or [] if lab in known]
        if judged:
            cell["agreement"] = round(self._judge.agreement([t for t, _ in judged], [lab for _, lab in judged]), 4)
            cell["agreement_rows"] = len(judged)
            cell["useful_rows_s"] = round(cell["distinct_rows_s"] * cell["agreement"], 3)
        if self._peak and cell.get("gflops") is not None:
            cell["peak_share"] = round(cell["gflops"] / self._peak, 5)
        anchors = self.anchors.setdefault((model, style, size), {})
        add_ratios(cell, anchors)
        if backend in ANCHORS:
            anchors[backend] = cell
        if self.config.history:
            append_history(self.config.history, {**self.common, **cell, "engine_overrides": self.config.engine})
        return cell

    def run(self, on_event: Callable[[str, dict], None] = lambda kind, data: None) -> list[dict]:
        """Every cell of the matrix, anchors first in each model x style group."""
        on_event("peak", {})
        self.measure_peak()
        cells = []
        for model, style, backend, size in self.config.cells():
            on_event("start", {"model": model, "style": style, "backend": backend,
                               "rows": self.config.rows_for(backend, size)})  # fmt: skip
            cells.append(self.cell(model, style, backend, size))
            on_event("done", cells[-1])
        return cells


def run_bench(config: BenchConfig, on_event: Callable[[str, dict], None] = lambda kind, data: None) -> list[dict]:
    """Run the matrix and return one dict per cell (each also appended to the history file)."""
    return Bench(config).run(on_event)
