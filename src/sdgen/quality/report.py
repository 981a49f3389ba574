"""The run report: ``<stem>.report.md`` beside the dataset, with PNG charts in ``<stem>.report/``.

A run writes ``<stem>.stats.json`` (what only the run knows: rows dropped as duplicates or
conflicts, throughput, quotas, judge verdicts); the report is rebuilt from it and the dataset, so
``sdgen report OUTPUT`` works on any finished run. Without the stats file (a dataset from
elsewhere) the duplicate and conflict rates are measured on the file itself.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdgen.errors import OutputError
from sdgen.quality.index import TextIndex, Verdict
from sdgen.quality.steps import step_titles
from sdgen.store.files import read_dataset, sidecar
from sdgen.timing import timing_text

if TYPE_CHECKING:
    import pandas as pd

_WORD = re.compile(r"\w+")


def write_stats(output: Path, stats: dict[str, Any]) -> Path:
    """Save a run's figures (``<stem>.stats.json``): what `sdgen report` reads back later."""
    path = sidecar(output, "stats", ".json")
    path.write_text(json.dumps(stats, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def build_report(output: Path) -> Path:
    """Rebuild the report of an existing dataset (``sdgen report OUTPUT``)."""
    output = Path(output)
    if not output.is_file():
        raise OutputError(f"{output}: no such dataset file")
    df = read_dataset(output)
    missing = {"text", "label"} - set(df.columns)
    if missing:
        raise OutputError(f"{output}: not a labelled dataset (no {', '.join(sorted(missing))} column)")
    stats_path = sidecar(output, "stats", ".json")
    stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.is_file() else None
    return render_report(output, df, stats)


# -- measures -----------------------------------------------------------------------------------


def counted_rows(df: pd.DataFrame) -> pd.Series:
    """Rows that count as dataset rows (flagged duplicates kept with --keep-duplicates do not)."""
    return df["duplicate"].eq("") if "duplicate" in df.columns else df["text"].notna()


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct word n-grams over all n-grams (lexical diversity; 1.0 = no n-gram repeats)."""
    grams: Counter = Counter()
    for text in texts:
        words = _WORD.findall(text.casefold())
        grams.update(zip(*(words[i:] for i in range(n))))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def scan_file(df: pd.DataFrame) -> dict[str, Counter]:
    """Duplicates and conflicts measured on the file itself, per model, in file order."""
    index = TextIndex()
    found: dict[str, Counter] = {}
    models = df["model"] if "model" in df.columns else ["?"] * len(df)
    models = list(models)
    in_conflict: set[int] = set()
    for i, (text, label, model) in enumerate(zip(df["text"], df["label"], models)):
        check = index.check(i, text, label)
        verdict = check.verdict
        found.setdefault(model, Counter())[verdict] += 1
        if verdict is Verdict.CONFLICT and check.match not in in_conflict:  # both sides count, as in a run
            in_conflict.add(check.match)
            found.setdefault(models[check.match], Counter())[Verdict.CONFLICT] += 1
        if verdict in (Verdict.UNIQUE, Verdict.CONFLICT):
            index.add(i, text, label)
        else:
            index.discard(i)
    return found


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _model_rows(df: pd.DataFrame, stats: dict | None) -> list[list[str]]:
    counted = counted_rows(df)
    models = sorted(set(df["model"])) if "model" in df.columns else ["?"]
    scanned = scan_file(df[counted]) if stats is None else {}
    rows = []
    for model in models:
        sub = df[counted & (df["model"] == model)] if "model" in df.columns else df[counted]
        texts = sub["text"].tolist()
        words = [len(_WORD.findall(t)) for t in texts]
        agree = "-"
        if "agrees" in sub.columns and len(sub):
            agree = _pct(int(sub["agrees"].sum()), len(sub))
        run = (stats or {}).get("per_model", {}).get(model)
        if run is not None:
            q = run.get("quality", {})
            parsed = q.get("parsed", run["rows"])
            dup, near, conflict = q.get("exact_duplicates", 0), q.get("near_duplicates", 0), q.get("conflicts", 0)
            gen_s = max(run["seconds"] - run["load_seconds"], 1e-9)
            speed = f"{run['generated_tokens'] / gen_s:.0f} / {run['rows'] / gen_s:.2f}"
            if stats.get("judge") and model in stats["judge"]["by_model"]:
                a = stats["judge"]["by_model"][model]
                agree = _pct(a["agree"], a["total"])
        else:
            found = scanned.get(model, Counter())
            parsed = len(texts)
            dup, near, conflict = found[Verdict.EXACT], found[Verdict.NEAR], found[Verdict.CONFLICT]
            speed = "-"
        mean_words = f"{sum(words) / len(words):.1f}" if words else "-"
        rows.append([
            model, str(len(texts)), str(parsed), _pct(dup, parsed), _pct(near, parsed), _pct(conflict, parsed),
            mean_words, f"{distinct_n(texts):.3f}", agree, speed,
        ])  # fmt: skip
    return rows


# -- rendering ----------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(output: Path, df: pd.DataFrame, stats: dict | None) -> Path:
    report = sidecar(output, "report", ".md")
    charts_dir = sidecar(output, "report", "")
    charts = _charts(df[counted_rows(df)], charts_dir)
    counted = counted_rows(df)
    name = (stats or {}).get("name", output.stem)
    parts = [f"# sdgen report: {name}", "", f"Dataset: `{output.name}`, {int(counted.sum())} rows"]
    if stats is not None:
        gen_s = sum(m["seconds"] - m["load_seconds"] for m in stats["per_model"].values())
        parts[-1] += (
            f" ({stats['planned']} planned); generated {stats['generated_tokens']:,} tokens in {gen_s:.1f} s "
            f"of generation ({stats['generated_tokens'] / max(gen_s, 1e-9):.0f} tok/s), {stats['wall_time']:.1f} s wall time."
        )
        models = stats["per_model"].values()
        # stats of an sdgen older than the timing figures have neither; a run whose every row was lost has no first
        # row but still says what its tokens went on
        if stats.get("lost_tokens") or any(m.get("first_row_seconds") is not None for m in models):
            parts[-1] += f" Where it went: {timing_text(models)}."
    else:
        parts[-1] += ". No run stats beside it: duplicate and conflict rates below are measured on the file itself."
    parts += ["", "## Per model", ""]
    header = ["model", "rows", "parsed", "exact dup", "near dup", "conflicts", "mean words", "distinct-2", "agreement",
              "tok/s / rows/s"]  # fmt: skip
    parts.append(_table(header, _model_rows(df, stats)))
    if stats is not None:
        parts += ["", _notes(stats)]
    if stats and stats["quotas"]:
        rows = [
            [" x ".join(q["cell"]), str(q["quota"]), str(q["filled"]), str(max(q["quota"] - q["filled"], 0))]
            for q in stats["quotas"]
        ]
        short = sum(1 for q in stats["quotas"] if q["filled"] < q["quota"])
        parts += ["", "## Quotas (balance: exact)", "", f"{len(rows) - short} of {len(rows)} cells full.", ""]
        parts.append(_table(["cell", "quota", "filled", "short"], rows))
    if stats and stats.get("judge"):
        j = stats["judge"]
        rows = [[label, _pct(a["agree"], a["total"]), str(a["total"])] for label, a in j["by_label"].items()]
        parts += ["", f"## Judge (the generating model labels each parsed row; action: {j['action']})", ""]
        parts.append(_table(["label", "given its own label", "rows judged"], rows))
        unsure = f" ({j['unsure']} of them given their own label below min_confidence)" if j.get("unsure") else ""
        parts += ["", f"{j['requests']} judge requests shared the engine's batches; {j['rejected']} rows "
                  f"{'flagged' if j['action'] == 'flag' else 'rejected and replaced'}{unsure}."]  # fmt: skip
    if stats and stats.get("missing_note"):
        parts += ["", f"**{stats['missing_note']}.**"]
    parts += ["", "## Charts", ""] + [f"![{title}]({charts_dir.name}/{path.name})" for title, path in charts]
    report.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return report


def _notes(stats: dict) -> str:
    """Rates are over parsed rows of each model; the cost of curation against generation time."""
    models = stats["per_model"].values()
    curation = sum(m.get("quality", {}).get("seconds", 0.0) for m in models)
    gen_s = sum(m["seconds"] - m["load_seconds"] for m in models)
    extra = sum(m.get("extra_rows", 0) for m in models)
    lines = [
        "Rates are shares of each model's parsed rows; conflicts count both sides. Speed is per second of generation.",
        "",
        f"Quality steps: curation {curation:.2f} s + dataset rewrite {stats['finalize_seconds']:.2f} s = "
        f"{_pct(curation + stats['finalize_seconds'], gen_s)} of generation time; {extra} replacement rows scheduled.",
    ]
    for step, title in step_titles().items():
        dropped = _screened(stats, step)
        if dropped:
            lines.append(f"Rows {title}: {sum(dropped.values())} ({phrase_counts(dropped)}).")
    if stats.get("conflicts_file"):
        lines.append(f"Conflicting rows (both sides): `{Path(stats['conflicts_file']).name}`.")
    if stats.get("rejected_file"):
        lines.append(f"Rows the judge rejected: `{Path(stats['rejected_file']).name}`.")
    return "\n".join(lines)


def _screened(stats: dict, step: str) -> Counter:
    """How often a quality step dropped a row, per reason, over all models of a run's stats."""
    found: Counter = Counter()
    for m in stats["per_model"].values():
        quality = m.get("quality", {})
        found.update(quality.get("screened", {}).get(step, {}))
        if step == "avoided":  # stats of an sdgen before the quality steps
            found.update(quality.get("avoided_phrases", {}))
        if step == "example" and quality.get("example_copies"):
            found["example"] += quality["example_copies"]
    return found


def phrase_counts(found: Counter, top: int = 5) -> str:
    """``"please" 12, "could you" 8, ...``: the commonest first."""
    shown = [f'"{p}" {n}' for p, n in found.most_common(top)]
    return ", ".join(shown) + (", ..." if len(found) > top else "")


def _charts(df: pd.DataFrame, charts_dir: Path) -> list[tuple[str, Path]]:
    """Label x category distribution and text length per label, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if len(df):
        fig, ax = plt.subplots(figsize=(7, 4))
        if "category" in df.columns:
            df.groupby(["label", "category"]).size().unstack(fill_value=0).plot.bar(stacked=True, ax=ax)
        else:
            df["label"].value_counts().sort_index().plot.bar(ax=ax)
        ax.set_ylabel("rows")
        ax.set_title("Rows per label (x category)")
        ax.tick_params(axis="x", labelrotation=30)
        written.append(("label x category", _save(fig, charts_dir / "labels.png")))
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = sorted(set(df["label"]))
        words = [[len(_WORD.findall(t)) for t in df.loc[df["label"] == label, "text"]] for label in labels]
        ax.boxplot(words, tick_labels=labels) if _mpl_has_tick_labels() else ax.boxplot(words, labels=labels)
        ax.set_ylabel("words")
        ax.set_title("Text length per label")
        ax.tick_params(axis="x", labelrotation=30)
        written.append(("text length per label", _save(fig, charts_dir / "lengths.png")))
    return written


def _mpl_has_tick_labels() -> bool:
    import matplotlib

    return tuple(int(p) for p in matplotlib.__version__.split(".")[:2]) >= (3, 9)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path
