"""Real, human-labelled rows: read from a user's file (CSV, JSONL, Parquet), and drawn as rotating prompt examples."""

from __future__ import annotations

import random
from pathlib import Path

from sdgen.errors import SdgenError
from sdgen.formats import FORMATS, suffixes
from sdgen.plan import derive_seed
from sdgen.text import AvoidedPhrases, mask_handles, normalize_text


class RealDataError(SdgenError):
    """A real data file cannot be used as given."""


def read_real(path: Path, text_col: str = "text", label_col: str = "label"):
    """The file's text and label columns as a DataFrame (renamed text, label), with a one-line error for a missing one."""
    path = Path(path)
    if not path.is_file():
        raise RealDataError(f"{path}: real data file not found")
    if path.stat().st_size == 0:
        raise RealDataError(f"{path}: the file is empty")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise RealDataError(f"{path}: unsupported format; use one of {suffixes()}")
    try:
        df = fmt.read(path)
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


def read_labelled(path: Path, text_col: str, label_col: str, labels: list[str]):
    """The file's rows of ``labels`` (text, label): every label must have rows, and a label not in ``labels`` is left
    out (no reading or example can have it)."""
    real = read_real(path, text_col, label_col)
    check_labels(path, labels, real)
    return real[real["label"].isin(labels)]


class ExamplePool:
    """Real rows per label; ``draw(group)`` gives a group of plan rows its own examples, the same every time."""

    def __init__(self, path: Path, text_col: str, label_col: str, labels: list[str], per_label: int, seed: int,
                 avoided: AvoidedPhrases | None = None, same_label: bool = False,
                 anchor: bool = False) -> None:  # fmt: skip
        real = read_labelled(path, text_col, label_col, labels)
        texts = {label: real.loc[real["label"] == label, "text"].tolist() for label in labels}
        # shown with their handles masked; reserved as they are and as shown, so that no row copies either
        self.texts = {label: [mask_handles(t) for t in rows] for label, rows in texts.items()}
        self._reserved = [(text, label) for label, rows in texts.items() for text in rows]
        self._reserved += [(shown, label) for label, rows in texts.items()
                           for text, shown in zip(rows, self.texts[label]) if shown != text]  # fmt: skip
        if avoided:  # a real row holding a phrase its label avoids is never shown (it is still reserved)
            self.texts = {label: [t for t in texts if avoided.found(t, label) is None] for label, texts in self.texts.items()}
            empty = [label for label, texts in self.texts.items() if not texts]
            if empty:
                raise RealDataError(f"{path}: every row labelled {', '.join(map(repr, empty))} holds a phrase "
                                    "that label avoids (labels.NAME.avoid); none is left to show")  # fmt: skip
        self.per_label, self.seed, self.same_label, self.anchor = per_label, seed, same_label, anchor
        counts = [len(texts) for texts in self.texts.values()]
        # examples in every draw (a frame has as many slots as any draw fills); anchors are in the requests instead
        self.slots = 0 if anchor else min(per_label, *counts) if same_label else sum(min(per_label, n) for n in counts)

    def anchor_for(self, request: int, label: str) -> str:
        """The real row of ``label`` that a request (named by its first row's plan id) quotes: the same every time."""
        rng = random.Random(derive_seed(self.seed, "anchor", request, label))
        return " ".join(rng.choice(self.texts[label]).split())

    def draw(self, group: int, label: str | None = None) -> list[tuple[str, str]]:
        """``per_label`` (text, label) pairs per label, interleaved in a seeded order; with ``same_label``, ``slots``
        pairs of ``label`` alone."""
        if self.same_label:
            rng = random.Random(derive_seed(self.seed, "real-examples", group, label))
            return [(text, label) for text in rng.sample(self.texts[label], self.slots)]
        rng = random.Random(derive_seed(self.seed, "real-examples", group))
        picked = [(text, label) for label, texts in self.texts.items()
                  for text in rng.sample(texts, min(self.per_label, len(texts)))]  # fmt: skip
        rng.shuffle(picked)
        return picked

    def reserved(self) -> list[tuple[str, str]]:
        """Every real row of the spec's labels, shown or not: none may enter the output."""
        return self._reserved


MIN_SEED_PER_LABEL = 5  # below this a fold has one or two rows of a label: nothing to learn or score on


class SeedSet:
    """A user's small sample of real labelled rows (10-100 per label): what `sdgen tune` learns the task from,
    what `mix_real` writes into a dataset and what `sdgen eval --seed` compares generated rows against.

    Loading checks it against the spec's labels, in both directions, and refuses duplicate rows: a
    duplicate would sit in two folds and be scored on the rows it was learnt from.
    """

    def __init__(self, path: Path, rows, text_col: str = "text", label_col: str = "label") -> None:
        self.path, self.rows = Path(path), rows  # rows: a DataFrame with text and label
        self.text_col, self.label_col = text_col, label_col  # the file's own column names

    @classmethod
    def load(cls, path: Path, labels: list[str] | None = None, text_col: str = "text", label_col: str = "label",
             min_per_label: int = MIN_SEED_PER_LABEL) -> SeedSet:  # fmt: skip
        path = Path(path)
        rows = read_real(path, text_col, label_col)
        if rows.empty:
            raise RealDataError(f"{path}: no rows with text")
        have = set(rows["label"])
        if labels is not None:
            extra = sorted(have - set(labels))
            if extra:
                raise RealDataError(f"{path}: has rows labelled {', '.join(map(repr, extra))}, which the spec lacks "
                                    f"(spec labels: {', '.join(labels)}); add the label to the spec or drop those rows")  # fmt: skip
            check_labels(path, labels, rows)
        counts = rows["label"].value_counts()
        few = {label: int(n) for label, n in counts.items() if n < min_per_label}
        if few:
            listed = ", ".join(f"{label!r} has {n}" for label, n in sorted(few.items()))
            raise RealDataError(f"{path}: too few rows: {listed}; give at least {min_per_label} per label "
                                "(10 to 100 is best)")  # fmt: skip
        keys = rows["text"].map(normalize_text)
        dupes = keys.duplicated(keep="first")
        if dupes.any():
            first = int(dupes.idxmax())
            original = int(keys[keys == keys[first]].index[0])
            raise RealDataError(f"{path}: {int(dupes.sum())} duplicate rows (data row {first + 1} repeats row "
                                f"{original + 1}: {rows['text'][first][:60]!r}); remove them")  # fmt: skip
        return cls(path, rows.reset_index(drop=True), text_col, label_col)

    @property
    def labels(self) -> list[str]:
        return sorted(set(self.rows["label"]))

    def per_label(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.rows["label"].value_counts().sort_index().items()}

    def folds(self, k: int = 2, seed: int = 0) -> list:
        """``k`` disjoint folds, stratified by label: each label's rows are shuffled (seeded) and dealt in turn."""
        rng = random.Random(derive_seed(seed, "seed-folds"))
        parts: list[list[int]] = [[] for _ in range(k)]
        for label in self.labels:
            index = self.rows.index[self.rows["label"] == label].tolist()
            rng.shuffle(index)
            for i, row in enumerate(index):
                parts[i % k].append(row)
        return [self.rows.loc[sorted(p)].reset_index(drop=True) for p in parts]
