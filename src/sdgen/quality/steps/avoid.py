"""A row whose text holds a phrase its label avoids (``labels.NAME.avoid``) is dropped."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdgen.quality.steps.base import Candidate, Drop, Step

if TYPE_CHECKING:
    from sdgen.spec import Spec
    from sdgen.text import AvoidedPhrases


class Avoid(Step):
    name = "avoided"
    title = "for a phrase their label avoids (labels.NAME.avoid)"

    def __init__(self, phrases: AvoidedPhrases) -> None:
        self.phrases = phrases

    @classmethod
    def from_spec(cls, spec: Spec) -> Avoid | None:
        return cls(spec.avoided) if spec.avoided else None

    def decide(self, row: Candidate) -> Drop | None:
        phrase = self.phrases.found(row.text, row.label)
        return None if phrase is None else Drop(phrase)
