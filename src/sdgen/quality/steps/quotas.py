"""Quotas: the rows each quota cell holds, and no cell past its plan under ``balance: exact``.

The plan deals each cell its rows and a replacement keeps its row's cell, so an exact cell fills exactly unless
rows are lost for good (the run-wide replacement budget, `sdgen.run.replacements`, decides that; the summary's
line on short cells reads this step's counts). A row that would take its cell past the plan's count is dropped
and *not* replaced: the plan should never let that happen, and this step makes "exact" a check rather than a
promise (a resumed run whose files were edited by hand is one way to get there).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sdgen.plan import cell_of, quotas
from sdgen.quality.steps.base import Candidate, Drop, Restored, Step, Written

if TYPE_CHECKING:
    from sdgen.plan import Cell, PlannedRow
    from sdgen.spec import Spec


class Quotas(Step):
    name = "quota"
    title = "past their cell's quota (balance: exact)"
    after_judge = True  # counts the rows the dataset keeps
    replaces_drops = False  # the cell is full: a replacement would be past it too

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.quotas: dict[Cell, int] | None = quotas(spec) if spec.balance.mode == "exact" else None
        self.cells: Counter = Counter()  # rows the dataset holds, per cell

    @classmethod
    def from_spec(cls, spec: Spec) -> Quotas:
        return cls(spec)  # always: the counts per cell are what the summary says of short cells

    def _cell(self, label: str, category: str) -> Cell:
        return cell_of(self.spec, label, category)

    def decide(self, row: Candidate) -> Drop | None:
        if self.quotas is None:
            return None
        cell = self._cell(row.label, row.category)
        return Drop("full") if self.cells[cell] >= self.quotas.get(cell, 0) else None

    def kept(self, row: Candidate) -> None:
        self.cells[self._cell(row.label, row.category)] += 1

    def left(self, row: PlannedRow) -> None:
        self.cells[self._cell(row.label, row.category)] -= 1

    def restore(self, written: Written) -> Iterator[Restored]:
        for record in written.kept:
            self.cells[self._cell(record["label"], record["category"])] += 1
        yield from super().restore(written)
