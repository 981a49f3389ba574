"""A row that reads as generated rather than real is dropped (``realism_check``).

A classifier of character n-grams is fitted once, when the run starts, to tell the user's real rows from rows this
spec generated before (a tune's pilot rows, or an earlier run's). Each label gets a threshold: the share ``keep`` of
its earlier rows that looked least generated (read out of fold, so that a row is never scored by a classifier that
saw it) would pass. A new row passes when it looks no more generated than that. The rows kept are the ones whose
wording, length and punctuation are nearest to real text, which is what a classifier trained on them meets at test
time (measured on three sets: docs/quality.md#realism-check-measured).

A row of nothing but #hashtags, @mentions and links is dropped too, whatever the classifier reads, unless some real
row is one: the n-grams of real tweets teach it that hashtags read real, so rows that are only hashtags ("#sun #sad
#tired") read no more generated to it than prose rows (a tuned emotion spec: odds 0.45-0.49 against 0.51), and 6-7% of
that spec's rows were such, where none of its 120 seed tweets is. (A bound at the real rows' highest share of such
words would also drop real-looking rows: 0.7% of the politeness test rows open with an @mention its seed lacks.)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sdgen.quality.steps.base import Candidate, Drop, Step

if TYPE_CHECKING:
    from sdgen.spec import Spec

FOLDS = 5
_TAG = re.compile(r"(?:[#@]\w|https?://|www\.)")


def tags_only(text: str) -> bool:
    """The text is nothing but #hashtags, @mentions and links (an empty one is not)."""
    words = text.split()
    return bool(words) and all(_TAG.match(word) for word in words)


def prose_only(real: list[str]) -> bool:
    """No real row is tags only: a generated row that is one is unlike all of them."""
    return not any(tags_only(text) for text in real)


def _fit(real: list[str], generated: list[str], seed: int):
    from sdgen.quality.classifier import character_classifier

    return character_classifier(seed).fit([*real, *generated], [0] * len(real) + [1] * len(generated))


def generated_odds(real: list[str], generated: list[str], seed: int = 0) -> list[float]:
    """Per generated text, the probability that it is generated, from a classifier fitted without it (k folds)."""
    import numpy as np
    from sklearn.model_selection import KFold

    odds = np.zeros(len(generated))
    folds = min(FOLDS, len(generated))
    if folds < 2:
        return odds.tolist()
    for fit_rows, read_rows in KFold(folds, shuffle=True, random_state=seed).split(generated):
        model = _fit(real, [generated[i] for i in fit_rows], seed)
        odds[read_rows] = model.predict_proba([generated[i] for i in read_rows])[:, 1]
    return odds.tolist()


def least_generated(real: list[str], texts: list[str], labels: list[str], keep: float, seed: int = 0) -> list[bool]:
    """Which of ``texts`` are among the ``keep`` share of their label that reads least generated (out of fold), and
    hold some prose where every real row does."""
    import numpy as np

    odds, labels_ = np.asarray(generated_odds(real, texts, seed)), np.asarray(labels, dtype=object)
    passes = np.zeros(len(texts), dtype=bool)
    for label in set(labels):
        rows = np.flatnonzero(labels_ == label)
        passes[rows[np.argsort(odds[rows], kind="stable")[: max(1, round(keep * len(rows)))]]] = True
    prose = prose_only(real)
    return [bool(ok) and not (prose and tags_only(text)) for ok, text in zip(passes, texts)]


class RealismCheck(Step):
    name = "unreal"
    title = "as generated rather than real by a classifier of real against earlier generated rows (realism_check)"

    def __init__(self, real: list[str], generated: list[str], generated_labels: list[str], keep: float,
                 seed: int = 0) -> None:  # fmt: skip
        import numpy as np

        odds, labels = np.asarray(generated_odds(real, generated, seed)), np.asarray(generated_labels, dtype=object)
        self.thresholds = {str(label): float(np.quantile(odds[labels == label], keep))
                           for label in set(generated_labels)}  # fmt: skip
        self.model = _fit(real, generated, seed)
        self.prose_only = prose_only(real)

    @classmethod
    def from_spec(cls, spec: Spec) -> RealismCheck | None:
        source = spec.realism_check_source
        if source is None:
            return None
        from sdgen.realdata import RealDataError, read_labelled

        labels, path = list(spec.labels), spec.realism_check_generated
        real = read_labelled(*source, labels)
        if not path.is_file():
            raise RealDataError(f"realism_check.generated: {path}: no such file (rows this spec generated before)")
        generated = read_labelled(path, "text", "label", labels)
        return cls(real["text"].tolist(), generated["text"].tolist(), generated["label"].tolist(),
                   spec.realism_check.keep, spec.seed)  # fmt: skip

    def passes(self, texts: list[str], labels: list[str]) -> list[bool]:
        odds = self.model.predict_proba(texts)[:, 1]
        return [float(p) <= self.thresholds.get(label, 1.0) and not (self.prose_only and tags_only(text))
                for p, label, text in zip(odds, labels, texts)]  # fmt: skip

    def decide(self, row: Candidate) -> Drop | None:
        if self.prose_only and tags_only(row.text):
            return Drop("only #hashtags, @mentions or links, where every real row has words")
        return None if self.passes([row.text], [row.label])[0] else Drop("reads as generated")
