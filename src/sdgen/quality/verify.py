"""Label verification: a model reads each kept text and picks its label, its output constrained to the label set.

The classifier prompt is rendered once around a sentinel (like generation prompts), so every
request shares the instructions and examples and the prefix cache reuses them.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from sdgen.engines.base import Engine, Request
from sdgen.progress import ProgressListener
from sdgen.prompts import PromptMode, detect_mode, render_around
from sdgen.spec import GenerationParams, Spec

_TEXT_SENTINEL = "\x00SDGEN_TEXT\x00"
INVALID = ""  # a verifier output outside the label set (should not happen with constrained decoding)


@dataclass
class Agreement:
    agree: int = 0
    total: int = 0

    @property
    def rate(self) -> float:
        return self.agree / self.total if self.total else 0.0


@dataclass
class Verification:
    """What the verifier said: agreement per label and per generating model."""

    model: str
    action: str
    by_label: dict[str, Agreement] = field(default_factory=dict)
    by_model: dict[str, Agreement] = field(default_factory=dict)
    confusion: Counter = field(default_factory=Counter)  # (label, verified_label) -> rows
    generated_tokens: int = 0
    seconds: float = 0.0
    load_seconds: float = 0.0

    @property
    def overall(self) -> Agreement:
        return Agreement(sum(a.agree for a in self.by_label.values()), sum(a.total for a in self.by_label.values()))

    def stats(self, spec: Spec) -> dict:
        """JSON-ready figures, labels in spec order."""
        return {
            "model": self.model, "action": self.action, "generated_tokens": self.generated_tokens,
            "seconds": round(self.seconds, 3), "load_seconds": round(self.load_seconds, 3),
            "by_label": {k: dataclasses.asdict(self.by_label[k]) for k in spec.labels if k in self.by_label},
            "by_model": {k: dataclasses.asdict(a) for k, a in self.by_model.items()},
        }  # fmt: skip

    def record(self, label: str, model: str, verified: str) -> None:
        agrees = int(label == verified)
        for table, key in ((self.by_label, label), (self.by_model, model)):
            entry = table.setdefault(key, Agreement())
            entry.agree += agrees
            entry.total += 1
        self.confusion[(label, verified)] += 1


class ClassifierPrompt:
    """Prompts that ask a model for the label of one text, for the model's prompt mode."""

    def __init__(self, spec: Spec, engine: Engine) -> None:
        self.spec = spec
        self.mode = detect_mode(engine.chat_template, engine.render_chat)
        self._head, self._tail = self._frame(engine)

    def build(self, text: str) -> str:
        return self._head + " ".join(text.split()) + self._tail

    def _instructions(self) -> str:
        spec = self.spec
        lines = [f"Task: {spec.task.strip()}", "", "Labels and what they mean:"]
        lines += [f"- {k}: {v}" if v else f"- {k}" for k, v in spec.labels.items()]
        lines += ["", f"Read the text and answer with its label only: one of {', '.join(spec.labels)}."]
        return "\n".join(lines)

    def _frame(self, engine: Engine) -> tuple[str, str]:
        examples = self.spec.examples
        if self.mode is PromptMode.COMPLETION:
            shots = "".join(f"Text: {' '.join(ex.output.split())}\nLabel: {ex.label}\n\n" for ex in examples)
            return f"{self._instructions()}\n\n{shots}Text: ", "\nLabel:"
        messages = [{"role": "system", "content": self._instructions()}]
        for ex in examples:
            messages += [
                {"role": "user", "content": f"Text: {' '.join(ex.output.split())}"},
                {"role": "assistant", "content": ex.label},
            ]
        messages.append({"role": "user", "content": f"Text: {_TEXT_SENTINEL}"})
        return render_around(messages, self.mode, engine.render_chat, _TEXT_SENTINEL)


def classify(
    spec: Spec,
    engine: Engine,
    texts: Iterable[str],
    verification: Verification,
    progress: ProgressListener | None = None,
    between: Callable[[], None] | None = None,
) -> list[str]:
    """The verifier's label for each text, in order (INVALID when its output is not a label)."""
    prompt = ClassifierPrompt(spec, engine)
    choices = tuple(spec.labels)
    params = GenerationParams(max_new_tokens=64, temperature=0.0, repetition_penalty=1.0)
    requests = (Request(i, prompt.build(text), params, 0, set(), choices) for i, text in enumerate(texts))
    answers: dict[int, str] = {}
    t0 = time.perf_counter()
    for result in engine.generate(requests):
        if between is not None:
            between()  # e.g. stop here when Ctrl-C was pressed
        answer = result.text.strip()
        answers[result.id] = answer if answer in spec.labels else INVALID
        verification.generated_tokens += result.generated_tokens
        if progress is not None:
            progress.update(1, result.generated_tokens)
    verification.seconds += time.perf_counter() - t0
    return [answers[i] for i in range(len(answers))]
