"""Online curation: every parsed row is checked against the rows kept so far before it reaches the dataset.

Exact and near duplicates under the same label are dropped (or written flagged with
``keep_duplicates``); a text (near-)equal to one kept under another label is a cross-label
conflict: the new row goes to the conflicts file, and so does the earlier one, which is moved
out of the dataset when the run ends (it was already written). Every loss frees its quota cell,
so ``balance: exact`` can schedule a replacement.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sdgen.plan import Cell, cell_of
from sdgen.quality import TextIndex, Verdict
from sdgen.spec import Spec


@dataclass
class QualityCounts:
    """Per-model counts of what curation found (rates are over parsed rows)."""

    parsed: int = 0
    kept: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    conflicts: int = 0  # rows of this model set aside as one side of a conflict
    seconds: float = 0.0  # time spent checking and indexing


def sidecar(output: Path, kind: str, suffix: str | None = None) -> Path:
    """A file beside the output: ``data.csv`` -> ``data.conflicts.csv``, ``data.stats.json``."""
    return output.with_name(f"{output.stem}.{kind}{output.suffix if suffix is None else suffix}")


class RowBuffer:
    """Buffers rows and appends them in batches to a writer opened on first use."""

    def __init__(self, open_writer: Callable[[], Any], batch_size: int) -> None:
        self._open = open_writer
        self.writer = None
        self.batch_size = batch_size
        self._rows: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        self._rows.append(record)
        if len(self._rows) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            if self.writer is None:
                self.writer = self._open()
            self.writer.write(self._rows)
            self._rows = []

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()


@dataclass
class _Kept:
    cell: Cell
    model: str


@dataclass
class Curator:
    """Decides, row by row, what is kept; counts per model and per quota cell."""

    spec: Spec
    dataset: RowBuffer
    conflicts: RowBuffer
    per_model: dict[str, QualityCounts] = field(default_factory=dict)
    cells: Counter = field(default_factory=Counter)  # rows counting toward each quota cell
    pulled: dict[int, int] = field(default_factory=dict)  # earlier kept row -> the row it conflicts with

    def __post_init__(self) -> None:
        options = self.spec.dedup
        self.index = None
        if options.enabled:
            self.index = TextIndex(
                near=options.near,
                threshold=options.threshold,
                shingle_size=options.shingle_size,
                num_perm=options.num_perm,
            )
        self._kept: dict[int, _Kept] = {}

    def counts(self, model: str) -> QualityCounts:
        return self.per_model.setdefault(model, QualityCounts())

    def offer(self, record: dict[str, Any]) -> list[Cell]:
        """Route one parsed row; return the quota cells that lost a row (this one's and/or an earlier one's)."""
        t0 = time.perf_counter()
        counts = self.counts(record["model"])
        counts.parsed += 1
        cell = cell_of(self.spec, record["label"], record["category"])
        check = self.index.check(record["row"], record["text"], record["label"]) if self.index is not None else None
        freed: list[Cell] = []
        if check is None or check.verdict is Verdict.UNIQUE:
            self._keep(record, cell)
        elif check.verdict is Verdict.CONFLICT:
            freed = self._conflict(record, cell, check.match)
        else:
            if check.verdict is Verdict.EXACT:
                counts.exact_duplicates += 1
            else:
                counts.near_duplicates += 1
            self.index.discard(record["row"])
            if self.spec.dedup.keep_duplicates:
                kind = "exact" if check.verdict is Verdict.EXACT else "near"
                self.dataset.add({**record, "duplicate": kind, "duplicate_of": check.match})
            freed = [cell]
        counts.seconds += time.perf_counter() - t0
        return freed

    def _keep(self, record: dict[str, Any], cell: Cell, *, index: bool = True) -> None:
        if index and self.index is not None:
            self.index.add(record["row"], record["text"], record["label"])
        self._kept[record["row"]] = _Kept(cell, record["model"])
        self.cells[cell] += 1
        self.counts(record["model"]).kept += 1
        self.dataset.add(record)

    def _conflict(self, record: dict[str, Any], cell: Cell, match: int) -> list[Cell]:
        """Both sides go to the conflicts file; under ``conflicts: separate`` neither stays in the dataset."""
        separate = self.spec.dedup.conflicts == "separate"
        self.index.add(record["row"], record["text"], record["label"])  # later variants of it are caught too
        self.counts(record["model"]).conflicts += 1
        self.conflicts.add({**record, "conflict_with": match})
        freed = [cell] if separate else []
        if not separate:
            self._keep(record, cell, index=False)
        earlier = self._kept.get(match)
        if earlier is not None and match not in self.pulled:
            self.pulled[match] = record["row"]  # copied (separate: moved) to the conflicts file when the run ends
            counts = self.counts(earlier.model)
            counts.conflicts += 1
            if separate:
                self.cells[earlier.cell] -= 1
                counts.kept -= 1
                freed.append(earlier.cell)
        return freed

    def flush(self) -> None:
        self.dataset.flush()
        self.conflicts.flush()

    def close(self) -> None:
        self.dataset.close()
        self.conflicts.close()
