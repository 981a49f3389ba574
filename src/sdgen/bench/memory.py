"""Memory over a long run: sample a `sdgen generate` process's RSS against the rows it has written."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Sample:
    seconds: float
    rows: int  # data lines in the output so far
    rss_mb: float


def _rows_written(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return max(sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1, 0)
    except OSError:
        return 0


def sample_generate(spec: Path, output: Path, *, rows: int, every_s: float = 1.0, extra: list[str] = ()) -> list[Sample]:
    """Run `sdgen generate SPEC -n ROWS -o OUTPUT` (CSV output) and sample its RSS every `every_s` seconds."""
    cmd = [sys.executable, "-m", "sdgen.cli", "generate", str(spec), "-n", str(rows), "-o", str(output),
           "--overwrite", "--quiet", *extra]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps, t0, samples = psutil.Process(proc.pid), time.perf_counter(), []
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss
        except psutil.NoSuchProcess:
            break
        samples.append(Sample(round(time.perf_counter() - t0, 2), _rows_written(output), round(rss / 2**20, 1)))
        time.sleep(every_s)
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"sdgen generate failed ({proc.returncode}): {stderr.decode()[-500:]}")
    return samples


def rss_growth_mb_per_1k_rows(samples: list[Sample]) -> float:
    """Least-squares slope of RSS against rows written, over the run's second half (after warm-up)."""
    rows_total = max((s.rows for s in samples), default=0)
    tail = [s for s in samples if s.rows >= rows_total / 2]
    if len(tail) < 3 or tail[-1].rows == tail[0].rows:
        return 0.0
    n = len(tail)
    mean_x = sum(s.rows for s in tail) / n
    mean_y = sum(s.rss_mb for s in tail) / n
    cov = sum((s.rows - mean_x) * (s.rss_mb - mean_y) for s in tail)
    var = sum((s.rows - mean_x) ** 2 for s in tail)
    return 1000 * cov / var
