"""The end of a run: move the earlier sides of conflicts out, rewrite the dataset once, count quotas, report."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from sdgen.plan import cell_of
from sdgen.quality.curate import Curator
from sdgen.quality.report import counted_rows, render_report, write_stats
from sdgen.run.state import Sidecars
from sdgen.run.summary import Summary
from sdgen.spec import Spec
from sdgen.store.files import columns_for, read_dataset, replace_dataset


def finish_dataset(spec: Spec, summary: Summary, curator: Curator):
    """Move the earlier sides of conflicts out (one atomic rewrite of the dataset).

    Returns the final dataset as a DataFrame (the report reads it), or None when nothing needed a rewrite.
    """
    t0 = time.perf_counter()
    if not curator.pulled:
        return None
    sidecars = Sidecars.of(summary.output)
    df = read_dataset(summary.output, columns_for(spec))
    pulled = df["row"].isin(list(curator.pulled))
    earlier = df[pulled].assign(conflict_with=df.loc[pulled, "row"].map(curator.pulled).astype("Int64"))
    append_rows(sidecars.conflicts, earlier)
    if spec.dedup.conflicts == "separate":
        df = df[~pulled].reset_index(drop=True)
    replace_dataset(df, summary.output)
    summary.written = len(df)
    summary.finalize_seconds = time.perf_counter() - t0
    return df


def mix_in_real(spec: Spec, summary: Summary, df, real):
    """With ``mix_real``: the real rows (``real``, a DataFrame of text and label) appended to the dataset with
    ``source`` real, ids -1, -2, ... (one atomic rewrite; a dataset that already holds them is left alone, so a
    resumed run never adds them twice). Returns the generated rows (what the report and quotas count)."""
    import pandas as pd

    if df is None:
        df = read_dataset(summary.output, columns_for(spec))
    generated = df[df["source"] != "real"].assign(source="generated")
    if (df["source"] == "real").any():
        summary.real_rows = int((df["source"] == "real").sum())
        return generated.reset_index(drop=True)
    rows = pd.DataFrame({"text": real["text"], "label": real["label"], "source": "real",
                         "row": pd.array([-(i + 1) for i in range(len(real))], dtype="Int64")})  # fmt: skip
    mixed = pd.concat([generated, rows], ignore_index=True)[list(df.columns)]
    for column in mixed.columns:  # the generated-only columns are empty on real rows
        if column not in ("row", "seed"):
            mixed[column] = mixed[column].fillna("")
    replace_dataset(mixed, summary.output)
    summary.real_rows = len(rows)
    return generated.reset_index(drop=True)


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
        df = read_dataset(summary.output, columns_for(spec))
    counted = counted_rows(df)
    cells = zip(df.loc[counted, "label"], df.loc[counted, "category"])
    summary.filled = dict(Counter(cell_of(spec, label, category) for label, category in cells))


def write_report(spec: Spec, summary: Summary, df) -> Path:
    """Save the stats file and write the report (rebuilt from both by `sdgen report`)."""
    if df is None:
        df = read_dataset(summary.output, columns_for(spec))
    stats = summary.stats(spec)
    write_stats(summary.output, stats)
    return render_report(summary.output, df, stats)
