"""Memory targets (`make bench`): flat engine memory over a long run, and sdgen's own bytes per row.

These measure the machine, so they live here and not in the unit tests. Each lands in
pytest-benchmark's JSON with its figures in ``extra_info``.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import pytest
import yaml

import sdgen
from sdgen.bench.memory import rss_growth_mb_per_1k_rows, sample_generate, worker_peaks
from sdgen.progress import NullProgress
from sdgen.spec import build_spec
from sdgen.testing import build_tiny_gguf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import base_spec  # noqa: E402

FAST = {"max_new_tokens": 16, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


def test_long_run_memory_has_no_growth_trend(benchmark, tmp_path, tiny):
    """2,400 rows with the engine's worker restarted every 400 requests: each worker's peak stays at the
    first one's, and the driver (plan, dedup index, writer) grows by no more than its index's bytes per row."""
    spec = tmp_path / "mem.yaml"
    spec.write_text(yaml.safe_dump(base_spec(generation=FAST, prompt_style="fewshot", models=[str(tiny)],
                                             engine={"threads": 2, "max_num_seqs": 32, "recycle_every": 400})))  # fmt: skip
    samples = benchmark.pedantic(sample_generate, args=(spec, tmp_path / "rows.jsonl"),
                                 kwargs={"rows": 2400, "every_s": 0.25}, rounds=1, iterations=1)  # fmt: skip
    peaks = worker_peaks(samples)
    driver = rss_growth_mb_per_1k_rows(samples, "driver_mb")
    benchmark.extra_info.update({"worker_peaks_mb": peaks, "driver_mb_per_1k_rows": round(driver, 2)})
    assert len(peaks) >= 5, peaks  # one process per 400 requests (retries included), all sampled
    assert max(peaks[1:-1]) < peaks[0] * 1.15 + 15, peaks  # the last one may be sampled before its peak
    assert driver < 6  # the near-dup index: ~2 KB per kept row


@pytest.mark.parametrize("near, bound", [(True, 3000), (False, 400)])
def test_sdgen_own_memory_per_row_is_bounded(benchmark, tmp_path, tiny, near, bound):
    """sdgen's Python-side state per written row stays small: traced heap slope. The near-duplicate
    index holds a MinHash signature and band keys per kept row (~2.5 KB); without it ~250 B remain."""
    points = []

    class Sampler(NullProgress):
        rows = 0

        def update(self, rows, tokens):
            Sampler.rows += rows
            if rows and Sampler.rows % 200 == 0:
                points.append((Sampler.rows, tracemalloc.get_traced_memory()[0]))

    spec = build_spec(base_spec(generation=FAST, prompt_style="fewshot", models=[str(tiny)],
                                engine={"threads": 2, "max_num_seqs": 32}, sample_size=1400, dedup={"near": near},
                                output=str(tmp_path / "rows.jsonl")), base_dir=tmp_path)  # fmt: skip

    def run() -> None:
        tracemalloc.start()
        try:
            sdgen.generate(spec, progress=Sampler())
        finally:
            tracemalloc.stop()

    benchmark.pedantic(run, rounds=1, iterations=1)
    (r0, m0), (r1, m1) = points[1], points[-1]  # after warm-up
    per_row = (m1 - m0) / (r1 - r0)
    benchmark.extra_info["traced_bytes_per_row"] = round(per_row)
    assert per_row < bound, f"{per_row:.0f} traced bytes per row"
