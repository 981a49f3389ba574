"""File formats, one entry each: how a dataset is written (appended and fsynced per batch), read back, repaired
after a crash tore its last record, and finalized. `FORMATS` is the one registry: the spec's output check, the
writers, the readers of datasets and real data, resume and the CLI help all read it, so a new format is one
`Format` entry. Below every other layer (it needs only `sdgen.errors`).
"""

from __future__ import annotations

import csv
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sdgen.errors import OutputError

INT_COLUMNS = frozenset({"row", "seed", "duplicate_of", "conflict_with"})
BOOL_COLUMNS = frozenset({"agrees"})
FLOAT_COLUMNS = frozenset({"judge_confidence"})


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


def parts_dir(path: Path) -> Path:
    return path.with_name(f"{path.name}.parts")


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


# -- torn tails ----------------------------------------------------------------------------------


def _cut_torn_tail(path: Path, complete_prefix: Callable[[bytes], int]) -> int:
    """Cut a torn last record off a text file (a crash mid-append); return the bytes removed."""
    if not path.is_file():
        return 0
    data = path.read_bytes()
    keep = complete_prefix(data)
    if keep < len(data):
        with path.open("r+b") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    return len(data) - keep


def _lines(data: bytes):
    """(line, end offset) for each newline-terminated or final line of ``data``."""
    start = 0
    while start < len(data):
        nl = data.find(b"\n", start)
        end = len(data) if nl < 0 else nl + 1
        yield data[start:end], end
        start = end


def _complete_lines_prefix(data: bytes) -> int:
    """Bytes of the leading JSONL lines that end with a newline and parse."""
    good = 0
    for line, end in _lines(data):
        if not line.endswith(b"\n"):
            break
        try:
            json.loads(line)
        except ValueError:
            break
        good = end
    return good


def _complete_csv_prefix(data: bytes) -> int:
    """Bytes of the leading complete CSV records: each ends with a newline outside quotes and has every column."""
    consumed = 0
    torn = False

    def feed():
        nonlocal consumed, torn
        for line, end in _lines(data):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:  # a multi-byte character cut by the crash
                torn = True
                return
            consumed = end
            yield text

    good, width = 0, None
    try:
        for record in csv.reader(feed()):
            width = len(record) if width is None else width
            if torn or len(record) != width or not data[:consumed].endswith(b"\n"):
                break
            good = consumed
    except csv.Error:
        pass
    return good


# -- readers: the file as strings, as written -----------------------------------------------------


def _read_csv(path: Path):
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _read_jsonl(path: Path):
    import pandas as pd

    return pd.read_json(path, lines=True, dtype=False)


def _read_parquet(path: Path):
    import pandas as pd

    table = _read_parquet_table(path)
    return table.to_pandas() if table is not None else pd.DataFrame()


def _discard_parts(path: Path) -> None:
    import shutil

    if parts_dir(path).is_dir():
        shutil.rmtree(parts_dir(path))


# -- the registry -------------------------------------------------------------------------------------


def _nothing(path: Path) -> None:
    return None


@dataclass(frozen=True)
class Format:
    """One file format: everything format-specific a run does with a dataset."""

    suffix: str
    writer: type[Writer]  # appends batches, each durable before write() returns; close() finalizes the file
    read: Callable[[Path], Any]  # path -> DataFrame of the rows written so far (pending Parquet parts included)
    repair_tail: Callable[[Path], int] = lambda path: 0  # cut a record a crash tore; bytes removed
    pending: Callable[[Path], bool] = lambda path: False  # rows waiting outside the file itself (Parquet parts)
    discard: Callable[[Path], None] = _nothing  # drop what an overwritten run left pending

    def exists(self, path: Path) -> bool:
        """The file, or the rows of one still being written."""
        return path.exists() or self.pending(path)


FORMATS: dict[str, Format] = {
    ".csv": Format(".csv", CsvWriter, _read_csv, lambda p: _cut_torn_tail(p, _complete_csv_prefix)),
    ".jsonl": Format(".jsonl", JsonlWriter, _read_jsonl, lambda p: _cut_torn_tail(p, _complete_lines_prefix)),
    ".parquet": Format(".parquet", ParquetWriter, _read_parquet, pending=lambda p: parts_dir(p).is_dir(),
                       discard=_discard_parts),
}  # fmt: skip


def suffixes() -> str:
    """The registered suffixes, for messages and help texts: ".csv, .jsonl, .parquet"."""
    return ", ".join(FORMATS)


def format_of(path: Path) -> Format:
    """The format of ``path`` by its extension, or an OutputError that lists the ones there are."""
    found = FORMATS.get(Path(path).suffix.lower())
    if found is None:
        raise OutputError(f"{path}: unsupported format; use one of {suffixes()}")
    return found
