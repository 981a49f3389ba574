"""The end of a run: move the earlier sides of conflicts out, verify labels, rewrite the dataset once, report."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Callable

from sdgen.hosting import start_engine
from sdgen.models.registry import ResolvedModel
from sdgen.plan import cell_of
from sdgen.progress import ProgressListener
from sdgen.quality.curate import Curator
from sdgen.quality.report import counted_rows, render_report, write_stats
from sdgen.quality.verify import Verification, classify
from sdgen.run.state import Sidecars
from sdgen.run.summary import Summary
from sdgen.spec import Spec
from sdgen.store.files import dataset_columns, read_dataset, replace_dataset


def finish_dataset(spec: Spec, summary: Summary, curator: Curator, verifier: ResolvedModel | None, backend: str,
                   progress: ProgressListener, between: Callable[[], None]):  # fmt: skip
    """Returns the final dataset as a DataFrame (the report reads it), or None when nothing needed a rewrite."""
    t0 = time.perf_counter()
    if not curator.pulled and verifier is None:
        return None
    sidecars = Sidecars.of(summary.output)
    df = read_dataset(summary.output, dataset_columns(spec.wants_reasoning, spec.dedup.keep_duplicates))
    if curator.pulled:
        pulled = df["row"].isin(list(curator.pulled))
        earlier = df[pulled].assign(conflict_with=df.loc[pulled, "row"].map(curator.pulled).astype("Int64"))
        append_rows(sidecars.conflicts, earlier)
        if spec.dedup.conflicts == "separate":
            df = df[~pulled].reset_index(drop=True)
    if verifier is not None:
        df = _verify(spec, summary, df, verifier, backend, sidecars.rejected, progress, between)
    replace_dataset(df, summary.output)
    summary.written = len(df)
    verifying = summary.verification.seconds + summary.verification.load_seconds if summary.verification else 0.0
    summary.finalize_seconds = time.perf_counter() - t0 - verifying
    return df


def _verify(spec: Spec, summary: Summary, df, verifier: ResolvedModel, backend: str, rejected_path: Path,
            progress: ProgressListener, between: Callable[[], None]):  # fmt: skip
    verification = Verification(model=spec.verify.model, action=spec.verify.action)
    summary.verification = verification
    t0 = time.perf_counter()
    with start_engine(backend, verifier, spec.engine, ray=spec.ray) as engine:
        verification.load_seconds = time.perf_counter() - t0
        progress.start(len(df), f"verify · {spec.verify.model}", new=True)
        verified = classify(spec, engine, df["text"].tolist(), verification, progress, between)
    df = df.assign(verified_label=verified, agrees=[v == label for v, label in zip(verified, df["label"])])
    counted = counted_rows(df)  # flagged duplicates aside
    for label, model, answer in df.loc[counted, ["label", "model", "verified_label"]].itertuples(index=False):
        verification.record(label, model, answer)
    if spec.verify.action == "drop":
        rejected = df[~df["agrees"]]
        if len(rejected):
            append_rows(rejected_path, rejected)
            summary.rejected_file = rejected_path
        df = df[df["agrees"]].reset_index(drop=True)
    return df


def append_rows(path: Path, df) -> None:
    """Append DataFrame rows to a sidecar file (created on first use); rows already there are not repeated."""
    import pandas as pd

    if path.exists():
        existing = read_dataset(path)
        df = pd.concat([existing, df[~df["row"].isin(existing["row"])]], ignore_index=True)
    replace_dataset(df, path)


def count_filled(spec: Spec, summary: Summary, df) -> None:
    """Rows per quota cell in the final dataset (``df``, or the file when the run did not rewrite it)."""
    if not summary.quotas:
        return
    if df is None:
        df = read_dataset(summary.output, dataset_columns(spec.wants_reasoning, spec.dedup.keep_duplicates))
    counted = counted_rows(df)
    cells = zip(df.loc[counted, "label"], df.loc[counted, "category"])
    summary.filled = dict(Counter(cell_of(spec, label, category) for label, category in cells))


def write_report(spec: Spec, summary: Summary, df) -> Path:
    """Save the stats file and write the report (rebuilt from both by `sdgen report`)."""
    if df is None:
        df = read_dataset(summary.output, dataset_columns(spec.wants_reasoning, spec.dedup.keep_duplicates))
    stats = summary.stats(spec)
    write_stats(summary.output, stats)
    return render_report(summary.output, df, stats)
