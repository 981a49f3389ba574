"""Prompt styles and their rendering for chat, no-system-role and base (completion) models.

Everything shared by all rows comes first and the row-specific request last, so the engine's
prefix cache reuses the shared part. The chat template is rendered once around a sentinel and
each row's prompt is then a string concatenation: no template work per row.
"""

from __future__ import annotations

from enum import Enum
from typing import Callable

import jinja2
import jinja2.sandbox

from sdgen.errors import SpecError
from sdgen.plan import PlannedRow
from sdgen.spec import Spec

DEFAULT_SYSTEM_PROMPT = (
    "You write realistic example texts for training text classifiers. "
    "You write one text at a time and reply with that text only."
)
_ROW_SENTINEL = "\x00SDGEN_ROW\x00"
_SYSTEM_SENTINEL = "\x00SDGEN_SYSTEM\x00"

ChatRenderer = Callable[[list[dict[str, str]]], str]
"""Renders chat messages with the model's own template, ending with the assistant turn."""


class PromptMode(str, Enum):
    CHAT = "chat"  # the model's chat template, with a system turn
    CHAT_NO_SYSTEM = "chat-no-system"  # chat template without a system role: system text folded into the user turn
    COMPLETION = "completion"  # base model: a plain prompt that ends where the output begins


def detect_mode(chat_template: str | None, render: ChatRenderer | None) -> PromptMode:
    """Pick the prompt mode from the model's chat template (probing whether it keeps a system turn).

    A template without a system role either raises on one (Gemma) or, through GenAI's template
    engine, silently merges it into the user turn; both count as CHAT_NO_SYSTEM.
    """
    if not chat_template or render is None:
        return PromptMode.COMPLETION
    probe = [{"role": "system", "content": _SYSTEM_SENTINEL}, {"role": "user", "content": "hi"}]
    try:
        rendered = render(probe)
    except Exception:  # a template that refuses a system turn: that is the answer we probe for
        return PromptMode.CHAT_NO_SYSTEM
    if _SYSTEM_SENTINEL not in rendered:
        return PromptMode.CHAT_NO_SYSTEM
    for glue in ("\n", "\n\n", " ", ""):
        if rendered == render([{"role": "user", "content": _SYSTEM_SENTINEL + glue + "hi"}]):
            return PromptMode.CHAT_NO_SYSTEM
    return PromptMode.CHAT


def render_around(
    messages: list[dict[str, str]], mode: PromptMode, render: ChatRenderer, sentinel: str
) -> tuple[str, str]:
    """(head, tail) of the rendered chat around ``sentinel``, rendered once so each prompt is a concatenation.

    ``messages`` start with a system turn; a template without a system role gets it folded into the first
    user turn.
    """
    if mode is PromptMode.CHAT_NO_SYSTEM:
        system, first, *rest = messages
        messages = [{"role": "user", "content": f"{system['content']}\n\n{first['content']}"}, *rest]
    rendered = render(messages)
    if rendered.count(sentinel) != 1:
        raise SpecError("the model's chat template altered the prompt; use a custom prompt_style template")
    head, tail = rendered.split(sentinel)
    return head, tail


class PromptBuilder:
    """Builds the prompt string for each planned row of a spec, for one model's prompt mode."""

    def __init__(self, spec: Spec, mode: PromptMode, render: ChatRenderer | None = None) -> None:
        self.spec = spec
        self.mode = mode
        self.system = (spec.system_prompt or DEFAULT_SYSTEM_PROMPT).strip()
        self._template = _load_template(spec) if spec.template_path else None
        self._head, self._tail = self._frame(render)

    @property
    def response_prefix(self) -> str:
        """Text the prompt puts at the start of the answer; the model continues from it.

        Small models follow a format far better when its first marker is already written for them.
        The extractor sees ``response_prefix + generated text``.
        """
        if self._template is not None:
            return ""
        if self.spec.wants_reasoning:
            return "OUTPUT:"
        return "Text:" if self.mode is PromptMode.COMPLETION else ""

    @property
    def stop_strings(self) -> set[str]:
        """Where a model starts on another example instead of ending its answer."""
        if self._template is not None:
            return set()
        stops = {"\nLabel:", "\nlabel:"}
        if self.spec.wants_reasoning:
            stops |= {"\nOUTPUT:", "\nOutput:"}
        return stops

    def build(self, row: PlannedRow) -> str:
        return self._head + self._row_part(row) + self._tail + self._answer_start()

    def _answer_start(self) -> str:
        # In completion mode the row part already ends with the marker.
        return self.response_prefix if self.mode is not PromptMode.COMPLETION else ""

    # -- shared and row-specific text ------------------------------------------------------------

    def _instructions(self) -> str:
        """The task text every chat prompt starts with (system turn, or folded into the first user turn)."""
        spec = self.spec
        lines = [self.system, "", f"Task: {spec.task.strip()}", ""]
        if spec.wants_reasoning:
            lines.append("Labels and what they mean:")
            lines += [f"- {k}: {v}" if v else f"- {k}" for k, v in spec.labels.items()]
            lines += ["", "For each request, answer with OUTPUT: and the text, then REASONING: and why it has its label."]
        else:
            lines.append(f"Labels: {', '.join(spec.labels)}.")
            lines += ["", "For each request, return only one output: the text itself, with no title or explanation."]
        return "\n".join(lines)

    def _request(self, label: str, category: str, type_: str) -> str:
        kind = "text and why it is" if self.spec.wants_reasoning else "text that is"
        return f"Write one new {kind} {label}. Category: {category}. Type: {type_}."

    def _answer(self, output: str, reasoning: str | None) -> str:
        if self.spec.wants_reasoning:
            return f"OUTPUT: {output.strip()}\nREASONING: {(reasoning or '').strip()}"
        return output.strip()

    def _row_part(self, row: PlannedRow) -> str:
        if self._template is not None:
            return self._render_template(row)
        if self.mode is PromptMode.COMPLETION:
            return f"Label: {row.label}\nCategory: {row.category}\nType: {row.type}\n{self.response_prefix}"
        return self._request(row.label, row.category, row.type)

    def _chat_messages(self, user_turn: str) -> list[dict[str, str]]:
        """System instructions, each example as a request/answer exchange, then the row's request.

        Small chat models imitate demonstrated turns far better than examples quoted in one message,
        and all of it except the last turn is shared by every row (the prefix cache reuses it).
        """
        if self._template is not None:
            return [{"role": "system", "content": self.system}, {"role": "user", "content": user_turn}]
        messages = [{"role": "system", "content": self._instructions()}]
        for ex in self.spec.examples:
            messages.append({"role": "user", "content": self._request(ex.label, ex.category, ex.type)})
            messages.append({"role": "assistant", "content": self._answer(ex.output, ex.reasoning)})
        messages.append({"role": "user", "content": user_turn})
        return messages

    def _completion_shared(self) -> str:
        lines = [self.system, "", f"Task: {self.spec.task.strip()}"]
        if self.spec.wants_reasoning:
            lines += ["", "Labels:"] + [f"- {k}: {v}" if v else f"- {k}" for k, v in self.spec.labels.items()]
        for ex in self.spec.examples:
            lines += ["", f"Label: {ex.label}", f"Category: {ex.category}", f"Type: {ex.type}"]
            if self.spec.wants_reasoning:
                lines.append(f"OUTPUT: {ex.output.strip()}")
                lines.append(f"REASONING: {(ex.reasoning or '').strip()}")
            else:
                lines.append(f"Text: {ex.output.strip()}")
        return "\n".join(lines) + "\n\n"

    # -- framing: chat template or plain completion ----------------------------------------------

    def _frame(self, render: ChatRenderer | None) -> tuple[str, str]:
        """(head, tail) such that a row's prompt is head + row part + tail."""
        if self.mode is PromptMode.COMPLETION:
            return ("" if self._template else self._completion_shared()), ""  # no trailing space: BPE puts it on the next token
        assert render is not None, "chat modes need the model's chat renderer"
        return render_around(self._chat_messages(_ROW_SENTINEL), self.mode, render, _ROW_SENTINEL)

    def _render_template(self, row: PlannedRow) -> str:
        spec = self.spec
        try:
            return self._template.render(
                task=spec.task,
                labels=spec.labels,
                categories=spec.categories,
                examples=[ex.model_dump() for ex in spec.examples],
                label=row.label,
                label_description=spec.labels[row.label],
                category=row.category,
                type=row.type,
                row=row.row,
            )
        except jinja2.TemplateError as exc:
            raise SpecError(f"{spec.template_path}: template error: {exc}") from None


def _load_template(spec: Spec) -> jinja2.Template:
    path = spec.template_path
    env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
    try:
        return env.from_string(path.read_text(encoding="utf-8"))
    except jinja2.TemplateSyntaxError as exc:
        raise SpecError(f"{path}: template syntax error at line {exc.lineno}: {exc.message}") from None
