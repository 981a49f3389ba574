"""A run's dataset files: their columns, the output checks, writers by format (`sdgen.formats`), typed reads and the
one atomic rewrite."""

from __future__ import annotations

import os
from pathlib import Path

from sdgen.errors import OutputError
from sdgen.formats import BOOL_COLUMNS, FLOAT_COLUMNS, FORMATS, INT_COLUMNS, Writer, commit, format_of, suffixes
from sdgen.spec import Spec
JUDGE_COLUMNS = ["judged_label", "judge_confidence"]  # the judge's verdict on a row: in the rejected file, and flagged rows


def dataset_columns(reasoning: bool, keep_duplicates: bool = False, judge_flags: bool = False,
                    source: bool = False) -> list[str]:  # fmt: skip
    base = ["text", "label", "category", "type", "model"]
    flags = (["duplicate", "duplicate_of"] if keep_duplicates else []) + (JUDGE_COLUMNS + ["agrees"] if judge_flags else [])
    return base + (["reasoning"] if reasoning else []) + ["row", "seed"] + flags + (["source"] if source else [])


def columns_for(spec: Spec) -> list[str]:
    """The dataset columns a spec's run writes."""
    return dataset_columns(spec.wants_reasoning, spec.dedup.keep_duplicates, spec.judge_flags, spec.mix_real is not None)


def sidecar(output: Path, kind: str, suffix: str | None = None) -> Path:
    """A file beside the output: ``data.csv`` -> ``data.conflicts.csv``, ``data.stats.json``."""
    return output.with_name(f"{output.stem}.{kind}{output.suffix if suffix is None else suffix}")


def dataset_exists(path: Path) -> bool:
    """A data file, or the rows of one that is still being written (Parquet parts)."""
    fmt = FORMATS.get(path.suffix.lower())
    return path.exists() or (fmt is not None and fmt.pending(path))


def check_output(path: Path, *, overwrite: bool) -> None:
    """Fail early (before any model loads) if the output cannot or must not be written."""
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give a file path ending in {suffixes()}")
    if path.suffix.lower() not in FORMATS:
        raise OutputError(f"{path}: unsupported output format; use one of {suffixes()}")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists; pass --overwrite to replace it or choose another --output")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output dir {parent}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output dir {parent} is not writable")


def open_writer(path: Path, columns: list[str], *, overwrite: bool = False, append: bool = False) -> Writer:
    """A writer for ``path``; ``append`` continues a file (and its Parquet parts) that a resumed run left."""
    if not append:
        check_output(path, overwrite=overwrite)
        format_of(path).discard(path)  # what an overwritten run left pending
    try:
        return format_of(path).writer(path, columns, append)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None


def read_dataset(path: Path, columns: list[str] | None = None):
    """A dataset file written by sdgen as a DataFrame: text columns as str (no NaN), integer ids as Int64, the
    judge's confidence as float.

    ``columns`` names the columns of a file that may hold no rows yet (an empty JSONL has no header).
    """
    import pandas as pd

    fmt = format_of(path)
    empty = pd.DataFrame({c: pd.Series(dtype="Int64" if c in INT_COLUMNS else object) for c in columns or []})
    if columns is not None and path.is_file() and path.stat().st_size == 0:
        return empty
    try:
        df = fmt.read(path)
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None
    if columns is not None and df.columns.empty:  # nothing written yet
        return empty
    for column in df.columns:
        if column in INT_COLUMNS:
            df[column] = pd.to_numeric(df[column].replace("", None), errors="raise").astype("Int64")
        elif column in BOOL_COLUMNS:
            df[column] = df[column].map(lambda v: v if isinstance(v, bool) else str(v).lower() == "true")
        elif column in FLOAT_COLUMNS:
            df[column] = pd.to_numeric(df[column].replace("", None), errors="raise").astype(float)
        else:
            df[column] = df[column].fillna("").astype(str)
    return df


def replace_dataset(df, path: Path) -> None:
    """Write ``df`` to ``path`` atomically: a synced temp file renamed over the old one (a crash keeps one or the other)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with format_of(path).writer(tmp, list(df.columns)) as writer:
        writer.write(df.astype(object).where(df.notna(), None).to_dict("records"))  # synced by the writer
    commit(tmp, path, synced=True)
