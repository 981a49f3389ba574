"""Dataset writers: CSV, JSONL and Parquet chosen by extension, appended and fsynced per batch."""

from __future__ import annotations

import csv
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from sdgen.errors import OutputError

INT_COLUMNS = frozenset({"row", "seed", "duplicate_of", "conflict_with"})
BOOL_COLUMNS = frozenset({"agrees"})


def dataset_columns(reasoning: bool, keep_duplicates: bool = False) -> list[str]:
    base = ["text", "label", "category", "type", "model"]
    flags = ["duplicate", "duplicate_of"] if keep_duplicates else []
    return base + (["reasoning"] if reasoning else []) + ["row", "seed"] + flags


class Writer(ABC):
    """Appends batches of rows (dicts keyed by column) to one output file."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = path
        self.columns = columns
        self.rows_written = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows and make them durable before returning."""
        if rows:
            self._write(rows)
            self.rows_written += len(rows)

    @abstractmethod
    def _write(self, rows: list[dict[str, Any]]) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TextWriter(Writer):
    def __init__(self, path: Path, columns: list[str]) -> None:
        super().__init__(path, columns)
        self._file = path.open("w", encoding="utf-8", newline="")

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._sync()
            self._file.close()


class CsvWriter(_TextWriter):
    def __init__(self, path: Path, columns: list[str]) -> None:
        super().__init__(path, columns)
        self._csv = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore")
        self._csv.writeheader()
        self._sync()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        self._csv.writerows(rows)
        self._sync()


class JsonlWriter(_TextWriter):
    def _write(self, rows: list[dict[str, Any]]) -> None:
        cols = self.columns
        self._file.write("".join(json.dumps({c: r.get(c) for c in cols}, ensure_ascii=False) + "\n" for r in rows))
        self._sync()


class ParquetWriter(Writer):
    """One row group per batch; the footer is written on close."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__(path, columns)
        self._pa = pa
        fields = [pa.field(c, _arrow_type(pa, c)) for c in columns]
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(str(path), self._schema)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        data = {c: [r.get(c) for r in rows] for c in self.columns}
        self._writer.write_table(self._pa.Table.from_pydict(data, schema=self._schema))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _arrow_type(pa, column: str):
    return pa.int64() if column in INT_COLUMNS else pa.bool_() if column in BOOL_COLUMNS else pa.string()


WRITERS: dict[str, type[Writer]] = {".csv": CsvWriter, ".jsonl": JsonlWriter, ".parquet": ParquetWriter}


def check_output(path: Path, *, overwrite: bool) -> None:
    """Fail early (before any model loads) if the output cannot or must not be written."""
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give a file path ending in {', '.join(WRITERS)}")
    if path.suffix.lower() not in WRITERS:
        raise OutputError(f"{path}: unsupported output format; use one of {', '.join(WRITERS)}")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists; pass --overwrite to replace it or choose another --output")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output dir {parent}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output dir {parent} is not writable")


def open_writer(path: Path, columns: list[str], *, overwrite: bool = False) -> Writer:
    check_output(path, overwrite=overwrite)
    try:
        return WRITERS[path.suffix.lower()](path, columns)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None


def read_dataset(path: Path, columns: list[str] | None = None):
    """A dataset file written by sdgen as a DataFrame: text columns as str (no NaN), integer ids as Int64.

    ``columns`` names the columns of a file that may hold no rows yet (an empty JSONL has no header).
    """
    import pandas as pd

    suffix = path.suffix.lower()
    if columns is not None and path.stat().st_size == 0:
        return pd.DataFrame({c: pd.Series(dtype="Int64" if c in INT_COLUMNS else object) for c in columns})
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix == ".jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            raise OutputError(f"{path}: unsupported format; use one of {', '.join(WRITERS)}")
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None
    for column in df.columns:
        if column in INT_COLUMNS:
            df[column] = pd.to_numeric(df[column].replace("", None), errors="raise").astype("Int64")
        elif column in BOOL_COLUMNS:
            df[column] = df[column].map(lambda v: v if isinstance(v, bool) else str(v).lower() == "true")
        else:
            df[column] = df[column].fillna("").astype(str)
    return df


def replace_dataset(df, path: Path) -> None:
    """Write ``df`` to ``path`` atomically: a synced temp file renamed over the old one (a crash keeps one or the other)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with WRITERS[path.suffix.lower()](tmp, list(df.columns)) as writer:
        writer.write(df.astype(object).where(df.notna(), None).to_dict("records"))
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
