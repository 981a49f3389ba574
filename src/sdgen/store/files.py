"""Dataset writers: CSV, JSONL and Parquet chosen by extension, appended and fsynced per batch."""

from __future__ import annotations

import csv
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from sdgen.errors import OutputError
from sdgen.spec import Spec

INT_COLUMNS = frozenset({"row", "seed", "duplicate_of", "conflict_with"})
BOOL_COLUMNS = frozenset({"agrees"})
FLOAT_COLUMNS = frozenset({"judge_confidence"})
JUDGE_COLUMNS = ["judged_label", "judge_confidence"]  # the judge's verdict on a row: in the rejected file, and flagged rows


def dataset_columns(reasoning: bool, keep_duplicates: bool = False, judge_flags: bool = False,
                    source: bool = False) -> list[str]:  # fmt: skip
    base = ["text", "label", "category", "type", "model"]
    flags = (["duplicate", "duplicate_of"] if keep_duplicates else []) + (JUDGE_COLUMNS + ["agrees"] if judge_flags else [])
    return base + (["reasoning"] if reasoning else []) + ["row", "seed"] + flags + (["source"] if source else [])


def columns_for(spec: Spec) -> list[str]:
    """The dataset columns a spec's run writes."""
    return dataset_columns(spec.wants_reasoning, spec.dedup.keep_duplicates, spec.judge_flags, spec.mix_real is not None)


class Writer(ABC):
    """Appends batches of rows (dicts keyed by column) to one output file; ``append`` continues an existing one."""

    def __init__(self, path: Path, columns: list[str], append: bool = False) -> None:
        self.path = path
        self.columns = columns
        self.append = append
        self.rows_written = 0
        self.failed: OutputError | None = None  # after a failed write nothing more is written (no batch twice)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows and make them durable before returning; a disk error becomes an OutputError."""
        if self.failed is not None:
            raise self.failed
        if rows:
            try:
                self._write(rows)
            except OSError as exc:
                self.failed = write_error(self.path, exc, self.rows_written)
                raise self.failed from None
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
    def __init__(self, path: Path, columns: list[str], append: bool = False) -> None:
        super().__init__(path, columns, append)
        self._file = path.open("a" if append else "w", encoding="utf-8", newline="")

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            try:
                if self.failed is None:
                    self._sync()
            except OSError as exc:
                raise write_error(self.path, exc, self.rows_written) from None
            finally:
                try:
                    self._file.close()
                except OSError:  # the same failure again while dropping the unwritten buffer
                    pass


class CsvWriter(_TextWriter):
    def __init__(self, path: Path, columns: list[str], append: bool = False) -> None:
        super().__init__(path, columns, append)
        self._csv = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore")
        if self._file.tell() == 0:
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
    """Each batch is its own small Parquet file in ``<name>.parts/`` (written to a temp name, synced, renamed),
    so a crash never leaves a file without its footer; ``close`` merges everything into ``path``.

    A crash between the merge's rename and the parts' removal leaves rows in both; readers drop
    repeated row ids (``read_dataset``), so that state reads correctly and the next merge clears it.
    """

    def __init__(self, path: Path, columns: list[str], append: bool = False) -> None:
        import pyarrow as pa

        super().__init__(path, columns, append)
        self._pa = pa
        self._schema = pa.schema([pa.field(c, _arrow_type(pa, c)) for c in columns])
        self.parts = parts_dir(path)
        self.parts.mkdir(exist_ok=True)
        self._next = 1 + max((int(p.stem.split("-")[1]) for p in self.parts.glob("part-*.parquet")), default=-1)
        self._closed = False

    def _write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow.parquet as pq

        data = {c: [r.get(c) for r in rows] for c in self.columns}
        part = self.parts / f"part-{self._next:06d}.parquet"
        tmp = part.with_name(f".{part.name}.tmp")
        pq.write_table(self._pa.Table.from_pydict(data, schema=self._schema), tmp)
        commit(tmp, part)
        self._next += 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                merge_parquet(self.path, self._schema)
            except OSError as exc:  # the parts are intact; the next run's merge folds them in
                raise write_error(self.path, exc, self.rows_written) from None


def sidecar(output: Path, kind: str, suffix: str | None = None) -> Path:
    """A file beside the output: ``data.csv`` -> ``data.conflicts.csv``, ``data.stats.json``."""
    return output.with_name(f"{output.stem}.{kind}{output.suffix if suffix is None else suffix}")


def parts_dir(path: Path) -> Path:
    return path.with_name(f"{path.name}.parts")


def dataset_exists(path: Path) -> bool:
    """A data file, or the Parquet parts of one that is still being written."""
    return path.exists() or parts_dir(path).is_dir()


def merge_parquet(path: Path, schema=None) -> None:
    """Fold ``<name>.parts/`` into ``path`` (atomically), then remove the parts."""
    import shutil

    import pyarrow.parquet as pq

    parts = parts_dir(path)
    if not parts.is_dir():
        return
    table = _read_parquet_table(path)
    if table is None:
        table = schema.empty_table() if schema is not None else None
    if table is not None:
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp)
        commit(tmp, path)
    shutil.rmtree(parts)


def _read_parquet_table(path: Path):
    """The final file plus any parts, each row id once; None when there is nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(path)] if path.is_file() else []
    parts = parts_dir(path)
    if parts.is_dir():
        for part in sorted(parts.glob("part-*.parquet")):
            try:
                tables.append(pq.read_table(part))
            except (OSError, pa.ArrowInvalid):  # cannot happen with renamed parts; be safe with stray files
                continue
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="default")
    if "row" in table.column_names and table.num_rows:
        seen: set = set()
        keep = [i for i, r in enumerate(table["row"].to_pylist()) if not (r in seen or seen.add(r))]
        if len(keep) < table.num_rows:
            table = table.take(pa.array(keep))
    return table


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's entry list is what makes a rename durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, path: Path, *, synced: bool = False) -> None:
    """Rename a finished temp file over ``path`` durably: a crash leaves the old file or the new one, whole."""
    if not synced:
        fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


def write_error(path: Path, exc: OSError, rows_written: int | None = None) -> OutputError:
    """One line: what failed, what is safe, what to do next."""
    reason = exc.strerror or str(exc)
    safe = "the rows written before" if rows_written is None else f"the {rows_written} rows written before"
    return OutputError(
        f"cannot write {path}: {reason}; {safe} are intact (a torn last line is repaired on resume): "
        "fix that, then rerun with --resume"
    )


def _arrow_type(pa, column: str):
    if column in FLOAT_COLUMNS:
        return pa.float64()
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


def open_writer(path: Path, columns: list[str], *, overwrite: bool = False, append: bool = False) -> Writer:
    """A writer for ``path``; ``append`` continues a file (and its Parquet parts) that a resumed run left."""
    if not append:
        check_output(path, overwrite=overwrite)
        if path.suffix.lower() == ".parquet" and parts_dir(path).is_dir():
            import shutil

            shutil.rmtree(parts_dir(path))  # parts of an overwritten run
    try:
        return WRITERS[path.suffix.lower()](path, columns, append)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None


def read_dataset(path: Path, columns: list[str] | None = None):
    """A dataset file written by sdgen as a DataFrame: text columns as str (no NaN), integer ids as Int64, the
    judge's confidence as float.

    ``columns`` names the columns of a file that may hold no rows yet (an empty JSONL has no header).
    """
    import pandas as pd

    suffix = path.suffix.lower()
    if columns is not None and path.is_file() and path.stat().st_size == 0:
        return pd.DataFrame({c: pd.Series(dtype="Int64" if c in INT_COLUMNS else object) for c in columns})
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix == ".jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
        elif suffix == ".parquet":
            table = _read_parquet_table(path)
            df = table.to_pandas() if table is not None else pd.DataFrame({c: [] for c in columns or []})
        else:
            raise OutputError(f"{path}: unsupported format; use one of {', '.join(WRITERS)}")
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None
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
    with WRITERS[path.suffix.lower()](tmp, list(df.columns)) as writer:
        writer.write(df.astype(object).where(df.notna(), None).to_dict("records"))  # synced by the writer
    commit(tmp, path, synced=True)
