"""A row the judge gave another label (or its own, below ``judge.min_confidence``) goes to the rejected file.

The judge itself is an engine request (`sdgen.quality.judge`, asked by the run when a row passed the steps
before it); this step decides on its verdict, which the row carries (`Candidate.agrees`). With ``judge:
{action: flag}`` nothing is dropped: the verdict is written in the row's columns instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sdgen.quality.steps.base import Candidate, Drop, Restored, Step, Written

if TYPE_CHECKING:
    from sdgen.spec import Spec


class JudgeVerdict(Step):
    name = "judged"
    title = "as another label by the judge (judge)"
    after_judge = True
    reported_apart = True  # the summary's and report's judge lines

    @classmethod
    def from_spec(cls, spec: Spec) -> JudgeVerdict | None:
        return cls() if spec.judge.enabled and spec.judge.action == "drop" else None

    def decide(self, row: Candidate) -> Drop | None:
        if row.agrees is None or row.agrees:  # not judged (no judge), or judged its own label
            return None
        return Drop(row.judged or "?", to="rejected")

    def restore(self, written: Written) -> Iterator[Restored]:
        for record in written.rejected:
            yield Restored(int(record["row"]), record["model"], record.get("judged_label") or "?")
