"""SIGKILL real `sdgen generate` runs at random moments, resume them, and compare with an uninterrupted run.

    python benchmarks/kill_resume.py --runs 10 [--rows 400] [--format jsonl] [--model PATH] [--seed 0]

The model defaults to the tests' tiny random-init GGUF (built here, in seconds); fp32 inference so that
rows do not depend on which rows share a batch (see README, "Exactness"). For each run: kill after a
random 10-90% of the reference's wall time, 1-3 times, then `--resume` to the end. Prints one line per
run: kills (rows on disk at each), whether the final rows equal the reference's (ids and texts), and
whether every file parses.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sdgen.bench import EXAMPLE_SPEC
from sdgen.store.files import read_dataset


def _cmd(spec: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sdgen.cli", "generate", str(spec), "--quiet", *extra]


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--format", default="jsonl", choices=["csv", "jsonl", "parquet"])
    parser.add_argument("--model", default=None, help="Default: a tiny random-init GGUF built here.")
    parser.add_argument("--seed", type=int, default=0, help="Seeds the kill moments.")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from sdgen.testing import build_tiny_gguf

            model = str(build_tiny_gguf(tmp / "tiny.gguf"))
        data = yaml.safe_load(EXAMPLE_SPEC.read_text()) | {"models": [model], "sample_size": args.rows,
                                                             "prompt_style": "fewshot"}  # fmt: skip
        data["generation"] = {"max_new_tokens": 40}
        data["engine"] = {"threads": 2, "max_num_seqs": 16, "dtype": "fp32"}
        ref_spec = tmp / "ref.yaml"
        ref_spec.write_text(yaml.safe_dump(data | {"output": str(tmp / f"ref.{args.format}")}))
        t0 = time.perf_counter()
        subprocess.run(_cmd(ref_spec), check=True, capture_output=True)
        ref_s = time.perf_counter() - t0
        ref = read_dataset(tmp / f"ref.{args.format}").sort_values("row").reset_index(drop=True)
        equal_runs = 0
        for i in range(args.runs):
            out = tmp / f"run{i}.{args.format}"
            spec = tmp / f"run{i}.yaml"
            spec.write_text(yaml.safe_dump(data | {"output": str(out)}))
            kills, resume = [], False
            for _ in range(rng.randint(1, 3)):
                proc = subprocess.Popen(_cmd(spec, *(["--resume"] if resume else [])), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)  # fmt: skip
                time.sleep(rng.uniform(0.1, 0.9) * ref_s)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills.append(_lines(out) if args.format != "parquet" else -1)
                resume = True
            done = subprocess.run(_cmd(spec, "--resume"), capture_output=True, text=True, check=False)
            if done.returncode != 0 and "nothing to resume" not in done.stderr and "finished" not in done.stderr:
                print(f"run {i}: resume failed: {done.stderr.strip()}")
                continue
            got = read_dataset(out).sort_values("row").reset_index(drop=True)
            same_ids = got["row"].tolist() == ref["row"].tolist()
            same = same_ids and got["text"].tolist() == ref["text"].tolist()
            equal_runs += same
            print(f"run {i}: {len(kills)} kill(s), rows on disk at each: {kills}; final {len(got)} rows, "
                  f"ids {'equal' if same_ids else 'DIFFER'}, texts {'equal' if same else 'DIFFER'} to the reference")  # fmt: skip
        print(f"{equal_runs}/{args.runs} runs equal to the uninterrupted run ({len(ref)} rows, reference {ref_s:.1f} s)")


if __name__ == "__main__":
    main()
