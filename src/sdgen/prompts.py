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
from sdgen.realdata import ExamplePool
from sdgen.spec import Spec

DEFAULT_SYSTEM_PROMPT = (
    "You write realistic example texts for training text classifiers. "
    "You write one text at a time and reply with that text only."
)
_ROW_SENTINEL = "\x00SDGEN_ROW\x00"
_SYSTEM_SENTINEL = "\x00SDGEN_SYSTEM\x00"

def _slot(i: int, part: str) -> str:
    """A placeholder a group's i-th real example replaces (``request``, ``text`` or ``label``)."""
    return f"\x00SDGEN_REAL_{part}_{i}\x00"


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


# Said in the request of a row that replaces a copy of an example (`PlannedRow.unlike_examples`; chat models).
UNLIKE_EXAMPLES = " Do not repeat or closely follow any example above: write a new one."

class PromptBuilder:
    """Builds the prompt string for each planned row of a spec, for one model's prompt mode.

    With real examples (``pool``), rows are grouped by plan id (``examples_from.group_rows``); each
    group's prompt frame holds its own draw of examples and is rendered once.
    """

    def __init__(self, spec: Spec, mode: PromptMode, render: ChatRenderer | None = None, pool: ExamplePool | None = None) -> None:
        self.spec = spec
        self.mode = mode
        self.system = (spec.system_prompt or DEFAULT_SYSTEM_PROMPT).strip()
        self._template = _load_template(spec) if spec.template_path else None
        self._pool = pool
        self._slots = pool.slots if pool is not None else 0
        # The chat template is rendered once, here (never during generation): real examples go in as
        # sentinels that each group's draw replaces by plain substitution.
        self._head, self._tail = self._frame(render)
        self._frames: dict[int, tuple[str, str]] = {}

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
        return self.build_group((row,))

    def build_group(self, rows: tuple[PlannedRow, ...], k: int | None = None) -> str:
        """The prompt asking for ``k`` texts (default: one per row) for rows that share label, category and type;
        a numbered list for several. A planned group the plan leaves short still asks for ``rows_per_request``
        texts, so that its request, and the texts it takes, do not depend on how many rows the run has."""
        head, tail = self._frame_of(rows[0].row, rows[0].label)
        if not self.numbered:
            return head + self._row_part(rows[0]) + tail + self._answer_start()
        row = rows[0]
        request = self._request(row.label, row.category, row.type, k or len(rows), row.unlike_examples,
                                self._anchor_of(row))
        return head + request + tail + "1."

    def prefix_of(self, row_id: int, label: str) -> str:
        """Names the shared prompt prefix of a row's request: the rows of a group of real examples share one (the
        rows of a label, where the examples are its own: ``same_label``)."""
        if not self._rotates:
            return "rows"
        return f"rows:{self._group_of(row_id)}" + (f":{label}" if self._pool.same_label else "")

    def _group_of(self, row_id: int) -> int:
        """The group of rows (by plan id) that shares one draw of real examples."""
        return row_id // self.spec.examples_from.group_rows

    def group_stop_strings(self, k: int) -> set[str]:
        """A numbered answer ends where item k+1 would start."""
        return self.stop_strings | ({f"\n{k + 1}.", f"\n{k + 1})"} if self.numbered else set())

    def group_prefix(self) -> str:
        """What the prompt already wrote of the answer (the extractor sees it in front of the output)."""
        return "1." if self.numbered else self.response_prefix

    @property
    def numbered(self) -> bool:
        """Answers are numbered lists (``rows_per_request`` > 1, a chat model, the fewshot style); demonstrations
        too, so that a request for k texts reads like its examples. Single-row requests (retries) keep the format."""
        spec = self.spec
        return spec.texts_per_request > 1 and self.mode is not PromptMode.COMPLETION and self._template is None \
            and not spec.wants_reasoning

    @property
    def _rotates(self) -> bool:
        """Real examples go in the shared frame, one draw per group (an anchor goes in the request instead)."""
        return self._pool is not None and not self._pool.anchor

    def _anchor_of(self, row: PlannedRow) -> str | None:
        """The real row a request quotes (``examples_from.anchor``), drawn by the request's first row."""
        return self._pool.anchor_for(row.row, row.label) if self._pool is not None and self._pool.anchor else None

    def _frame_of(self, row_id: int, label: str) -> tuple[str, str]:
        if not self._rotates:
            return self._head, self._tail
        group = self._group_of(row_id)
        key = (group, label if self._pool.same_label else None)
        if key not in self._frames:
            if len(self._frames) > 64:  # groups come in plan order: old frames are not needed again
                self._frames.clear()
            self._frames[key] = self._fill(self._pool.draw(group, label))
        return self._frames[key]

    def _fill(self, real: list[tuple[str, str]]) -> tuple[str, str]:
        """The frame with this group's real examples in the sentinel slots."""
        head = self._head
        for i, (text, label) in enumerate(real):
            head = head.replace(_slot(i, "request"), self._request(label, None, None))
            head = head.replace(_slot(i, "label"), label).replace(_slot(i, "text"), " ".join(text.split()))
        return head, self._tail

    def _answer_start(self) -> str:
        # In completion mode the row part already ends with the marker.
        return self.response_prefix if self.mode is not PromptMode.COMPLETION else ""

    # -- shared and row-specific text ------------------------------------------------------------

    def _label_lines(self) -> list[str]:
        spec = self.spec
        lines = ["Labels and what they mean:"]
        for label, description in spec.labels.items():
            line = f"- {label}: {description}" if description else f"- {label}"
            if spec.contrast and spec.label_contrasts.get(label):
                line += f" Not: {spec.label_contrasts[label]}"
            lines.append(line)
        return lines

    def _instructions(self) -> str:
        """The task text every chat prompt starts with (system turn, or folded into the first user turn)."""
        spec = self.spec
        lines = [self.system, "", f"Task: {spec.task.strip()}", "", *self._label_lines(), ""]
        if spec.wants_reasoning:
            lines.append("For each request, answer with OUTPUT: and the text, then REASONING: and why it has its label.")
        elif self.numbered:
            lines.append("For each request, return exactly as many texts as asked for, numbered 1., 2., 3. and so on, "
                         "one per line, with no title or explanation. Make each text different from the others.")
        else:
            lines.append("For each request, return only one output: the text itself, with no title or explanation.")
        if spec.contrast and len(spec.labels) > 1:
            lines.append("The text must fit its label and none of the others.")
        return "\n".join(lines)

    def _contrast(self, label: str) -> str:
        """" (not neutral, not impolite)" when the spec asks for contrasts."""
        others = [other for other in self.spec.labels if other != label]
        return f" (not {', not '.join(others)})" if self.spec.contrast and others else ""

    def _request(self, label: str, category: str | None, type_: str | None, k: int = 1, unlike: bool = False,
                 anchor: str | None = None) -> str:
        """The topic first, then what to write: the label, with its description when it has one.

        Small models follow the end of the request: with the label last and spelled out, the 1.5B's politeness
        rows matched their label more often (120 rows, judged by the same model: 53% against 35% with
        "polite (not neutral, not impolite). Category: ..."; agreement of a real-trained classifier 57% vs 41%).
        """
        where = f"Category: {category}. Type: {type_}. " if category is not None else ""
        meaning = self._meaning(label)
        what = f"{label}: {meaning}" if meaning else f"{label}{self._contrast(label)}"
        avoid = self._avoid(label) + (UNLIKE_EXAMPLES if unlike else "")
        quoted, like = "", ""
        if anchor is not None:  # measured wording (docs/quality.md#real-anchors)
            quoted = f'A real {label} text: "{anchor}"\n\n'
            like = f", in the tone and style of the real text, on {'another subject' if k == 1 else 'other subjects'}"
        if self.numbered:
            return f"{quoted}{where}Write {k} new {'text' if k == 1 else 'texts'}, each one {what}{like}.{avoid}"
        kind = "text and why it is" if self.spec.wants_reasoning else "text that is"
        return f"{quoted}{where}Write one new {kind} {what}{like}.{avoid}"

    def _avoid(self, label: str) -> str:
        """' Never use the words "please", "could you".' for a label with an avoid list (and contrast on)."""
        phrases = self.spec.label_avoid.get(label) if self.spec.contrast else None
        quoted = ", ".join(f'"{phrase}"' for phrase in phrases or ())
        return f" Never use the words {quoted}." if phrases else ""

    def _meaning(self, label: str) -> str:
        """The label's description as the end of a sentence ("Curt, demanding." -> "curt, demanding")."""
        text = " ".join((self.spec.labels.get(label) or "").split()).rstrip(".")
        keep_case = text[:2].isalpha() and text[:2].isupper()  # an acronym ("API errors") keeps its capitals
        return text if keep_case else text[:1].lower() + text[1:]

    def _answer(self, output: str, reasoning: str | None) -> str:
        if self.spec.wants_reasoning:
            return f"OUTPUT: {output.strip()}\nREASONING: {(reasoning or '').strip()}"
        return f"1. {output.strip()}" if self.numbered else output.strip()

    def _row_part(self, row: PlannedRow) -> str:
        if self._template is not None:
            return self._render_template(row)
        anchor = self._anchor_of(row)
        if self.mode is PromptMode.COMPLETION:  # the anchor as one more example of the label, just before
            shown = f"Label: {row.label}\nText: {anchor}\n\n" if anchor is not None else ""
            return f"{shown}Label: {row.label}\nCategory: {row.category}\nType: {row.type}\n{self.response_prefix}"
        return self._request(row.label, row.category, row.type, unlike=row.unlike_examples, anchor=anchor)

    def _chat_messages(self, user_turn: str) -> list[dict[str, str]]:
        """System instructions, each example as a request/answer exchange, then the row's request.

        Small chat models imitate demonstrated turns far better than examples quoted in one message,
        and all of it except the last turn is shared by every row of a group (the prefix cache reuses it).
        Real examples have no category or type: their requests name the label only.
        """
        if self._template is not None:
            return [{"role": "system", "content": self.system}, {"role": "user", "content": user_turn}]
        messages = [{"role": "system", "content": self._instructions()}]
        for ex in self.spec.examples:
            messages.append({"role": "user", "content": self._request(ex.label, ex.category, ex.type)})
            messages.append({"role": "assistant", "content": self._answer(ex.output, ex.reasoning)})
        if not self.spec.wants_reasoning:  # a real row has no reasoning to demonstrate
            for i in range(self._slots):
                messages.append({"role": "user", "content": _slot(i, "request")})
                messages.append({"role": "assistant", "content": ("1. " if self.numbered else "") + _slot(i, "text")})
        messages.append({"role": "user", "content": user_turn})
        return messages

    def _completion_shared(self) -> str:
        lines = [self.system, "", f"Task: {self.spec.task.strip()}", "", *self._label_lines()]
        for ex in self.spec.examples:
            lines += ["", f"Label: {ex.label}", f"Category: {ex.category}", f"Type: {ex.type}"]
            if self.spec.wants_reasoning:
                lines.append(f"OUTPUT: {ex.output.strip()}")
                lines.append(f"REASONING: {(ex.reasoning or '').strip()}")
            else:
                lines.append(f"Text: {ex.output.strip()}")
        if not self.spec.wants_reasoning:
            for i in range(self._slots):
                lines += ["", f"Label: {_slot(i, 'label')}", f"Text: {_slot(i, 'text')}"]
        return "\n".join(lines) + "\n\n"

    # -- framing: chat template or plain completion ----------------------------------------------

    def _frame(self, render: ChatRenderer | None) -> tuple[str, str]:
        """(head, tail) such that a row's prompt is head + row part + tail (real examples: sentinel slots)."""
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
                anchor=self._anchor_of(row),  # examples_from.anchor's real row, else None
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
