"""What a generated dataset is worth to a classifier, measured against real, human-labelled text.

- **Train on synthetic, test on real**: a TF-IDF + logistic-regression classifier trained on the
  generated rows, scored on held-out real rows (macro-F1, per-label F1, a confusion matrix).
- **Reference**: the same classifier trained on as many real rows, from the rest of the real file,
  scored on the same held-out rows; the ratio of the two F1s is the figure to watch.
- **Agreement**: a classifier trained on real rows labels every generated row; the share that gets
  the label it was generated for, per label and per model. Beside it, the same classifier's agreement
  with the human labels of the held-out real rows: what real text reaches.
- **Learning curve** (``seed_file``): a classifier trained on a user's small real sample alone against
  one trained on that sample plus the generated rows, both scored on the held-out real rows: does
  the data add anything to the rows the user already has? Rows of the sample are left out of the
  real file's test and reference rows.
- **Label shares**: where the real rows' labels are far from the dataset's shares, the generated rows drawn
  at the real shares (as many as they allow) are scored too, and the report says whether generating at those
  shares (``balance.shares``) would help: a classifier learns how common each label is from its training rows.
- **Diversity**: distinct-1/2 over the generated texts and their mean pairwise TF-IDF similarity.
- **Why rows are misread**: per label, which other label the real-trained classifier reads its rows
  as, and the words that mark the label for each classifier (real-trained vs synthetic-trained): what
  real rows of a label say that the generated ones do not is what a label description should say.

scikit-learn only: no torch. ``evaluate()`` writes ``<stem>.eval.md``, ``<stem>.eval.json`` and
``<stem>.eval.confusion.png`` beside the dataset.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sdgen.errors import SdgenError
from sdgen.quality.classifier import text_classifier
from sdgen.quality.report import distinct_n
from sdgen.realdata import check_labels, read_real
from sdgen.store.files import read_dataset, sidecar

TEST_ROWS = 2000  # held-out real rows at most (stratified); the rest is the reference's pool
PAIRWISE_SAMPLE = 2000  # texts sampled for the mean pairwise similarity
MARKER_WORDS = 8  # words per label in "what marks each label"
# A label this much more or less common among the real rows than among the generated ones gets the shares figure:
# movie reviews' plot summaries are 8% of the real rows and a third of an even dataset (stop 56's tuned rows, seed 1:
# 191 of them drawn at the real shares score 0.92x the real-trained reference, as many at their own shares 0.77x).
SHARES_GAP = 0.1
SHARES_DRAWS = 5  # draws of the generated rows at the real shares, averaged: one draw of a few hundred rows is noisy


class EvalError(SdgenError):
    """The dataset cannot be evaluated as given."""


@dataclass
class EvalReport:
    dataset: str
    real: str
    labels: list[str]
    synthetic_rows: int
    real_test_rows: int
    macro_f1: float
    per_label_f1: dict[str, float]
    reference_rows: int | None = None  # real rows the reference classifier trained on
    reference_macro_f1: float | None = None
    agreement: float = 0.0
    real_agreement: float | None = None  # the same classifier on the held-out real rows: agreement's ceiling
    agreement_by_label: dict[str, float] = field(default_factory=dict)
    agreement_by_model: dict[str, float] = field(default_factory=dict)
    distinct_1: float = 0.0
    distinct_2: float = 0.0
    mean_pairwise_similarity: float = 0.0
    confusion: list[list[int]] = field(default_factory=list)  # rows: true label, columns: predicted (labels order)
    read_as: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> other label -> share of its rows
    markers: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # label -> {"real", "generated"} -> words
    seed: str | None = None  # the user's real sample (`seed_file`)
    seed_rows: int | None = None
    seed_macro_f1: float | None = None  # a classifier trained on the seed alone
    hybrid_macro_f1: float | None = None  # ... on the seed plus the generated rows
    real_shares: dict[str, float] = field(default_factory=dict)  # each label's share of the real rows outside the test
    shares_rows: int | None = None  # generated rows drawn at the real shares (as many as the rows allow)
    shares_macro_f1: float | None = None  # macro-F1 of those rows, mean of `SHARES_DRAWS` draws
    as_generated_macro_f1: float | None = None  # ... of as many rows drawn at the dataset's own shares
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the figures may mislead: said before anything else

    @property
    def ratio(self) -> float | None:
        return round(self.macro_f1 / self.reference_macro_f1, 3) if self.reference_macro_f1 else None

    @property
    def hybrid_gain(self) -> float | None:
        """Macro-F1 of seed + generated rows over the seed's alone."""
        return round(self.hybrid_macro_f1 / self.seed_macro_f1, 3) if self.seed_macro_f1 else None

    @property
    def helps(self) -> bool | None:
        """Do the generated rows raise the seed's macro-F1 (None without a seed)."""
        return None if self.hybrid_macro_f1 is None else self.hybrid_macro_f1 > self.seed_macro_f1

    @property
    def shares_help(self) -> bool | None:
        """Do the generated rows drawn at the real label shares score higher than as many drawn at their own shares
        (None where the shares are close)."""
        return None if self.shares_macro_f1 is None else self.shares_macro_f1 > self.as_generated_macro_f1

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio_to_reference": self.ratio, "hybrid_gain": self.hybrid_gain}

    def shares_line(self) -> str:
        """What the real label shares would do for these rows, and the spec lines that ask for them when they help."""
        shares = ", ".join(f"{lab} {self.real_shares[lab]:.0%}" for lab in self.labels)
        ref = self.reference_macro_f1
        ratio = f" ({self.shares_macro_f1 / ref:.2f} of real-trained)" if ref else ""
        figures = (f"{self.shares_rows} of these rows drawn at the real rows' label shares ({shares}) score macro-F1 "
                   f"{self.shares_macro_f1:.3f}{ratio}, as many drawn at the dataset's own shares "
                   f"{self.as_generated_macro_f1:.3f}")  # fmt: skip
        if not self.shares_help:
            return f"{figures}: generating at those shares would not help these rows"
        asked = ", ".join(f"{lab}: {self.real_shares[lab]:.3g}" for lab in self.labels)
        return f"{figures}: generate at them with `balance: {{shares: {{{asked}}}}}` in the spec"

    def summary(self) -> str:
        ref = f" ({self.ratio:.2f} of real-trained {self.reference_macro_f1:.3f})" if self.reference_macro_f1 else ""
        text = f"macro-F1 {self.macro_f1:.3f}{ref}, agreement {self.agreement:.0%}, distinct-2 {self.distinct_2:.3f}"
        return text + (f"; {self.hybrid_line()}" if self.seed_macro_f1 is not None else "")

    def hybrid_line(self) -> str:
        """The learning-curve figure in one line, saying plainly when the generated rows do not help."""
        figures = (f"seed + generated rows {self.hybrid_macro_f1:.3f} against the seed's {self.seed_rows} rows alone "
                   f"{self.seed_macro_f1:.3f} ({self.hybrid_gain:.2f}x)")  # fmt: skip
        return figures if self.helps else f"the generated rows do not help: {figures}"


def check_real_labels(real: Path, text_col: str, label_col: str, labels: list[str]) -> None:
    """Fail now, before a long run, when the real file cannot score a dataset with these labels."""
    check_labels(real, labels, read_real(real, text_col, label_col))


def _split(real, labels: list[str], seed: int):
    """(test rows, reference pool): the file's own test split when it has a `split` column, else a stratified split."""
    from sklearn.model_selection import train_test_split

    real = real[real["label"].isin(labels)].reset_index(drop=True)
    if "split" in real.columns and set(real["split"]) >= {"train", "test"}:
        return real[real["split"] == "test"].reset_index(drop=True), real[real["split"] != "test"].reset_index(drop=True)
    test_size = min(TEST_ROWS, len(real) // 2)
    pool, test = train_test_split(real, test_size=test_size, stratify=real["label"], random_state=seed)
    return test.reset_index(drop=True), pool.reset_index(drop=True)


def _sample(pool, rows: int, seed: int):
    """``rows`` rows of ``pool``, stratified by label (the whole pool when it has no more)."""
    from sklearn.model_selection import train_test_split

    if rows >= len(pool):
        return pool
    sample, _ = train_test_split(pool, train_size=rows, stratify=pool["label"], random_state=seed)
    return sample


def _mean_pairwise_similarity(texts: list[str], seed: int) -> float:
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(texts) < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    if len(texts) > PAIRWISE_SAMPLE:
        texts = [texts[i] for i in rng.choice(len(texts), PAIRWISE_SAMPLE, replace=False)]
    vectors = TfidfVectorizer(sublinear_tf=True).fit_transform(texts)
    sims = (vectors @ vectors.T).toarray()
    n = len(texts)
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def evaluate(dataset: str | Path, real: str | Path, *, text_col: str = "text", label_col: str = "label",
             seed: int = 0, seed_file: str | Path | None = None, write: bool = True) -> EvalReport:  # fmt: skip
    """Score a generated dataset against a real labelled file (see the module docstring).

    ``seed_file``: the user's own small real sample (same columns): adds the learning-curve figure.
    """
    from sklearn.metrics import confusion_matrix, f1_score

    dataset = Path(dataset)
    if not dataset.exists():
        raise EvalError(f"{dataset}: no such dataset file")
    synthetic = read_dataset(dataset)
    if not {"text", "label"} <= set(synthetic.columns):
        raise EvalError(f"{dataset}: not a labelled dataset (it needs text and label columns)")
    if "duplicate" in synthetic.columns:
        synthetic = synthetic[synthetic["duplicate"].eq("")]  # rows flagged by --keep-duplicates are not data
    real_df = read_real(Path(real), text_col, label_col)
    labels = sorted(set(synthetic["label"]))
    check_labels(Path(real), labels, real_df)
    if len(labels) < 2:
        raise EvalError(f"{dataset}: a classifier needs at least two labels, the dataset has {len(labels)}")
    notes = []
    extra = sorted(set(real_df["label"]) - set(labels))
    if extra:
        notes.append(f"real rows labelled {', '.join(extra)} (not in the dataset) are left out")
    warnings: list[str] = []
    seed_df = None
    if seed_file is not None:
        seed_df, real_df, warnings = _apart_from_seed(Path(seed_file), Path(real), real_df, labels, text_col, label_col, notes)
    test, pool = _split(real_df, labels, seed)
    model = text_classifier(seed).fit(synthetic["text"], synthetic["label"])
    predicted = model.predict(test["text"])
    report = EvalReport(
        dataset=str(dataset), real=str(real), labels=labels, synthetic_rows=len(synthetic), real_test_rows=len(test),
        macro_f1=round(float(f1_score(test["label"], predicted, labels=labels, average="macro", zero_division=0)), 4),
        per_label_f1={lab: round(float(f), 4) for lab, f in zip(labels, f1_score(
            test["label"], predicted, labels=labels, average=None, zero_division=0))},
        confusion=confusion_matrix(test["label"], predicted, labels=labels).tolist(), notes=notes,
    )  # fmt: skip
    reference_train = _sample(pool, len(synthetic), seed)
    if reference_train["label"].nunique() == len(labels):
        ref = text_classifier(seed).fit(reference_train["text"], reference_train["label"])
        report.reference_rows = len(reference_train)
        report.reference_macro_f1 = round(float(f1_score(test["label"], ref.predict(test["text"]), labels=labels,
                                                          average="macro", zero_division=0)), 4)  # fmt: skip
        if len(reference_train) < len(synthetic):
            notes.append(f"the reference trained on all {len(reference_train)} real rows outside the test set")
    else:
        notes.append("the real file has too few rows outside the test set for a reference")
    judge = RealClassifier(pool, seed)
    read = judge.predict(synthetic["text"])
    agrees = read == synthetic["label"].to_numpy(dtype=object)
    report.agreement = round(float(agrees.mean()), 4)
    report.real_agreement = round(judge.agreement(test["text"], test["label"]), 4)
    report.agreement_by_label = _rates(agrees, synthetic["label"])
    report.read_as = _read_as(read, synthetic["label"])
    real_words, generated_words = _markers(judge.model), _markers(model)
    report.markers = {lab: {"real": real_words[lab], "generated": generated_words[lab]} for lab in labels}
    if "model" in synthetic.columns:
        report.agreement_by_model = _rates(agrees, synthetic["model"])
    texts = synthetic["text"].tolist()
    report.distinct_1, report.distinct_2 = round(distinct_n(texts, 1), 4), round(distinct_n(texts, 2), 4)
    report.mean_pairwise_similarity = round(_mean_pairwise_similarity(texts, seed), 4)
    report.warnings = warnings
    _at_real_shares(report, synthetic, pool, test, seed)
    if seed_df is not None:
        _learning_curve(report, seed_df, synthetic, test, seed, Path(seed_file))
    if write:
        write_eval(dataset, report)
    return report


def _apart_from_seed(seed_file: Path, real: Path, real_df, labels: list[str], text_col: str, label_col: str,
                     notes: list[str]):  # fmt: skip
    """(seed rows, real rows without them, warnings): a row of the seed is never a test or reference row."""
    from sdgen.text import normalize_text
    from sdgen.realdata import SeedSet

    seed_df = SeedSet.load(seed_file, labels, text_col, label_col, min_per_label=1).rows
    if seed_file.resolve() == real.resolve():
        return seed_df, real_df, [f"the seed file is also the real file ({real.name}): these figures are scored on the "
                                  "rows the spec was tuned on; pass real rows the seed does not hold"]  # fmt: skip
    keys = set(seed_df["text"].map(normalize_text))
    inside = real_df["text"].map(normalize_text).isin(keys)
    if inside.any():
        notes.append(f"{int(inside.sum())} real rows that are also in the seed were left out of the test and reference rows")
    return seed_df, real_df[~inside].reset_index(drop=True), []


def _learning_curve(report: EvalReport, seed_df, synthetic, test, seed: int, seed_file: Path) -> None:
    """Macro-F1 on the test rows of a classifier trained on the seed alone, and on the seed plus the generated rows."""
    import pandas as pd
    from sklearn.metrics import f1_score

    def score(train) -> float:
        model = text_classifier(seed).fit(train["text"], train["label"])
        return round(float(f1_score(test["label"], model.predict(test["text"]), labels=report.labels, average="macro",
                                    zero_division=0)), 4)  # fmt: skip

    report.seed, report.seed_rows = str(seed_file), len(seed_df)
    report.seed_macro_f1 = score(seed_df)
    report.hybrid_macro_f1 = score(pd.concat([seed_df[["text", "label"]], synthetic[["text", "label"]]], ignore_index=True))


def _at_real_shares(report: EvalReport, synthetic, pool, test, seed: int) -> None:
    """Where some label's share of the real rows (outside the test) is `SHARES_GAP` off its share of the dataset:
    the macro-F1 of the most generated rows that can be drawn at the real shares, and of as many drawn at the
    dataset's own shares (fewer rows score lower by themselves), each the mean of `SHARES_DRAWS` draws."""
    from sklearn.metrics import f1_score

    real = pool["label"].value_counts(normalize=True)
    report.real_shares = {lab: round(float(real.get(lab, 0.0)), 4) for lab in report.labels}
    counts = synthetic["label"].value_counts()
    own = {lab: float(counts.get(lab, 0)) / len(synthetic) for lab in report.labels}
    if min(report.real_shares.values()) <= 0 or max(abs(report.real_shares[lab] - own[lab])
                                                    for lab in report.labels) < SHARES_GAP:  # fmt: skip
        return
    rows = int(min(counts.get(lab, 0) / share for lab, share in report.real_shares.items()))

    def mean_f1(per_label: dict[str, int]) -> float:
        scores = []
        for draw in range(SHARES_DRAWS):
            train = _draw(synthetic, per_label, seed + draw)
            model = text_classifier(seed).fit(train["text"], train["label"])
            scores.append(f1_score(test["label"], model.predict(test["text"]), labels=report.labels,
                                   average="macro", zero_division=0))  # fmt: skip
        return round(float(sum(scores) / len(scores)), 4)

    def counts_at(shares: dict[str, float]) -> dict[str, int]:
        return {lab: max(1, round(rows * share)) for lab, share in shares.items()}

    at_real = counts_at(report.real_shares)
    report.shares_rows = sum(at_real.values())
    report.shares_macro_f1 = mean_f1(at_real)
    report.as_generated_macro_f1 = mean_f1(counts_at(own))


def _draw(rows, per_label: dict[str, int], seed: int):
    """``per_label[label]`` of ``rows`` of each label, drawn without replacement (all of a label that has fewer)."""
    import pandas as pd

    parts = [rows[rows["label"] == lab] for lab in per_label]
    return pd.concat([part.sample(min(len(part), per_label[lab]), random_state=seed)
                      for part, lab in zip(parts, per_label)])  # fmt: skip


class RealClassifier:
    """The agreement judge: a classifier trained on real rows, asked which label each text has."""

    def __init__(self, pool, seed: int = 0) -> None:
        self.model = text_classifier(seed).fit(pool["text"], pool["label"])

    @classmethod
    def from_file(cls, real: Path, text_col: str = "text", label_col: str = "label", seed: int = 0) -> RealClassifier:
        """Trained on a real file's rows outside its test split (as in `evaluate`)."""
        df = read_real(Path(real), text_col, label_col)
        _, pool = _split(df, sorted(set(df["label"])), seed)
        return cls(pool, seed)

    @property
    def labels(self) -> set[str]:
        """The labels it can give (the real file's)."""
        return {str(label) for label in self.model.classes_}

    def predict(self, texts):
        """The label it gives each text (an object array)."""
        return self.model.predict(list(texts))

    def agrees(self, texts, labels):
        """Per text: does the classifier give it its label (a boolean array)."""
        import numpy as np

        return self.predict(texts) == np.asarray(list(labels), dtype=object)

    def agreement(self, texts, labels) -> float:
        """The share of ``texts`` the classifier gives their ``labels``."""
        return float(self.agrees(texts, labels).mean()) if len(texts) else 0.0


def _read_as(predicted, labels) -> dict[str, dict[str, float]]:
    """Per generated label, the share of its rows the real-trained classifier gives each other label."""
    out: dict[str, dict[str, float]] = {}
    for label in sorted(set(labels)):
        mine = [p for p, lab in zip(predicted, labels) if lab == label]
        others = {str(o): sum(p == o for p in mine) / len(mine) for o in sorted(set(mine)) if o != label}
        out[str(label)] = {o: round(v, 4) for o, v in sorted(others.items(), key=lambda kv: -kv[1])}
    return out


def _markers(pipeline, n: int = MARKER_WORDS) -> dict[str, list[str]]:
    """The n-grams that most raise each label's score in a fitted TF-IDF + logistic-regression pipeline."""
    import numpy as np

    vectorizer, classifier = pipeline[0], pipeline[-1]
    names = vectorizer.get_feature_names_out()
    classes = [str(c) for c in classifier.classes_]
    coef = classifier.coef_
    if coef.shape[0] == 1:  # two labels: one weight row, positive for the second
        coef = np.vstack([-coef[0], coef[0]])
    return {label: [str(names[i]) for i in np.argsort(-coef[k])[:n]] for k, label in enumerate(classes)}


def _rates(agrees, keys) -> dict[str, float]:
    out: dict[str, list[int]] = {}
    for ok, key in zip(agrees, keys):
        out.setdefault(str(key), []).append(int(ok))
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(out.items())}


def write_eval(dataset: Path, report: EvalReport) -> tuple[Path, Path]:
    """``<stem>.eval.json``, ``<stem>.eval.md`` and the confusion-matrix PNG beside the dataset."""
    json_path = sidecar(dataset, "eval", ".json")
    json_path.write_text(json.dumps(report.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    png = sidecar(dataset, "eval.confusion", ".png")
    _confusion_png(report, png)
    md_path = sidecar(dataset, "eval", ".md")
    md_path.write_text(render_eval(report, png.name), encoding="utf-8")
    return md_path, json_path


def render_eval(report: EvalReport, png: str | None = None, heading: str = "#") -> str:
    r = report
    ref = (f"{r.reference_macro_f1:.3f} (trained on {r.reference_rows} real rows); ratio **{r.ratio:.2f}**"
           if r.reference_macro_f1 is not None else "none")  # fmt: skip
    lines = [
        f"{heading} Evaluation against real data", "",
        f"Dataset `{Path(r.dataset).name}` ({r.synthetic_rows} rows) against `{Path(r.real).name}` "
        f"({r.real_test_rows} held-out real rows).", "",
        f"- Train on synthetic, test on real: macro-F1 **{r.macro_f1:.3f}**",
        f"- Reference, the same classifier trained on real rows: {ref}",
        f"- Agreement (a real-trained classifier gives a generated row its label): **{r.agreement:.1%}**"
        + (f" (on held-out real rows the same classifier agrees with the human labels {r.real_agreement:.1%})"
           if r.real_agreement is not None else ""),
        f"- Diversity: distinct-1 {r.distinct_1:.3f}, distinct-2 {r.distinct_2:.3f}, "
        f"mean pairwise TF-IDF similarity {r.mean_pairwise_similarity:.3f}", "",
    ]  # fmt: skip
    if r.shares_macro_f1 is not None:
        lines.insert(-2, f"- Label shares: {r.shares_line()}")
    if r.seed_macro_f1 is not None:
        lines.insert(-2, f"- Learning curve with the user's real rows (`{Path(r.seed).name}`): {r.hybrid_line()}")
    lines[2:2] = [f"**Warning: {w}.**" for w in r.warnings] + ([""] if r.warnings else [])
    lines += ["| label | F1 on real | agreement |", "|---|---|---|"]
    lines += [f"| {lab} | {r.per_label_f1[lab]:.3f} | {r.agreement_by_label.get(lab, 0):.1%} |" for lab in r.labels]
    if r.agreement_by_model:
        lines += ["", "| model | agreement |", "|---|---|"]
        lines += [f"| {m} | {a:.1%} |" for m, a in r.agreement_by_model.items()]
    lines += _marker_lines(r)
    lines += [""] + [f"Note: {n}." for n in r.notes]
    if png:
        lines += ["", f"![confusion matrix]({png})"]
    lines.append("Classifier: TF-IDF (word 1-2 grams) + logistic regression (scikit-learn).")
    return "\n".join(lines) + "\n"


def _marker_lines(r: EvalReport) -> list[str]:
    """Why rows are misread: what each label's rows are read as, and the words that mark it in real and generated rows."""
    if not r.markers:
        return []
    lines = ["", "What marks each label: the words that most raise a label's score for a classifier trained on real "
             "rows and for one trained on these rows. A label's rows read as another label lack its real markers; "
             "describe those in the spec.", "",
             "| label | agreement | read as | real rows' marker words | generated rows' marker words |",
             "|---|---|---|---|---|"]  # fmt: skip
    for lab in r.labels:
        read_as = ", ".join(f"{o} {v:.0%}" for o, v in list(r.read_as.get(lab, {}).items())[:2]) or "-"
        words = r.markers.get(lab, {})
        lines.append(f"| {lab} | {r.agreement_by_label.get(lab, 0):.1%} | {read_as} | "
                     f"{', '.join(words.get('real', []))} | {', '.join(words.get('generated', []))} |")  # fmt: skip
    return lines


def _confusion_png(report: EvalReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(report.labels)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.1 * n + 2))
    ax.imshow(report.confusion, cmap="Blues")
    ax.set_xticks(range(n), report.labels, rotation=30, ha="right")
    ax.set_yticks(range(n), report.labels)
    ax.set_xlabel("predicted by the synthetic-trained classifier")
    ax.set_ylabel("real label")
    for i, row in enumerate(report.confusion):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=9)
    ax.set_title(f"macro-F1 {report.macro_f1:.3f} on real rows")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
