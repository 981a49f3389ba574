"""Online curation: every parsed row is checked against the rows kept so far before it reaches the dataset.

Exact and near duplicates under the same label are dropped (or written flagged with
``keep_duplicates``); a text (near-)equal to one kept under another label is a cross-label
conflict: the new row goes to the conflicts file, and so does the earlier one, which is moved
out of the dataset when the run ends (it was already written). Every call returns the rows it
lost, so that the run can replace them (`sdgen.plan.replacement`).
"""

from __future__ import annotations

import dataclasses

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from sdgen.plan import Cell, PlannedRow, cell_of
from sdgen.quality.index import TextIndex, Verdict
from sdgen.quality.steps import Candidate, Step, steps_for
from sdgen.store.runstate import Journal
from sdgen.spec import Spec

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class QualityCounts:
    """Per-model counts of what curation found (rates are over parsed rows)."""

    parsed: int = 0
    kept: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    conflicts: int = 0  # rows of this model set aside as one side of a conflict
    # rows dropped by a quality step (`sdgen.quality.steps`): step name -> reason (a phrase, a label) -> rows
    screened: dict[str, dict[str, int]] = field(default_factory=dict)
    rejected: int = 0  # rows the judge gave another label (moved to the rejected file)
    seconds: float = 0.0  # time spent checking and indexing


def as_row(record: dict[str, Any]) -> PlannedRow:
    """The plan entry a record was written for (its seed aside: a replacement draws its own)."""
    return PlannedRow(int(record["row"]), record["label"], record["category"], record["type"], record["model"], 0)


class RowBuffer:
    """Buffers rows for a writer opened on first use (the curator decides when to flush)."""

    def __init__(self, open_writer: Callable[[], Any]) -> None:
        self._open = open_writer
        self.writer = None
        self._rows: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, record: dict[str, Any]) -> None:
        self._rows.append(record)

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
    row: PlannedRow  # what a replacement needs if this row is pulled out later (a conflict)


@dataclass
class Curator:
    """Decides, row by row, what is kept; counts per model and per quota cell."""

    spec: Spec
    dataset: RowBuffer
    conflicts: RowBuffer
    journal: Journal | None = None
    rejected: RowBuffer | None = None
    per_model: dict[str, QualityCounts] = field(default_factory=dict)
    cells: Counter = field(default_factory=Counter)  # rows counting toward each quota cell
    pulled: dict[int, int] = field(default_factory=dict)  # earlier kept row -> the row it conflicts with
    steps: list[Step] | None = None  # the quality steps (default: those the spec asks for)

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
        if self.steps is None:
            self.steps = steps_for(self.spec)
        self._step_names = {step.name for step in self.steps}

    def counts(self, model: str) -> QualityCounts:
        return self.per_model.setdefault(model, QualityCounts())

    def reserve(self, texts: list[tuple[str, str]], kind: str) -> None:
        """Texts (text, label) no generated row may repeat: told to the quality steps (`Step.reserve`)."""
        for step in self.steps:
            step.reserve(texts, kind)

    def screen(self, record: dict[str, Any]) -> list[PlannedRow] | None:
        """Before the judge and the index: the quality steps in chain order; the first that drops the row decides
        (None: it passes them all)."""
        if not self.steps:
            return None
        t0 = time.perf_counter()
        candidate = Candidate.of(record)
        drop, step = next(((d, s) for s in self.steps if (d := s.decide(candidate)) is not None), (None, None))
        self.counts(record["model"]).seconds += time.perf_counter() - t0
        if drop is None:
            return None
        self._count_screened(record["model"], step.name, drop.reason)
        self._note(step.name, record["row"], record["model"], reason=drop.reason)
        self._maybe_flush()
        return [dataclasses.replace(as_row(record), unlike_examples=step.unlike_examples)]  # its replacement is told why

    def _count_screened(self, model: str, step: str, reason: str) -> None:
        counts = self.counts(model)
        counts.parsed += 1
        reasons = counts.screened.setdefault(step, {})
        reasons[reason] = reasons.get(reason, 0) + 1

    def reject(self, record: dict[str, Any]) -> list[PlannedRow]:
        """A row the judge gave another label: to the rejected file; it is lost."""
        self.counts(record["model"]).rejected += 1
        self.counts(record["model"]).parsed += 1
        assert self.rejected is not None, "a curator without a rejected file cannot reject"
        self.rejected.add(record)
        self._maybe_flush()
        return [as_row(record)]

    def offer(self, record: dict[str, Any]) -> list[PlannedRow]:
        """Route one parsed row; return the rows it lost (this one and/or an earlier one it conflicts with)."""
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
            kind = "exact" if check.verdict is Verdict.EXACT else "near"
            if self.spec.dedup.keep_duplicates:
                self.dataset.add({**record, "duplicate": kind, "duplicate_of": check.match})
            else:
                self._note(kind, record["row"], record["model"])
            freed = [as_row(record)]
        counts.seconds += time.perf_counter() - t0
        self._maybe_flush()
        return freed

    def unparseable(self, row: int, model: str) -> None:
        """A row that never parsed: no data file holds it, so the journal does."""
        self._note("unparseable", row, model)
        self._maybe_flush()

    def _note(self, event: str, row: int, model: str, **detail: Any) -> None:
        if self.journal is not None:
            self.journal.note(event, row, model, **detail)

    def _maybe_flush(self) -> None:
        pending = len(self.dataset) + len(self.conflicts) + len(self.rejected or ()) + (self.journal.pending if self.journal else 0)
        if pending >= self.spec.batch_size:
            self.flush()

    def _keep(self, record: dict[str, Any], cell: Cell, *, index: bool = True) -> None:
        if index and self.index is not None:
            self.index.add(record["row"], record["text"], record["label"])
        self._kept[record["row"]] = _Kept(cell, as_row(record))
        self.cells[cell] += 1
        self.counts(record["model"]).kept += 1
        self.dataset.add(record)

    def _conflict(self, record: dict[str, Any], cell: Cell, match: int) -> list[PlannedRow]:
        """Both sides go to the conflicts file; under ``conflicts: separate`` neither stays in the dataset."""
        separate = self.spec.dedup.conflicts == "separate"
        self.index.add(record["row"], record["text"], record["label"])  # later variants of it are caught too
        self.counts(record["model"]).conflicts += 1
        self.conflicts.add({**record, "conflict_with": match})
        freed = [as_row(record)] if separate else []
        if not separate:
            self._keep(record, cell, index=False)
        earlier = self._kept.get(match)
        if earlier is not None and match not in self.pulled:
            self.pulled[match] = record["row"]  # copied (separate: moved) to the conflicts file when the run ends
            counts = self.counts(earlier.row.model)
            counts.conflicts += 1
            if separate:
                self.cells[earlier.cell] -= 1
                counts.kept -= 1
                freed.append(earlier.row)
        return freed

    def flush(self) -> None:
        """Data files first, then the journal: a journal entry never refers to rows that are not on disk."""
        self.dataset.flush()
        self.conflicts.flush()
        if self.rejected is not None:
            self.rejected.flush()
        if self.journal is not None:
            self.journal.flush()

    def close(self) -> None:
        self.dataset.close()
        self.conflicts.close()
        if self.rejected is not None:
            self.rejected.close()
        if self.journal is not None:
            self.journal.close()

    def restore(self, dataset: pd.DataFrame, conflicts: pd.DataFrame | None, journal: list[dict[str, Any]],
                rejected: pd.DataFrame | None = None) -> None:  # fmt: skip
        """Rebuild the index, the counts and the pulled set of an interrupted run from what it wrote."""
        import pandas as pd

        separate = self.spec.dedup.conflicts == "separate"
        flagged = dataset["duplicate"].ne("") if "duplicate" in dataset.columns else dataset["row"].isna()
        kept_records = dataset[~flagged].to_dict("records")
        conflict_records = conflicts.to_dict("records") if conflicts is not None else []
        for record in kept_records + conflict_records:  # the index holds kept texts and both sides of conflicts
            if self.index is not None:
                self.index.add(int(record["row"]), record["text"], record["label"])
        for record in kept_records:
            self._kept[int(record["row"])] = _Kept(cell_of(self.spec, record["label"], record["category"]), as_row(record))
        in_conflicts = {int(r["row"]) for r in conflict_records}
        for record in conflict_records:
            match = record.get("conflict_with")
            if match is not None and not pd.isna(match) and int(match) in self._kept:
                self.pulled.setdefault(int(match), int(record["row"]))
        for row, kept in self._kept.items():
            counts = self.counts(kept.row.model)
            counts.parsed += 1
            if row in self.pulled or row in in_conflicts:
                counts.conflicts += 1
                if separate:
                    continue
            counts.kept += 1
            self.cells[kept.cell] += 1
        for record in conflict_records:
            if int(record["row"]) not in self._kept:  # a side that is not (or no longer) in the dataset
                counts = self.counts(record["model"])
                counts.parsed += 1
                counts.conflicts += 1
        duplicates = [(r["model"], r["duplicate"]) for r in dataset[flagged].to_dict("records")]
        duplicates += [(e["model"], e["event"]) for e in journal if e["event"] in ("exact", "near")]
        for model, kind in duplicates:
            counts = self.counts(model)
            counts.parsed += 1
            if kind == "exact":
                counts.exact_duplicates += 1
            else:
                counts.near_duplicates += 1
        for entry in journal:
            if entry["event"] in self._step_names:  # older journals call an avoided phrase "phrase"
                self._count_screened(entry["model"], entry["event"], entry.get("reason", entry.get("phrase", "?")))
        for model in (rejected["model"] if rejected is not None else []):
            self.counts(model).parsed += 1
            self.counts(model).rejected += 1
