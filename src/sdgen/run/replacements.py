"""One budget of replacement rows for the whole run, spent where rows are actually lost.

A lost row is replaced by row ``id + sample_size`` (`sdgen.plan.replacement`), and that one, if lost too, by
``id + 2 x sample_size``, and so on: a cell whose rows are often lost (a hard label, a model that copies its
examples) draws as many replacements as it needs from the one budget of ``balance.replacements x sample_size``
extra rows, and an easy cell draws none. A planned row gives up after `max_generations` replacements in a
row. While the budget lasts, which rows are replaced depends only on which rows were lost, not on the order
they were lost in, so ``--resume`` rebuilds the same replacements from the files.

When rows stay missing, ``missing_line`` says per cell how often its rows were lost and what filling it
would cost at this run's pace.
"""

from __future__ import annotations

from collections import Counter

from sdgen.plan import Cell, PlannedRow, cell_of, generation, replacement
from sdgen.spec import Spec

SHOWN_CELLS = 3  # the one-line summary names the cells with the most missing rows
MAX_GENERATIONS = 12  # a row lost 13 times in a row: its cell keeps almost none of its rows (and the budget goes on)


def max_generations(spec: Spec) -> int:
    """How many times in a row a planned row may be replaced: 12, or twice the budget's replacements per planned row
    where that is more. Screens that pass few rows raise the budget (tune's judge and realism check: 4-11), and a
    row of a hard cell then needs its streak: emotion's tuned spec wrote 281 of 300 rows with most of its budget
    unspent, `optimism` rows lost 13 times in a row (0.85^13, 12% of them, at the 15% they passed)."""
    return max(MAX_GENERATIONS, 2 * spec.balance.replacements)


class ReplacementBudget:
    """Hands out replacement rows while the run's budget lasts; counts losses per cell."""

    def __init__(self, spec: Spec, spent: int = 0) -> None:
        self.spec = spec
        self.limit = spec.balance.replacements * spec.sample_size
        self.spent = spent  # replacement rows handed out (on resume: those the files already hold)
        self.lost: Counter[Cell] = Counter()  # rows lost per cell
        self.unreplaced: Counter[Cell] = Counter()  # lost rows that got no replacement, per cell
        self.exhausted = False  # some lost row found the budget spent

    def take(self, lost: PlannedRow) -> PlannedRow | None:
        """The replacement of a lost row, or None (the budget is spent, or the row was replaced too often)."""
        cell = cell_of(self.spec, lost.label, lost.category)
        self.lost[cell] += 1
        if self.spec.balance.replacements and generation(self.spec, lost.row) < max_generations(self.spec):
            if self.spent < self.limit:
                self.spent += 1
                return replacement(self.spec, lost)
            self.exhausted = True
        self.unreplaced[cell] += 1
        return None

    def missing_line(self, missing: int, planned: int, kept: Counter, rows_per_s: float) -> str | None:
        """One line when the dataset lacks rows: which cells, how often their rows were lost, what filling costs."""
        if not missing:
            return None
        cells = sorted((cell for cell in self.unreplaced if self.unreplaced[cell]), key=lambda c: -self.unreplaced[c])
        parts = []
        more = 0.0
        for cell in cells:
            tried = self.lost[cell] + kept.get(cell, 0)
            rate = self.lost[cell] / tried if tried else 1.0
            more += self.unreplaced[cell] / (1 - rate) if rate < 1 else float("inf")
            if len(parts) < SHOWN_CELLS:
                parts.append(f"{' x '.join(cell)} lost {self.lost[cell]} of {tried} rows ({rate:.0%})")
        if len(cells) > SHOWN_CELLS:
            parts.append(f"{len(cells) - SHOWN_CELLS} more cells")
        if not parts:  # no lost row went without its replacement: the rows went missing some other way
            return f"{missing} of {planned} rows missing, though every lost row was replaced"
        why = (f"the replacement budget ran out (balance.replacements {self.spec.balance.replacements} x "
               f"{self.spec.sample_size} rows = {self.limit} extra rows, all used)" if self.exhausted or not self.limit else
               f"their planned rows were lost {max_generations(self.spec) + 1} times in a row")  # fmt: skip
        if more == float("inf"):
            cost = "filling them is out of reach: every row of a cell was lost"
        else:
            seconds = f", about {more / rows_per_s:.0f} s at this run's pace" if rows_per_s else ""
            cost = f"filling them would take about {more:.0f} more rows{seconds}"
        hint = "; raise balance.replacements to fill them" if self.exhausted or not self.limit else ""
        return f"{missing} of {planned} rows missing: {'; '.join(parts)}; {why}; {cost}{hint}"
