"""Real, human-labelled rows: read from a user's file (CSV, JSONL, Parquet), and drawn as rotating prompt examples."""

from __future__ import annotations

import random
from pathlib import Path

from sdgen.errors import SdgenError
from sdgen.plan import derive_seed
from sdgen.quality.avoid import AvoidedPhrases


class RealDataError(SdgenError):
    """A real data file cannot be used as given."""


def read_real(path: Path, text_col: str = "text", label_col: str = "label"):
    """The file's text and label columns as a DataFrame (renamed text, label), with a one-line error for a missing one."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise RealDataError(f"{path}: real data file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix == ".jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            raise RealDataError(f"{path}: unsupported format; use .csv, .jsonl or .parquet")
    except (OSError, ValueError) as exc:
        raise RealDataError(f"cannot read {path}: {exc}") from None
    missing = [c for c in (text_col, label_col) if c not in df.columns]
    if missing:
        raise RealDataError(f"{path}: no column {', '.join(map(repr, missing))} (columns: {', '.join(map(str, df.columns))}); "
                            "name them with --text-col / --label-col")  # fmt: skip
    df = df.rename(columns={text_col: "text", label_col: "label"})
    df["text"], df["label"] = df["text"].astype(str), df["label"].astype(str)
    return df[df["text"].str.strip() != ""].reset_index(drop=True)


def check_labels(path: Path, labels: list[str], real) -> None:
    """Every label must have real rows."""
    have = set(real["label"])
    unknown = [label for label in labels if label not in have]
    if unknown:
        raise RealDataError(f"{path}: has no rows labelled {', '.join(map(repr, unknown))} "
                            f"(its labels: {', '.join(sorted(have))}); use a file with the same labels")  # fmt: skip


class ExamplePool:
    """Real rows per label; ``draw(group)`` gives a group of plan rows its own examples, the same every time."""

    def __init__(self, path: Path, text_col: str, label_col: str, labels: list[str], per_label: int, seed: int,
                 avoided: AvoidedPhrases | None = None) -> None:  # fmt: skip
        real = read_real(path, text_col, label_col)
        check_labels(path, labels, real)
        self.texts = {label: real.loc[real["label"] == label, "text"].tolist() for label in labels}
        self._reserved = [(text, label) for label, texts in self.texts.items() for text in texts]
        if avoided:  # a real row holding a phrase its label avoids is never shown (it is still reserved)
            self.texts = {label: [t for t in texts if avoided.found(t, label) is None] for label, texts in self.texts.items()}
            empty = [label for label, texts in self.texts.items() if not texts]
            if empty:
                raise RealDataError(f"{path}: every row labelled {', '.join(map(repr, empty))} holds a phrase "
                                    "that label avoids (labels.NAME.avoid); none is left to show")  # fmt: skip
        self.per_label, self.seed = per_label, seed
        self.slots = sum(min(per_label, len(texts)) for texts in self.texts.values())  # examples in every draw

    def draw(self, group: int) -> list[tuple[str, str]]:
        """``per_label`` (text, label) pairs per label, interleaved in a seeded order."""
        rng = random.Random(derive_seed(self.seed, "real-examples", group))
        picked = [(text, label) for label, texts in self.texts.items()
                  for text in rng.sample(texts, min(self.per_label, len(texts)))]  # fmt: skip
        rng.shuffle(picked)
        return picked

    def reserved(self) -> list[tuple[str, str]]:
        """Every real row of the spec's labels, shown or not: none may enter the output."""
        return self._reserved
