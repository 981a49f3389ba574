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
    rows: int  # rows in the output so far
    driver_mb: float  # the sdgen process: plan, curation index, writer
    worker_mb: float  # the engine's worker process (0 while none runs)
    worker_pid: int | None

    @property
    def rss_mb(self) -> float:
        return round(self.driver_mb + self.worker_mb, 1)


def _rows_written(path: Path) -> int:
    """Lines of a JSONL file (one row each)."""
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def sample_generate(spec: Path, output: Path, *, rows: int, every_s: float = 1.0, extra: list[str] = ()) -> list[Sample]:
    """Run `sdgen generate SPEC -n ROWS -o OUTPUT` (a .jsonl output) and sample its memory every `every_s` seconds."""
    if output.suffix != ".jsonl":
        raise ValueError("sample_generate counts rows by lines: give it a .jsonl output")
    cmd = [sys.executable, "-m", "sdgen.cli", "generate", str(spec), "-n", str(rows), "-o", str(output),
           "--overwrite", "--quiet", *extra]  # fmt: skip
    output.unlink(missing_ok=True)  # --overwrite replaces it only once the run starts: never count its lines
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps, t0, samples = psutil.Process(proc.pid), time.perf_counter(), []
    while proc.poll() is None:
        try:
            driver = ps.memory_info().rss
            workers = [(c.pid, c.memory_info().rss) for c in ps.children() if _is_engine_worker(c)]
        except psutil.NoSuchProcess:
            continue  # finished, or a worker ended between the two calls
        pid = workers[0][0] if workers else None
        mb = lambda b: round(b / 2**20, 1)  # noqa: E731
        samples.append(Sample(round(time.perf_counter() - t0, 2), _rows_written(output), mb(driver),
                              mb(sum(w[1] for w in workers)), pid))  # fmt: skip
        time.sleep(every_s)
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"sdgen generate failed ({proc.returncode}): {stderr.decode()[-500:]}")
    return samples


def _is_engine_worker(proc: psutil.Process) -> bool:
    """The engine worker program (`python -m sdgen.hosting.worker`)."""
    return "sdgen.hosting.worker" in proc.cmdline()


def worker_peaks(samples: list[Sample]) -> list[float]:
    """Peak RSS (MB) of each engine worker process, in the order they ran."""
    peaks: dict[int, float] = {}
    for s in samples:
        if s.worker_pid is not None:
            peaks[s.worker_pid] = max(peaks.get(s.worker_pid, 0.0), s.worker_mb)
    return list(peaks.values())


def rss_growth_mb_per_1k_rows(samples: list[Sample], which: str = "rss_mb") -> float:
    """Least-squares slope of RSS (``which``: rss_mb, driver_mb or worker_mb) against rows written,
    over the second half of generation (after warm-up, before the end-of-run rewrite and report)."""
    rows_total = max((s.rows for s in samples), default=0)
    generating = samples[: next((i for i, s in enumerate(samples) if s.rows == rows_total), len(samples))]
    tail = [s for s in generating if s.rows >= rows_total / 2]
    if len(tail) < 3 or tail[-1].rows == tail[0].rows:
        return 0.0
    ys = [getattr(s, which) for s in tail]
    n = len(tail)
    mean_x = sum(s.rows for s in tail) / n
    mean_y = sum(ys) / n
    cov = sum((s.rows - mean_x) * (y - mean_y) for s, y in zip(tail, ys))
    var = sum((s.rows - mean_x) ** 2 for s in tail)
    return 1000 * cov / var
