"""A row that a classifier of the user's real rows reads as another label is dropped (``label_check``).

The classifier (`sdgen.quality.classifier`) is fitted on the real rows once, when the run starts. A row
passes when the classifier gives its label at least ``min_ratio`` of the probability of the label it finds
likeliest: with the default 0.5 only rows it reads clearly as another label go. This is the check the
user would make by hand with their own labelled rows, done on every row before it is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdgen.quality.steps.base import Candidate, Drop, Step

if TYPE_CHECKING:
    from sdgen.spec import Spec


class LabelCheck(Step):
    name = "misread"
    title = "as another label by a classifier of the real rows (label_check)"

    def __init__(self, texts: list[str], labels: list[str], min_ratio: float, seed: int = 0) -> None:
        from sdgen.quality.classifier import text_classifier

        self.model = text_classifier(seed).fit(texts, labels)
        self.classes = [str(c) for c in self.model.classes_]
        self.min_ratio = min_ratio

    @classmethod
    def from_spec(cls, spec: Spec) -> LabelCheck | None:
        source = spec.label_check_source
        if source is None:
            return None
        from sdgen.realdata import read_labelled

        real = read_labelled(*source, list(spec.labels))  # a label the spec lacks is no reading a row can have
        return cls(real["text"].tolist(), real["label"].tolist(), spec.label_check.min_ratio, spec.seed)

    def probabilities(self, texts: list[str]) -> list[dict[str, float]]:
        """Per text, the classifier's probability of each label."""
        return [dict(zip(self.classes, map(float, p))) for p in self.model.predict_proba(texts)]

    def passes(self, texts: list[str], labels: list[str]) -> list[bool]:
        """Whether each text would pass: what `decide` asks of one row, for a pilot's rows at once (`sdgen tune`)."""
        return [self._passes(p, label) for p, label in zip(self.probabilities(texts), labels)]

    def _passes(self, p: dict[str, float], label: str) -> bool:
        return p.get(label, 0.0) >= self.min_ratio * max(p.values())

    def decide(self, row: Candidate) -> Drop | None:
        p = self.probabilities([row.text])[0]
        if self._passes(p, row.label):
            return None
        return Drop(max(p, key=p.get))
