"""Matching text, below every other layer: the normal form that makes two texts "the same", the words and
phrases a label's texts never contain (``labels.NAME.avoid``), and a phrase looping (`loops`).

On avoided phrases:
A prompt can say what a label is not, but a small model often writes it anyway: the 1.5B put "please",
"could you" or "can you" in a third of its `neutral` politeness rows, where real neutral requests have
them in 15%. The check is literal: case-insensitive, whole words, any run of spaces between the
words of a phrase, curly apostrophes read as straight ones.
"""

from __future__ import annotations

import re
import unicodedata

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def normalize_text(text: str) -> str:
    """The key for exact-duplicate detection: case, accents' composition, spacing and punctuation folded."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


# "@Altermundus" but not "a@b.com", nor "@user" itself
_HANDLE = re.compile(r"(?<![\w.@])@(?!user\b)\w+")


def mask_handles(text: str) -> str:
    """``@name`` handles as ``@user`` (as TweetEval writes them): the form a real row is shown to the model in. A
    handle in a shown row is a real person's, and the model repeats it: 7 of 297 politeness rows addressed
    @Altermundus, the handle in the one polite real row every request showed (tune's real shots, stop 55)."""
    return _HANDLE.sub("@user", text)


def straight_quotes(text: str) -> str:
    """Curly apostrophes as straight ones, as avoided phrases are matched."""
    return text.translate(_QUOTES)


def _pattern(phrases: list[str]) -> re.Pattern[str]:
    alternatives = [r"\s+".join(map(re.escape, p.translate(_QUOTES).split())) for p in phrases]
    alternatives.sort(key=len, reverse=True)  # the longest phrase wins where two start at one place
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


class AvoidedPhrases:
    """Per label, the phrases its texts must not contain; ``found`` names the first one a text holds."""

    def __init__(self, avoid: dict[str, list[str]]) -> None:
        self._patterns = {label: _pattern(phrases) for label, phrases in avoid.items() if phrases}

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def pattern(self, label: str) -> str | None:
        """The label's phrases as one regex source (case-insensitive, on `straight_quotes` text), or None."""
        pattern = self._patterns.get(label)
        return pattern.pattern if pattern is not None else None

    def found(self, text: str, label: str) -> str | None:
        """The avoided phrase ``text`` holds (lower case, as written in the text), or None."""
        pattern = self._patterns.get(label)
        if pattern is None:
            return None
        match = pattern.search(text.translate(_QUOTES))
        return " ".join(match.group(0).lower().split()) if match else None


# A phrase loop: the same one to LOOP_PERIOD words over and over until max_new_tokens ("#happy #amazing #happy
# #amazing ...", "@team @team @team ..."). Real text repeats too ("@user @user @user @user Take 2k out of it", "on and
# on and on and on"), but in runs shorter than LOOP_WORDS: in the ~29k real rows of politeness, emotion and movie
# reviews one run reached 10 words (a hex dump), while 2-8 of each 300 tuned emotion rows (stops 41, 43) looped.
LOOP_PERIOD = 12
LOOP_WORDS = 10
_WORD_EDGES = ".,!?;:\"'"


def loops(text: str) -> bool:
    """Whether a run of LOOP_WORDS words or more repeats one phrase of up to LOOP_PERIOD words three times or more."""
    words = [w for w in (w.strip(_WORD_EDGES).casefold() for w in text.split()) if w]
    for period in range(1, LOOP_PERIOD + 1):
        run = 0  # how many words in a row equal the word `period` words on
        for here, ahead in zip(words, words[period:]):
            run = run + 1 if here == ahead else 0
            if run >= 2 * period and run + period >= LOOP_WORDS:
                return True
    return False
