"""Quality steps: each decides on one parsed row (`base.Step`); those marked ``after_judge`` see only rows the judge passed.

The chain is declared here, in order; a new step is one module and one entry in ``CHAIN``
(docs/development.md#adding-a-quality-step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdgen.quality.steps.avoid import Avoid
from sdgen.quality.steps.base import Candidate, Drop, Restored, Step, Written
from sdgen.quality.steps.dedup import Dedup
from sdgen.quality.steps.example_copy import ExampleCopy
from sdgen.quality.steps.judge_verdict import JudgeVerdict
from sdgen.quality.steps.label_check import LabelCheck
from sdgen.quality.steps.quotas import Quotas
from sdgen.quality.steps.realism_check import RealismCheck

if TYPE_CHECKING:
    from sdgen.spec import Spec

CHAIN: tuple[type[Step], ...] = (Avoid, ExampleCopy, LabelCheck, RealismCheck, JudgeVerdict, Dedup, Quotas)


def steps_for(spec: Spec) -> list[Step]:
    """The steps the spec asks for, in chain order."""
    return [step for cls in CHAIN if (step := cls.from_spec(spec)) is not None]


def step_titles() -> dict[str, str]:
    """Step name -> what the summary says of the rows it dropped ("dropped and replaced for a phrase ..."; steps
    with lines of their own aside)."""
    return {cls.name: f"dropped {'and replaced' if cls.replaces_drops else 'and not replaced'} {cls.title}"
            for cls in CHAIN if not cls.reported_apart}  # fmt: skip


__all__ = ["CHAIN", "Candidate", "Drop", "Restored", "Step", "Written", "step_titles", "steps_for"]
