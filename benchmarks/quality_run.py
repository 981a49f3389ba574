"""Issue 5's measurement: the example spec with both built-in models mixed, curated, balanced and judged.

    python benchmarks/quality_run.py --rows 1000 --out /tmp/quality/mix.csv

Prints per model: duplicate / near-duplicate / conflict rates among parsed rows (before curation)
and in the final dataset (after, measured on the file), quota fill, the judge's agreement (flag mode), and
what the quality steps cost against generation time. The report lands beside the output.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import sdgen
from sdgen.quality.index import Verdict
from sdgen.quality.report import scan_file
from sdgen.store.files import read_dataset

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/sdgen-quality/mix.csv"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--style", default=None, help="prompt_style override (the example spec uses reasoning)")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature override (spec: 0.8)")
    args = parser.parse_args()
    models = [{"name": "smollm2-135m-instruct", "weight": 1}, {"name": "gemma3-270m", "weight": 1}]
    overrides = {"prompt_style": args.style} if args.style else {}
    if args.temperature is not None:
        generation = sdgen.load_spec(ROOT / "examples" / "customer_service.yaml").generation
        overrides["generation"] = {**generation.model_dump(), "temperature": args.temperature}
    summary = sdgen.generate(
        ROOT / "examples" / "customer_service.yaml", rows=args.rows, output=args.out, overwrite=True, threads=args.threads,
        models=models, balance="exact", judge={"action": "flag"}, **overrides,
    )  # fmt: skip
    after = scan_file(read_dataset(summary.output))
    print(f"rows: {summary.written} of {summary.planned}; report: {summary.report_file}")
    print(
        "| model | parsed | exact dup before/after | near dup before/after | conflicts before/after | kept | replacements | gen s | curation s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, q in summary.quality.items():
        stats, found = summary.per_model[name], after.get(name, Counter())
        kept = sum(found.values())
        rate = lambda n, d: f"{100 * n / d:.1f}%" if d else "-"  # noqa: E731
        print(
            f"| {name} | {q.parsed} | {rate(q.exact_duplicates, q.parsed)} / {rate(found[Verdict.EXACT], kept)} "
            f"| {rate(q.near_duplicates, q.parsed)} / {rate(found[Verdict.NEAR], kept)} "
            f"| {rate(q.conflicts, q.parsed)} / {rate(found[Verdict.CONFLICT], kept)} | {q.kept} | {stats.extra_rows} "
            f"| {stats.seconds - stats.load_seconds:.1f} | {q.seconds:.3f} |"
        )
    full = len(summary.quotas) - len(summary.shortfall)
    print(f"quotas: {full} of {len(summary.quotas)} cells full; filled {dict(summary.filled)}")
    j = summary.judge
    print(f"judge (each generating model judges its own rows): {j.overall.agree}/{j.overall.total} agree; by label "
          + ", ".join(f"{k} {100 * a.rate:.0f}%" for k, a in j.by_label.items())
          + "; by model " + ", ".join(f"{k} {100 * a.rate:.0f}%" for k, a in j.by_model.items())
          + f"; answers {dict(Counter(label for (_, label), n in j.confusion.items() for _ in range(n)))}")  # fmt: skip
    gen = sum(s.seconds - s.load_seconds for s in summary.per_model.values())
    curation = sum(q.seconds for q in summary.quality.values())
    print(f"generation {gen:.1f} s; curation {curation:.2f} s ({100 * curation / gen:.2f}%); dataset rewrite "
          f"{summary.finalize_seconds:.2f} s; quality steps total {100 * (curation + summary.finalize_seconds) / gen:.2f}%; "
          f"wall {summary.wall_time:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
