"""Online curation: every parsed row goes through the quality steps before it reaches the dataset.

The steps decide (`sdgen.quality.steps`: avoided phrases, example copies, the label check, duplicates and
conflicts, quotas); the curator does what is the same for all of them: it counts each drop per model and
reason, writes the row where the drop says (the dataset flagged, the conflicts file, or only the journal),
buffers the files and flushes them before the journal. Every call returns the rows it lost, so that the run
can replace them (`sdgen.run.replacements`).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from sdgen.plan import PlannedRow
from sdgen.quality.steps import Candidate, Drop, Step, Written, steps_for
from sdgen.quality.steps.dedup import Dedup
from sdgen.quality.steps.judge_verdict import JudgeVerdict
from sdgen.quality.steps.quotas import Quotas
from sdgen.store.runstate import Journal
from sdgen.spec import Spec

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class QualityCounts:
    """Per-model counts of what curation found (rates are over parsed rows)."""

    parsed: int = 0
    kept: int = 0
    # rows dropped by a quality step (`sdgen.quality.steps`): step name -> reason (a phrase, a label, "exact") -> rows
    screened: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0  # time spent checking and indexing

    @property
    def rejected(self) -> int:
        """Rows the judge gave another label (moved to the rejected file)."""
        return sum(self.screened.get(JudgeVerdict.name, {}).values())

    @property
    def exact_duplicates(self) -> int:
        return self.screened.get(Dedup.name, {}).get("exact", 0)

    @property
    def near_duplicates(self) -> int:
        return self.screened.get(Dedup.name, {}).get("near", 0)

    @property
    def conflicts(self) -> int:
        """Rows of this model set aside as one side of a conflict."""
        return self.screened.get(Dedup.name, {}).get("conflict", 0)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "exact_duplicates": self.exact_duplicates,
                "near_duplicates": self.near_duplicates, "conflicts": self.conflicts, "rejected": self.rejected}  # fmt: skip


@dataclass
class Lost:
    """The rows an interrupted run lost (each to be replaced, as the live run replaces them)."""

    rows: set[int] = field(default_factory=set)
    copies: set[int] = field(default_factory=set)  # lost as copies of an example: the replacement is told
    unparseable: list[str] = field(default_factory=list)  # the model of each row that never parsed


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
class Curator:
    """Runs the quality steps on each row and writes what they decide; counts per model and per quota cell."""

    spec: Spec
    dataset: RowBuffer
    conflicts: RowBuffer
    journal: Journal | None = None
    rejected: RowBuffer | None = None
    per_model: dict[str, QualityCounts] = field(default_factory=dict)
    steps: list[Step] | None = None  # the quality steps (default: those the spec asks for)

    def __post_init__(self) -> None:
        if self.steps is None:
            self.steps = steps_for(self.spec)
        self._before = [s for s in self.steps if not s.after_judge]
        self._after = [s for s in self.steps if s.after_judge]

    @property
    def cells(self) -> Counter:
        """Rows the dataset holds per quota cell (the `Quotas` step counts them)."""
        return next((s.cells for s in self.steps if isinstance(s, Quotas)), Counter())

    @property
    def pulled(self) -> dict[int, int]:
        """Earlier kept rows -> the row each conflicts with: copied (separate: moved) to the conflicts file at the end."""
        return next((s.pulled for s in self.steps if isinstance(s, Dedup)), {})

    def counts(self, model: str) -> QualityCounts:
        return self.per_model.setdefault(model, QualityCounts())

    def reserve(self, texts: list[tuple[str, str]], kind: str) -> None:
        """Texts (text, label) no generated row may repeat: told to the quality steps (`Step.reserve`)."""
        for step in self.steps:
            step.reserve(texts, kind)

    def screen(self, record: dict[str, Any]) -> list[PlannedRow] | None:
        """Before the judge: the steps that do not compare with kept rows, in chain order; the first that drops
        the row decides. None: it passes them all (the judge, when there is one, and `offer` come next)."""
        if not self._before:
            return None
        t0 = time.perf_counter()
        lost = self._decide(record, Candidate.of(record), self._before)
        self.counts(record["model"]).seconds += time.perf_counter() - t0
        return lost

    def offer(self, record: dict[str, Any]) -> list[PlannedRow]:
        """After the judge: the steps on its verdict and against the kept rows; the row is kept unless one drops it.
        Returns the rows it lost (this one and/or earlier ones it made the other side of a conflict)."""
        t0 = time.perf_counter()
        candidate = Candidate.of(record)
        lost = self._decide(record, candidate, self._after)
        if lost is None:
            self._keep(record)
            for step in self._after:
                step.kept(candidate)
            lost = []
        self.counts(record["model"]).seconds += time.perf_counter() - t0
        self._maybe_flush()
        return lost

    def _decide(self, record: dict[str, Any], candidate: Candidate, steps: list[Step]) -> list[PlannedRow] | None:
        for step in steps:
            drop = step.decide(candidate)
            if drop is not None:
                return self._dropped(record, candidate, step, drop)
        return None

    def _dropped(self, record: dict[str, Any], candidate: Candidate, step: Step, drop: Drop) -> list[PlannedRow]:
        """Count the drop, write the row where it says, take the rows that leave the dataset out of the counts;
        return the lost rows (this one and the earlier ones it takes along, unless it stays)."""
        self._count(record["model"], step.name, drop.reason)
        for other in drop.others:
            self._count(other.model, step.name, drop.reason, parsed=False)
        target = {"dataset": self.dataset, "conflicts": self.conflicts, "rejected": self.rejected}.get(drop.to)
        if target is not None:
            target.add({**record, **drop.columns})
        else:
            self._note(step.name, record["row"], record["model"], reason=drop.reason)
        if drop.stays:
            self._keep(record, counted=True)  # buffered with its conflicts row: both reach disk in one flush
            for other in self._after:
                if other is not step:
                    other.kept(candidate)
            self._maybe_flush()
            return []
        for row in drop.others:
            self._left(row)
        self._maybe_flush()
        if not step.replaces_drops:
            return []
        mine = dataclasses.replace(candidate.planned(), unlike_examples=step.unlike_examples)  # a copy's replacement is told
        return [mine, *drop.others]

    def _count(self, model: str, step: str, reason: str, *, parsed: bool = True) -> None:
        counts = self.counts(model)
        counts.parsed += parsed
        reasons = counts.screened.setdefault(step, {})
        reasons[reason] = reasons.get(reason, 0) + 1

    def _left(self, row: PlannedRow) -> None:
        """A kept row leaves the dataset (the earlier side of a conflict): out of its model's and its cell's counts."""
        self.counts(row.model).kept -= 1
        for step in self.steps:
            step.left(row)

    def _keep(self, record: dict[str, Any], *, counted: bool = False) -> None:
        """A row the dataset keeps: it counts toward its model's kept rows (and parsed ones, unless the drop that
        keeps it, a conflict under ``conflicts: keep``, counted it); the steps count it toward its cell."""
        counts = self.counts(record["model"])
        counts.parsed += not counted
        counts.kept += 1
        self.dataset.add(record)

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
                rejected: pd.DataFrame | None = None) -> Lost:  # fmt: skip
        """Rebuild the steps' state and the counts of an interrupted run from what it wrote; return the rows it
        lost, as the live run would have returned them."""
        flagged = dataset["duplicate"].ne("") if "duplicate" in dataset.columns else dataset["row"].isna()
        written = Written(kept=dataset[~flagged].to_dict("records"), flagged=dataset[flagged].to_dict("records"),
                          conflicts=conflicts.to_dict("records") if conflicts is not None else [], journal=journal,
                          rejected=rejected.to_dict("records") if rejected is not None else [])  # fmt: skip
        in_dataset = {int(r["row"]) for r in written.kept}
        leaving: set[int] = set()
        lost = Lost()
        for step in self.steps:
            for drop in step.restore(written):
                self._count(drop.model, step.name, drop.reason, parsed=drop.row not in in_dataset)
                if drop.leaves:
                    leaving.add(drop.row)
                if step.replaces_drops and (drop.leaves or drop.row not in in_dataset):  # conflicts: keep is no loss
                    lost.rows.add(drop.row)
                    if step.unlike_examples:
                        lost.copies.add(drop.row)
        for entry in journal:
            if entry["event"] == "unparseable":
                lost.rows.add(entry["row"])
                lost.unparseable.append(entry["model"])
        for record in written.kept:
            counts = self.counts(record["model"])
            counts.parsed += 1
            counts.kept += 1
            if int(record["row"]) in leaving:
                self._left(Candidate.of(record).planned())
        return lost
