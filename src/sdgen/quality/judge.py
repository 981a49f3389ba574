"""The judge: a model reads a generated text and picks its label, its output constrained to the label set.

Judge requests share the generating engine's batches (a few prompt tokens and one label each). The
classifier prompt is rendered once around a sentinel, like generation prompts, so every judge
request shares the instructions and examples and the prefix cache reuses them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from sdgen.prompts import ChatRenderer, PromptMode, render_around
from sdgen.spec import GenerationParams, Spec

_TEXT_SENTINEL = "\x00SDGEN_TEXT\x00"
EXAMPLE_CHARS = 200  # a real row shown as an example, and a judged text, are cut to this many characters
JUDGE_PARAMS = GenerationParams(max_new_tokens=16, temperature=0.0, repetition_penalty=1.0)


@dataclass
class Agreement:
    agree: int = 0
    total: int = 0

    @property
    def rate(self) -> float:
        return self.agree / self.total if self.total else 0.0


@dataclass
class JudgeStats:
    """What the judge said: agreement per label and per generating model, and what judging cost."""

    action: str
    by_label: dict[str, Agreement] = field(default_factory=dict)
    by_model: dict[str, Agreement] = field(default_factory=dict)
    confusion: Counter = field(default_factory=Counter)  # (label, judged label) -> rows
    unsure: int = 0  # rows given their own label, below judge.min_confidence
    requests: int = 0
    prompt_chars: int = 0
    generated_tokens: int = 0

    @property
    def overall(self) -> Agreement:
        return Agreement(sum(a.agree for a in self.by_label.values()), sum(a.total for a in self.by_label.values()))

    @property
    def rejected(self) -> int:
        overall = self.overall
        return overall.total - overall.agree

    def record(self, label: str, model: str, judged: str, sure: bool = True) -> bool:
        """Count one verdict; True when the row keeps its label (the judge gave it, and surely enough)."""
        agrees = label == judged and sure
        self.unsure += int(label == judged and not sure)
        for table, key in ((self.by_label, label), (self.by_model, model)):
            entry = table.setdefault(key, Agreement())
            entry.agree += int(agrees)
            entry.total += 1
        self.confusion[(label, judged)] += 1
        return agrees

    def restore(self, dataset, rejected) -> None:
        """Counts of an interrupted run, from its files: kept rows agreed (flagged ones say so), rejected ones did not."""
        for record in dataset.to_dict("records"):
            judged = record.get("judged_label") or record["label"]
            self.record(record["label"], record["model"], judged, record.get("agrees", True))
        if rejected is not None:
            for record in rejected.to_dict("records"):
                self.record(record["label"], record["model"], record["judged_label"], sure=False)

    def stats(self, spec: Spec) -> dict:
        """JSON-ready figures, labels in spec order."""
        return {
            "action": self.action, "requests": self.requests, "generated_tokens": self.generated_tokens,
            "rejected": self.rejected, "unsure": self.unsure,
            "by_label": {k: asdict(self.by_label[k]) for k in spec.labels if k in self.by_label},
            "by_model": {k: asdict(a) for k, a in self.by_model.items()},
        }  # fmt: skip


def clip(text: str) -> str:
    return " ".join(str(text).split())[:EXAMPLE_CHARS]


def examples_prefix(real, labels: list[str], seed: int = 0) -> str:
    """The instruction and every row of ``real`` (text, label) as a labelled example, shuffled: a plain completion
    prompt, which a chat model reads as well as a chat turn (the prefix every judged text shares)."""
    shown = real.sample(frac=1, random_state=seed)
    shots = "\n".join(f"Text: {clip(t)}\nLabel: {label}" for t, label in zip(shown["text"], shown["label"]))
    return f"Label each text as one of: {', '.join(labels)}.\n\n{shots}\n\n"


def prompt(prefix: str, text: str) -> str:
    return f"{prefix}Text: {clip(text)}\nLabel:"


class JudgePrompt:
    """Prompts that ask a model for the label of one text, in the model's prompt mode; shown ``real`` rows (text,
    label), the prompt is those rows as labelled examples (`examples_prefix`) instead of the spec's task."""

    def __init__(self, spec: Spec, mode: PromptMode, render: ChatRenderer | None, real=None) -> None:
        self.spec = spec
        self.mode = mode
        self.choices = tuple(spec.labels)
        self._real = real is not None
        self._head, self._tail = (examples_prefix(real, list(spec.labels), spec.seed), "") if self._real \
            else self._frame(render)  # fmt: skip

    def build(self, text: str) -> str:
        if self._real:
            return prompt(self._head, text)
        return self._head + " ".join(text.split()) + self._tail

    def _instructions(self) -> str:
        spec = self.spec
        lines = [f"Task: {spec.task.strip()}", "", "Labels and what they mean:"]
        for label, description in spec.labels.items():
            line = f"- {label}: {description}" if description else f"- {label}"
            if spec.label_contrasts.get(label):
                line += f" Not: {spec.label_contrasts[label]}"
            lines.append(line)
        lines += ["", "Read the text and answer with the one label that fits it best: "
                  f"one of {', '.join(spec.labels)}."]  # fmt: skip
        return "\n".join(lines)

    def _frame(self, render: ChatRenderer | None) -> tuple[str, str]:
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
        assert render is not None, "chat modes need the model's chat renderer"
        return render_around(messages, self.mode, render, _TEXT_SENTINEL)
