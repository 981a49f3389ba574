"""Parse a model's raw answer into the dataset text (and reasoning), or reject it.

Small models wrap the text they were asked for in preambles ("Sure! Here is a polite review:"),
echo the request ("Label: polite"), quote it, add markdown, leave chat-template tokens behind and
trail off into commentary. This module strips all of that; what is left must look like a text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sdgen.plan import PlannedRow
from sdgen.text import loops

MIN_WORDS = 3

_TEMPLATE_TOKENS = re.compile(
    r"<\|[a-z_]{1,24}(\|>)?|<\|>|</?s>|<(start|end)_of_turn>(user|model)?|<(bos|eos|pad|unk)>|\[/?INST\]",
    re.IGNORECASE,
)
_BYTE_LEVEL_MARKERS = re.compile(r"[ĠĊċĉ]\w|Ġ|Ċ")
_MARKER = r"(?:\*\*|__)?\s*{name}\s*(?:\*\*|__)?\s*[:：]\s*(?:\*\*|__)?"
_OUTPUT = re.compile(_MARKER.format(name=r"(?:output|text)"), re.IGNORECASE)
_REASONING = re.compile(_MARKER.format(name=r"(?:reasoning|reason|explanation)"), re.IGNORECASE)
_ECHO = re.compile(r"^\s*[-*#]*\s*(?:\*\*)?(?:label|category|type)(?:\*\*)?\s*[:：].*$", re.IGNORECASE | re.MULTILINE)
# The lead-in of a request's quoted real row (examples_from.anchor), copied in front of a text: 2 of 300 emotion rows
_ANCHOR_ECHO = re.compile(r"^\s*(?:a )?real [\w' -]{1,40}? text\s*[:：]\s*", re.IGNORECASE)
_PREAMBLE = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|absolutely|here(?:'s| is| are)|below is|this is|i(?:'d| would) be happy)\b",
    re.IGNORECASE,
)
_CHATTER = re.compile(
    r"^(?:note|i hope|hope this|let me know|feel free|this (?:text|output|review|message|example|response)"
    r"|the (?:text|output|above)|explanation|in this (?:text|example)|\(note)\b",
    re.IGNORECASE,
)
_META_SENTENCE = re.compile(
    r"^(?:(?:sure|certainly|of course|okay|ok|absolutely)\b[\s,!.:-]*)?"
    r"(?:here(?:'s| is| are)|below is|this is)\s+(?:a|an|the|one|my|your|another)\b[^.!?:\n]*"
    r"\b(?:message|text|review|example|output|response|version|sample|complaint|question|note)\b[^.!?:\n]*[.!:]\s*",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"^(?:as an ai\b|(?:(?:i(?:'m| am) )?sorry,? (?:but )?)?i (?:can(?:no|')t|won't|will not|(?:am|'m) (?:unable|not able) to) "
    r"(?:help|assist|provide|create|write|generate|fulfil|fulfill|comply|complete|produce|do that)\b)",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’«»`"
# Degenerate decoding (a model that lost the thread until max_new_tokens): words glued into one token
# ("IsCouldCouldHowThankHiHello...", "neutralneutralneutral..."). Hashtags, handles, URLs and code identifiers
# ("getElementById") stay: they have few case changes and no repeats.
_GLUED_WORDS = re.compile(r"(?<![#@/\w])[a-z']*(?:[A-Z][a-z']+[A-Z]?){6,}")
_STUTTER = re.compile(r"([a-z]{3,})\1{3,}", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    reasoning: str | None = None


# Control characters a model's tokens can decode to (a random or broken model writes NUL): never text anyone
# trains on, and Python 3.10's csv module cannot write a NUL at all. Tabs and newlines stay.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_raw(raw: str) -> str:
    text = _CONTROL.sub("", _TEMPLATE_TOKENS.sub("", raw))
    return text.replace("\r\n", "\n").strip()


def strip_quotes(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    if text.count('"') == 1:  # a quote opened but cut off by max_new_tokens, or closed but never opened
        text = text.replace('"', "").strip()
    return text


def _drop_preamble_and_chatter(text: str) -> str:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    # A leading paragraph that introduces the answer ("Here is ...:") is not the answer.
    while len(paragraphs) > 1 and (paragraphs[0].endswith(":") or _PREAMBLE.match(paragraphs[0])):
        paragraphs.pop(0)
    if paragraphs:
        first_lines = paragraphs[0].split("\n")
        if len(first_lines) > 1 and first_lines[0].rstrip().endswith(":") and _PREAMBLE.match(first_lines[0]):
            paragraphs[0] = "\n".join(first_lines[1:]).strip()
    # Everything from the first paragraph of commentary on is chatter.
    kept = []
    for p in paragraphs:
        if kept and _CHATTER.match(p):
            break
        kept.append(p)
    return "\n\n".join(kept)


def _tidy(text: str) -> str:
    text = _ANCHOR_ECHO.sub("", _ECHO.sub("", text), count=1)
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)  # bold
    text = re.sub(r"^\s*(?:#+\s+|\*\*|__)", "", text)  # leading markdown (a heading; "#tag" is a hashtag)
    text = _drop_preamble_and_chatter(text)
    text = _META_SENTENCE.sub("", text.lstrip(), count=1)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return strip_quotes(text)


def is_refusal(text: str) -> bool:
    """An assistant declining the request ("I'm sorry, but I can't assist with that.") is not data."""
    return bool(_REFUSAL.match(text.strip().lstrip("\"'“")))


def _looks_like_text(text: str, row: PlannedRow) -> bool:
    if len(text.split()) < MIN_WORDS or text.endswith(":"):
        return False
    if is_refusal(text):
        return False
    if _BYTE_LEVEL_MARKERS.search(text):
        return False  # a broken detokenizer, not natural language
    if _GLUED_WORDS.search(text) or _STUTTER.search(text) or loops(text):
        return False  # degenerate decoding, not natural language
    if text.casefold() in {row.label.casefold(), row.category.casefold(), row.type.casefold()}:
        return False
    return True


def extract(raw: str, row: PlannedRow, *, reasoning: bool) -> Extracted | None:
    """The clean text (and reasoning when asked for) from a raw answer, or None if it is unusable."""
    text = clean_raw(raw)
    found_reasoning: str | None = None
    r_match = _REASONING.search(text)
    o_match = _OUTPUT.search(text)
    if o_match and (not r_match or o_match.start() < r_match.start()):
        end = r_match.start() if r_match else len(text)
        body = text[o_match.end() : end]
        if r_match:
            found_reasoning = text[r_match.end() :]
    elif r_match:  # reasoning without an OUTPUT marker: the text is what precedes it
        body, found_reasoning = text[: r_match.start()], text[r_match.end() :]
    else:
        body = text
    body = _tidy(body)
    if not _looks_like_text(body, row):
        return None
    if not reasoning:
        return Extracted(body)
    if found_reasoning is not None:
        found_reasoning = _OUTPUT.split(_REASONING.split(found_reasoning)[0])[0]
        found_reasoning = _tidy(re.split(r"\n\s*\n", found_reasoning.strip())[0])
    if not found_reasoning or len(found_reasoning.split()) < MIN_WORDS:
        return None  # the reasoning style promises a reasoning column; a row without one is unparseable
    return Extracted(body, found_reasoning)


_ITEM = re.compile(r"^[ \t]*(?:\*\*)?(\d{1,2})[.)](?:\*\*)?[ \t]+", re.MULTILINE)


def _split_run_together(items: dict[int, str], k: int) -> None:
    """Items a model ran together on one line ("... again. 2. I'm ... 3. ..."): split the last item where the
    numbering goes on in order, up to item k (a k+1 is cut off, as the stop string cuts one at a line start)."""
    last = len(items)
    while 0 < last <= k:
        marks = re.finditer(rf"(?<=\s){last + 1}[.)][ \t]+(?=\S)", items[last])
        mark = next((m for m in marks if _ends_an_item(items[last][: m.start()])), None)
        if mark is None:
            return
        items[last], rest = items[last][: mark.start()], items[last][mark.end() :]
        if last < k:
            items[last + 1] = rest
        last += 1


def _ends_an_item(before: str) -> bool:
    """Text before an inline "2." ends a text (a sentence, a hashtag, an emoji), unlike "version 2. It failed"."""
    before = before.rstrip()
    return bool(before) and (not before[-1].isalnum() or re.search(r"#\w+$", before) is not None)


def extract_items(raw: str, rows: tuple[PlannedRow, ...], *, numbered: bool = True) -> list[Extracted | None]:
    """One text per row from a numbered answer ("1. ...", "2. ..."), by position; None where an item is missing,
    out of order or not a text. Not ``numbered``: a single row takes the whole answer (as `extract`)."""
    if not numbered:
        assert len(rows) == 1, "several rows need a numbered answer"
        return [extract(raw, rows[0], reasoning=False)]
    text = clean_raw(raw)
    marks = list(_ITEM.finditer(text))
    items: dict[int, str] = {}
    for mark, nxt in zip(marks, [*marks[1:], None]):
        number = int(mark.group(1))
        if number == len(items) + 1:  # numbered in order: 1, 2, 3... (a restart or a jump ends the list)
            items[number] = text[mark.end() : nxt.start() if nxt is not None else len(text)]
        else:
            break
    _split_run_together(items, len(rows))
    out: list[Extracted | None] = []
    for i, row in enumerate(rows, 1):
        body = _tidy(items[i]) if i in items else ""
        out.append(Extracted(body) if body and _looks_like_text(body, row) else None)
    return out
