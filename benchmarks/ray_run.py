"""Rows/s of one spec on one engine in-process vs Ray workers on local loopback clusters (same total threads).

    python benchmarks/ray_run.py --rows 256 [--model smollm2-135m-instruct] [--style fewshot]

Runs, one after another (never two engines at once): the local engine with all threads (in its worker
process, the default, and in the sdgen process itself); Ray with one
worker holding all threads (the cost of the Ray layer); Ray with one worker per node on two nodes
(127.0.0.2 and 127.0.0.3), the threads split between them. Each is a `sdgen generate` process; rows/s
counts generation only (model loads and Ray start-up are reported apart).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sdgen.bench import EXAMPLE_SPEC
from sdgen.testing import local_ray_cluster


def run(spec: Path, out: Path, rows: int, model: str | None, ray: str | None, threads: int) -> dict:
    cmd = [sys.executable, "-m", "sdgen.cli", "generate", str(spec), "-n", str(rows), "-o", str(out), "--overwrite",
           "--quiet", "--threads", str(threads), *(["-m", model] if model else []), *(["--ray", ray] if ray else [])]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    stats = json.loads(out.with_name(f"{out.stem}.stats.json").read_text())
    (m,) = stats["per_model"].values()
    gen = m["seconds"] - m["load_seconds"]
    return {"rows": stats["written"], "tokens": stats["generated_tokens"], "gen_s": gen, "load_s": m["load_seconds"],
            "wall_s": wall, "rows_s": stats["written"] / gen, "tok_s": stats["generated_tokens"] / gen}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--model", default=None)
    parser.add_argument("--style", default="fewshot")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = tmp / "spec.yaml"
        spec.write_text(yaml.safe_dump({**yaml.safe_load(EXAMPLE_SPEC.read_text()), "prompt_style": args.style}))
        common = (spec, tmp / "out.jsonl", args.rows, args.model)
        results["local, 1 engine"] = run(*common, None, args.threads)
        in_process = tmp / "in-process.yaml"
        in_process.write_text(yaml.safe_dump({**yaml.safe_load(spec.read_text()), "engine": {"process": False}}))
        results["local, 1 engine in-process"] = run(in_process, *common[1:], None, args.threads)
        half = max(args.threads // 2, 1)
        layouts = {f"ray, 1 worker x {args.threads} threads": [("127.0.0.2", args.threads)],
                   f"ray, 2 nodes x 1 worker x {half} threads": [("127.0.0.2", half), ("127.0.0.3", half)]}  # fmt: skip
        for name, nodes in layouts.items():
            logs = tmp / name.replace(" ", "_")
            logs.mkdir()
            t0 = time.perf_counter()
            with local_ray_cluster(nodes, logs) as address:
                started = time.perf_counter() - t0
                results[name] = run(*common, address, args.threads) | {"cluster_start_s": started}
    base = results["local, 1 engine"]["rows_s"]
    print(f"{'run':<36} {'rows':>5} {'rows/s':>7} {'tok/s':>7} {'x local':>7} {'load s':>7} {'wall s':>7}")
    for name, r in results.items():
        print(f"{name:<36} {r['rows']:>5} {r['rows_s']:>7.2f} {r['tok_s']:>7.0f} {r['rows_s'] / base:>7.2f} "
              f"{r['load_s']:>7.1f} {r['wall_s']:>7.1f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
