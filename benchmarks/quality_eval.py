"""What generated data is worth: generate N rows per model and real set, then `sdgen eval` each against real data.

    python benchmarks/quality_eval.py --models smollm2-135m-instruct,qwen2.5-coder-1.5b-instruct \\
        --sets politeness,emotion --rows 300 [--seeds 1,2] [--set '{"engine": {...}}'] [--tag NAME] \\
        [--real-examples] [--spec politeness=my-politeness.yaml]

`--real-examples` sets each set's `examples_from` to the real rows outside `sdgen eval`'s test split
(written once under --out), so the prompts never see a row the score is measured on.

Each (model, set, seed) cell prints one table row and appends a JSON line (machine, CPU class, git
commit, figures) to benchmarks/quality_history.jsonl. rows/s counts written rows per second of
generation (model load excluded).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import sdgen
from sdgen.bench.machine import git_commit, machine_info
from sdgen.quality.evaluate import evaluate

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "src" / "sdgen" / "examples"
REALDATA = HERE.parents[1] / "shared" / "realdata"
SETS = {  # spec, real file
    "politeness": (EXAMPLES / "politeness.yaml", REALDATA / "politeness.csv"),
    "emotion": (EXAMPLES / "emotion.yaml", REALDATA / "emotion_tweets.csv"),
}
HEADER = "| tag | model | set | seed | rows | F1 | ref F1 | ratio | agreement | distinct-2 | rows/s | gen s |"


def train_split(name: str, out_dir: Path) -> Path:
    """The real rows `evaluate` does not test on, as a CSV for `examples_from`."""
    from sdgen.quality.evaluate import _split, read_real

    path = out_dir / f"{name}.train.csv"
    if not path.exists():
        real = read_real(SETS[name][1], "text", "label")
        _, pool = _split(real, sorted(set(real["label"])), 0)
        pool[["text", "label"]].to_csv(path, index=False)
    return path


def run_cell(model: str, name: str, seed: int, rows: int, overrides: dict, out_dir: Path, tag: str,
             real_examples: bool = False) -> dict:  # fmt: skip
    spec_path, real = SETS[name]
    if real_examples:
        overrides = {**overrides, "examples_from": str(train_split(name, out_dir))}
    output = out_dir / f"{tag}-{name}-{model.replace('/', '_')}-s{seed}.csv"
    t0 = time.perf_counter()
    summary = sdgen.generate(spec_path, model=model, rows=rows, seed=seed, output=output, overwrite=True,
                             report=False, **overrides)  # fmt: skip
    wall = time.perf_counter() - t0
    stats = summary.per_model[model]
    gen_s = max(stats.seconds - stats.load_seconds, 1e-9)
    report = evaluate(output, real)
    return {
        "tag": tag, "model": model, "set": name, "seed": seed, "rows_asked": rows, "written": summary.written,
        "macro_f1": report.macro_f1, "reference_f1": report.reference_macro_f1, "ratio": report.ratio,
        "agreement": report.agreement, "real_agreement": report.real_agreement, "agreement_by_label": report.agreement_by_label,
        "distinct_2": report.distinct_2, "similarity": report.mean_pairwise_similarity,
        "rows_per_s": round(summary.written / gen_s, 3), "gen_s": round(gen_s, 1), "wall_s": round(wall, 1),
        "generated_tokens": summary.generated_tokens, "unparseable": summary.unparseable,
        "duplicates": summary.exact_duplicates + summary.near_duplicates, "conflicts": summary.conflicts,
        "avoided": sum(summary.avoided.values()),
        "overrides": overrides, "spec": str(spec_path),
    }  # fmt: skip


def table_row(c: dict) -> str:
    return (f"| {c['tag']} | {c['model']} | {c['set']} | {c['seed']} | {c['written']} | {c['macro_f1']:.3f} | "
            f"{c['reference_f1']:.3f} | {c['ratio']:.2f} | {c['agreement']:.1%} | {c['distinct_2']:.3f} | "
            f"{c['rows_per_s']:.2f} | {c['gen_s']:.0f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m-instruct")
    parser.add_argument("--sets", default="politeness,emotion")
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--set", dest="overrides", default="{}", help="JSON spec overrides for every cell")
    parser.add_argument("--tag", default="default")
    parser.add_argument("--real-examples", action="store_true", help="examples_from: the real rows outside the test split")
    parser.add_argument("--spec", action="append", default=[], metavar="SET=PATH",
                        help="generate SET from this spec instead of the example spec (e.g. other label descriptions)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/sdgen-quality"))
    parser.add_argument("--history", type=Path, default=HERE / "quality_history.jsonl")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    overrides = json.loads(args.overrides)
    for item in args.spec:
        name, path = item.split("=", 1)
        SETS[name] = (Path(path).resolve(), SETS[name][1])
    common = {"machine": machine_info(2), "git_commit": git_commit(HERE.parent), "run": time.strftime("%Y-%m-%dT%H:%M:%S")}
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    for model in args.models.split(","):
        for name in args.sets.split(","):
            for seed in map(int, args.seeds.split(",")):
                cell = run_cell(model, name, seed, args.rows, overrides, args.out, args.tag, args.real_examples)
                print(table_row(cell), flush=True)
                with args.history.open("a") as f:
                    f.write(json.dumps({**common, **cell}) + "\n")


if __name__ == "__main__":
    main()
