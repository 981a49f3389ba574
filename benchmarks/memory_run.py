"""RSS of a long `sdgen generate` run against the rows it has written (is memory flat?).

    python benchmarks/memory_run.py --rows 10000 [--spec SPEC] [--model M] [--csv samples.csv]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from sdgen.bench import EXAMPLE_SPEC
from sdgen.bench.memory import rss_growth_mb_per_1k_rows, sample_generate, worker_peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=EXAMPLE_SPEC)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--csv", type=Path, default=None, help="write the samples here")
    args = parser.parse_args()
    extra = ["--threads", str(args.threads)] + (["-m", args.model] if args.model else [])
    with tempfile.TemporaryDirectory() as tmp:
        samples = sample_generate(args.spec, Path(tmp) / "rows.jsonl", rows=args.rows, every_s=args.every, extra=extra)
    if args.csv:
        args.csv.write_text("seconds,rows,driver_mb,worker_mb,worker_pid\n" + "".join(
            f"{s.seconds},{s.rows},{s.driver_mb},{s.worker_mb},{s.worker_pid or ''}\n" for s in samples))  # fmt: skip
    for frac in (0.1, 0.25, 0.5, 0.75, 1.0):
        s = next((s for s in samples if s.rows >= frac * samples[-1].rows), samples[-1])
        print(f"{s.rows:>7} rows  {s.seconds:>8.1f} s  driver {s.driver_mb:>6.1f} MB  worker {s.worker_mb:>6.1f} MB")
    peaks = " ".join(f"{p:.0f}" for p in worker_peaks(samples))
    print(f"peak RSS {max(s.rss_mb for s in samples):.1f} MB; worker peaks per process: {peaks} MB")
    for which in ("rss_mb", "driver_mb", "worker_mb"):
        print(f"growth over the second half, {which}: {rss_growth_mb_per_1k_rows(samples, which):+.2f} MB per 1k rows")


if __name__ == "__main__":
    main()
