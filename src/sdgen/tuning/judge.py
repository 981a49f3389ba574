"""The spec's model as a reader of labels: it labels texts with real rows shown as examples in one prompt (few-shot).

On 15 real rows per label, classifiers fitted on a fold read the other fold's real rows barely above guessing on
politeness (37-39% against 33%) and emotion (42-47% against 25%); the model shown the same rows as examples reads
them at 44-56% and 70-73% (docs/tune.md#how-well-a-fold-can-judge). Tune asks it which label each label's generated
rows are mistaken for (`not:` lines); as the score of pilots it ended lower on the real test rows than the panel of
classifiers (docs/tune.md). Every request shares the examples, so the engine's prefix cache computes them once.
"""

from __future__ import annotations

from typing import Callable

from sdgen.quality.judge import examples_prefix, prompt

JUDGE_TOKENS = 4  # the longest label needs 2-3 tokens; the answer is read by its start

# (examples prefix, prompts) -> the model's answers, greedy: what `loop` runs on the kept engine
Answer = Callable[[str, list[str]], list[str]]


def read_label(answer: str, labels: list[str]) -> str:
    """The label the answer starts with (the longest that fits, so "impolite" is not read as "im..."), or ""."""
    answer = answer.strip().lower()
    return next((label for label in sorted(labels, key=len, reverse=True) if answer.startswith(label.lower())), "")


def judge_texts(answer: Answer, real, texts: list[str], labels: list[str], seed: int = 0) -> list[str]:
    """The label the model gives each of ``texts``, shown ``real`` rows as examples ("" for an answer no label starts)."""
    prefix = examples_prefix(real, labels, seed)
    return [read_label(a, labels) for a in answer(prefix, [prompt(prefix, t) for t in texts])]


def agreement(given: list[str], judged: list[str]) -> float:
    """The share of rows the judge gave the label they were generated (or labelled) for."""
    return sum(g == j for g, j in zip(given, judged)) / len(given) if given else 0.0
