"""Online duplicate and conflict detection on crafted texts, with exact counts."""

import pytest

from sdgen.quality.index import TextIndex, Verdict, shingles
from sdgen.text import normalize_text

BASE = "The train to York was forty minutes late and nobody on the platform told us why it happened."
NEAR = "The train to York was forty minutes late and nobody on the platform told us why it happened at all."
OTHER = "My new blender arrived with a cracked jug, and the refund form on your website does not load."


def feed(index: TextIndex, items):
    """Check then keep every unique text, as the writer will; return the verdicts."""
    verdicts = []
    for row, (text, label) in enumerate(items):
        check = index.check(row, text, label)
        verdicts.append(check.verdict)
        if check.verdict is Verdict.UNIQUE:
            index.add(row, text, label)
        else:
            index.discard(row)
    return verdicts


def test_exact_duplicates_fold_case_spacing_and_punctuation():
    assert normalize_text("  Great  SERVICE, thanks!! ") == normalize_text("great service thanks")
    index = TextIndex(near=False)
    verdicts = feed(index, [(BASE, "neutral"), (BASE.upper() + "  ", "neutral"), (OTHER, "neutral"),
                            ("the train to york was forty minutes late, and nobody on the platform told us why it "
                             "happened", "neutral")])  # fmt: skip
    assert verdicts == [Verdict.UNIQUE, Verdict.EXACT, Verdict.UNIQUE, Verdict.EXACT]
    assert len(index) == 2


def test_near_duplicates_found_and_distinct_texts_kept():
    index = TextIndex(threshold=0.7, shingle_size=3)
    verdicts = feed(index, [(BASE, "neutral"), (NEAR, "neutral"), (OTHER, "neutral")])
    assert verdicts == [Verdict.UNIQUE, Verdict.NEAR, Verdict.UNIQUE]
    check = index.check(9, NEAR, "neutral")
    assert (check.verdict, check.match) == (Verdict.NEAR, 0)


def test_same_text_under_another_label_is_a_conflict_naming_both_sides():
    index = TextIndex(threshold=0.7)
    verdicts = feed(index, [(BASE, "neutral"), (BASE, "impolite"), (NEAR, "polite"), (OTHER, "polite")])
    assert verdicts == [Verdict.UNIQUE, Verdict.CONFLICT, Verdict.CONFLICT, Verdict.UNIQUE]
    check = index.check(7, NEAR, "impolite")
    assert (check.verdict, check.match, check.match_label) == (Verdict.CONFLICT, 0, "neutral")


def test_a_same_label_near_match_wins_over_a_conflicting_one():
    index = TextIndex(threshold=0.7)
    index.add(0, BASE, "impolite")
    index.add(1, NEAR + " Really.", "neutral")
    assert index.check(2, NEAR, "neutral").verdict is Verdict.NEAR


def test_many_texts_exact_counts():
    """300 unrelated texts, each followed by an exact copy and a near variant: exactly 300 kept, 300 + 300 dropped."""
    import random

    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(3000)]
    items = []
    for _ in range(300):
        text = " ".join(rng.choices(vocab, k=25))
        items += [(text, "neutral"), (text.upper(), "neutral"), (text + " indeed truly", "neutral")]
    verdicts = feed(TextIndex(threshold=0.8), items)
    assert verdicts.count(Verdict.UNIQUE) == 300
    assert verdicts.count(Verdict.EXACT) == 300 and verdicts.count(Verdict.NEAR) == 300
    assert verdicts[0::3] == [Verdict.UNIQUE] * 300


def test_short_texts_and_bad_options():
    assert shingles("Hi there", 3) == {b"hi there"}
    assert len(shingles("one two three four", 3)) == 2
    with pytest.raises(ValueError, match="threshold"):
        TextIndex(threshold=0)
    with pytest.raises(ValueError, match="shingle size"):
        TextIndex(shingle_size=0)
