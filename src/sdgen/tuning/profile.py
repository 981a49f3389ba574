"""What separates a label's real rows from its generated rows: marker phrases, over-used phrases, misreadings, style.

Everything here reads rows (DataFrames with text and label) and returns plain figures; `proposals`
turns them into spec changes. Marker phrases are ranked by the log-odds ratio with an informative
Dirichlet prior (Monroe, Colaresi and Quinn 2008), which keeps rare words from topping the list on a
few dozen rows, as a plain frequency ratio or a classifier's weights would.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

OTHER_MARKERS = 25  # a label's marker phrases another label's generated rows may be told to avoid
PRIOR_WEIGHT = 0.5  # of the pooled counts: shrinks a phrase seen in two or three rows without drowning it
_WORD = re.compile(r"[@#]?\w+(?:'\w+)?")
_EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")

# feature -> (test, what a text with it does, for a hint in the task)
STYLE = {
    "mention": (lambda t: "@" in t, "mention someone as @user"),
    "hashtag": (lambda t: re.search(r"#\w", t) is not None, "carry a #hashtag"),
    "link": (lambda t: re.search(r"https?://|www\.", t) is not None, "hold a link"),
    "question": (lambda t: "?" in t, "ask a question"),
    "exclamation": (lambda t: "!" in t, "have an exclamation mark"),
    "emoji": (lambda t: _EMOJI.search(t) is not None, "hold an emoji"),
    "lowercase": (lambda t: next((c.islower() for c in t if c.isalpha()), False), "start in lower case"),
}


def phrase_list(text: str) -> list[str]:
    """Every word and word pair of the text, lower case (``@user`` and ``#tag`` kept whole), as often as it occurs."""
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def phrases(text: str) -> set[str]:
    """The text's words and word pairs, each once."""
    return set(phrase_list(text))


def doc_freq(texts) -> tuple[Counter, int]:
    counts: Counter = Counter()
    n = 0
    for text in texts:
        counts.update(phrases(text))
        n += 1
    return counts, n


def markers(rows, label: str, n: int = 6, min_rows: int = 2, min_z: float = 1.0) -> list[str]:
    """The phrases that most mark ``label``'s rows against the other labels' (z-scored log-odds of their rates per
    phrase, informative prior), held by at least ``min_rows`` of its rows; a pair is left out when it only repeats a
    listed word.

    Rates count every occurrence: counting a phrase once per row against all phrases made every common word of
    short rows ("a", "and", "the" in review sentences) look like their marker beside long rows (plot summaries)
    that say it several times each."""
    held, _ = doc_freq(rows.loc[rows["label"] == label, "text"])
    mine = Counter(p for text in rows.loc[rows["label"] == label, "text"] for p in phrase_list(text))
    rest = Counter(p for text in rows.loc[rows["label"] != label, "text"] for p in phrase_list(text))
    prior = mine + rest  # the label's rows and the others' together are the background, at half weight
    n_mine, n_rest, a0 = sum(mine.values()), sum(rest.values()), PRIOR_WEIGHT * sum(prior.values())
    scored = []
    for phrase, a in mine.items():
        if held[phrase] < min_rows:
            continue
        b, alpha = rest.get(phrase, 0), PRIOR_WEIGHT * prior[phrase]
        delta = math.log((a + alpha) / (n_mine + a0 - a - alpha)) - math.log((b + alpha) / (n_rest + a0 - b - alpha))
        scored.append((delta / math.sqrt(1 / (a + alpha) + 1 / (b + alpha)), phrase))
    picked: list[str] = []
    for z, phrase in sorted(scored, reverse=True):
        if z <= min_z or len(picked) >= n:
            break
        if " " in phrase and any(w in picked for w in phrase.split()):
            continue
        picked.append(phrase)
    return picked


def overused(generated, real, label: str, n: int = 4, min_share: float = 0.15, ratio: float = 3.0) -> list[str]:
    """Phrases in at least ``min_share`` of ``label``'s generated rows and ``ratio`` times rarer in its real rows, that
    mark another label in the real rows (`markers`): what makes a classifier of real text read the rows as that label.
    A word merely common everywhere ("i", "so") is not one, and a phrase that marks the label itself never is."""
    gen, gen_n = doc_freq(generated.loc[generated["label"] == label, "text"])
    real_counts, real_n = doc_freq(real.loc[real["label"] == label, "text"])
    if not gen_n or not real_n:
        return []
    others = {p for other in set(real["label"]) - {label} for p in markers(real, other, n=OTHER_MARKERS)}
    found = []
    for phrase, count in gen.items():
        share = count / gen_n
        real_share = real_counts.get(phrase, 0) / real_n
        if phrase in others and share >= min_share and share >= ratio * max(real_share, 0.5 / real_n):
            found.append((share - real_share, phrase))
    picked: list[str] = []
    # the largest gap first, a word before its pairs, then by spelling: ties must not fall to the order of a set
    for _, phrase in sorted(found, key=lambda f: (-f[0], " " in f[1], f[1])):
        if len(picked) < n and not (" " in phrase and any(w in picked for w in phrase.split())):
            picked.append(phrase)
    return picked


def read_as(generated, real, seed: int = 0, judge=None) -> dict[str, dict[str, float]]:
    """Per label, the share of its generated rows read as each other label: by ``judge`` (texts -> labels, "" for
    none: those rows are left out; the model shown ``real`` as examples), else by a classifier trained on ``real``."""
    from sdgen.quality.evaluate import RealClassifier, _read_as

    if judge is not None:
        verdicts = judge(list(generated["text"]))
        pairs = [(v, str(label)) for v, label in zip(verdicts, generated["label"]) if v]
        return _read_as([v for v, _ in pairs], [label for _, label in pairs])
    predicted = RealClassifier(real, seed).predict(generated["text"])
    return _read_as(predicted, generated["label"].tolist())


@dataclass
class Style:
    shares: dict[str, float]  # feature -> share of texts with it
    words: tuple[int, int, int]  # 25th, 50th and 75th percentile of words per text


def style(texts) -> Style:
    texts = list(texts)
    if not texts:
        return Style({k: 0.0 for k in STYLE}, (0, 0, 0))
    lengths = sorted(len(t.split()) for t in texts)

    def pct(q: float) -> int:
        return lengths[min(len(lengths) - 1, int(q * len(lengths)))]

    shares = {name: sum(1 for t in texts if test(t)) / len(texts) for name, (test, _) in STYLE.items()}
    return Style(shares, (pct(0.25), pct(0.5), pct(0.75)))


def typical(rows, per_label: int, seed: int = 0):
    """Each label's ``per_label`` rows that a classifier trained on all ``rows`` gives their own label most surely."""
    import numpy as np

    from sdgen.quality.classifier import text_classifier

    model = text_classifier(seed).fit(rows["text"], rows["label"])
    classes = [str(c) for c in model.classes_]
    proba = model.predict_proba(rows["text"])
    own = proba[np.arange(len(rows)), [classes.index(str(label)) for label in rows["label"]]]
    ranked = rows.assign(_own=own).sort_values(["label", "_own"], ascending=[True, False], kind="stable")
    return ranked.groupby("label", group_keys=False).head(per_label).drop(columns="_own").reset_index(drop=True)
