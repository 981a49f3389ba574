"""Exact and near duplicates under one label, and conflicts across labels, against the rows kept so far.

One index (`sdgen.quality.index.TextIndex`) answers both, so both live here. A duplicate of a kept row
under its label is dropped (or, with ``keep_duplicates``, written flagged in ``duplicate`` /
``duplicate_of``); a text (near-)equal to one kept under another label is a conflict: the new row goes
to the conflicts file, and so does the earlier one when the run ends (`pulled`). Under ``conflicts:
separate`` neither side stays in the dataset and both are replaced; under ``keep`` both stay.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sdgen.quality.index import TextIndex, Verdict
from sdgen.quality.steps.base import Candidate, Drop, Restored, Step, Written

if TYPE_CHECKING:
    from sdgen.plan import PlannedRow
    from sdgen.spec import DedupOptions, Spec


class Dedup(Step):
    name = "duplicate"
    title = "as duplicates or label conflicts (dedup)"
    after_judge = True
    reported_apart = True  # exact duplicates, near duplicates and conflicts have lines and columns of their own

    def __init__(self, options: DedupOptions) -> None:
        self.options = options
        self.index = TextIndex(near=options.near, threshold=options.threshold, shingle_size=options.shingle_size,
                               num_perm=options.num_perm)  # fmt: skip
        self.separate = options.conflicts == "separate"
        self._kept: dict[int, PlannedRow] = {}  # what a replacement needs if a kept row is pulled out by a conflict
        self.pulled: dict[int, int] = {}  # earlier kept row -> the row it conflicts with (to the conflicts file at the end)

    @classmethod
    def from_spec(cls, spec: Spec) -> Dedup | None:
        return cls(spec.dedup) if spec.dedup.enabled else None

    def decide(self, row: Candidate) -> Drop | None:
        check = self.index.check(row.row, row.text, row.label)
        if check.verdict is Verdict.UNIQUE:
            return None
        if check.verdict is Verdict.CONFLICT:
            return self._conflict(row, check.match)
        self.index.discard(row.row)
        kind = "exact" if check.verdict is Verdict.EXACT else "near"
        if self.options.keep_duplicates:
            return Drop(kind, to="dataset", columns={"duplicate": kind, "duplicate_of": check.match})
        return Drop(kind)

    def _conflict(self, row: Candidate, match: int) -> Drop:
        self.index.add(row.row, row.text, row.label)  # later variants of it are caught too
        if not self.separate:
            self._kept[row.row] = row.planned()
        earlier = self._kept.get(match)
        others: tuple[PlannedRow, ...] = ()
        if earlier is not None and match not in self.pulled:
            self.pulled[match] = row.row
            others = (earlier,)
        return Drop("conflict", to="conflicts", columns={"conflict_with": match}, stays=not self.separate, others=others)

    def kept(self, row: Candidate) -> None:
        self.index.add(row.row, row.text, row.label)
        self._kept[row.row] = row.planned()

    def restore(self, written: Written) -> Iterator[Restored]:
        """The index holds the kept texts and both sides of conflicts; duplicates are flagged rows or journal
        entries; a kept row that is a side of a conflict leaves the dataset at the end under ``separate``."""
        import pandas as pd

        for record in written.kept + written.conflicts:
            self.index.add(int(record["row"]), record["text"], record["label"])
        for record in written.kept:
            self._kept[int(record["row"])] = Candidate.of(record).planned()
        in_conflicts = {int(r["row"]) for r in written.conflicts}
        for record in written.conflicts:
            match = record.get("conflict_with")
            if match is not None and not pd.isna(match) and int(match) in self._kept:
                self.pulled.setdefault(int(match), int(record["row"]))
        for row, planned in self._kept.items():
            if row in self.pulled or row in in_conflicts:
                yield Restored(row, planned.model, "conflict", leaves=self.separate)
        for record in written.conflicts:
            if int(record["row"]) not in self._kept:  # a side that is not (or no longer) in the dataset
                yield Restored(int(record["row"]), record["model"], "conflict")
        for record in written.flagged:
            yield Restored(int(record["row"]), record["model"], record["duplicate"])
        for entry in written.journal:
            if entry["event"] == self.name:
                yield Restored(entry["row"], entry["model"], entry["reason"])
            elif entry["event"] in ("exact", "near"):  # journals of an sdgen before this step
                yield Restored(entry["row"], entry["model"], entry["event"])
