"""A pilot's worth, measured on real rows it was not derived from (the held-out fold), as `sdgen eval` measures it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PilotScore:
    agreement: float  # a classifier trained on the held-out rows gives a generated row its label
    f1: float  # train on the pilot's rows, test on the held-out rows (macro-F1)
    hybrid_f1: float  # train on the deriving fold's real rows + the pilot's, test on the held-out rows
    real_f1: float  # train on the deriving fold's real rows alone
    rows: int
    rows_per_s: float

    @property
    def value(self) -> float:
        """The one figure tune compares: the mean of agreement, TSTR macro-F1 and the hybrid macro-F1."""
        return (self.agreement + self.f1 + self.hybrid_f1) / 3


def score_pilot(generated, derive, held, labels: list[str], rows_per_s: float, seed: int = 0) -> PilotScore:
    """Score ``generated`` rows against ``held`` real rows; ``derive`` is the fold the pilot's spec learnt from."""
    import pandas as pd
    from sklearn.metrics import f1_score

    from sdgen.quality.classifier import text_classifier
    from sdgen.quality.evaluate import RealClassifier

    def f1(train) -> float:
        if train["label"].nunique() < 2:
            return 0.0
        model = text_classifier(seed).fit(train["text"], train["label"])
        return float(f1_score(held["label"], model.predict(held["text"]), labels=labels, average="macro", zero_division=0))

    agreement = RealClassifier(held, seed).agreement(generated["text"], generated["label"]) if len(generated) else 0.0
    hybrid = pd.concat([derive[["text", "label"]], generated[["text", "label"]]], ignore_index=True)
    return PilotScore(round(agreement, 4), round(f1(generated), 4), round(f1(hybrid), 4), round(f1(derive), 4),
                      len(generated), round(rows_per_s, 3))  # fmt: skip
