"""The avoided-phrase check: literal, case-insensitive, whole words, any spacing, either apostrophe."""

import pytest

from sdgen.text import AvoidedPhrases

AVOID = AvoidedPhrases({"neutral": ["please", "could you", "can't", "thank you"], "polite": []})


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("PLEASE fix the build.", "please"),
        ("Could\n  you look at it?", "could you"),
        ("I can’t find the file.", "can't"),  # a curly apostrophe in the text
        ("Thank you, and please reply.", "thank you"),  # the first phrase in the text
        ("Pleased to see it merged.", None),  # whole words only
        ("Who could your reviewer be?", None),
        ("Couldyou look?", None),
    ],
)
def test_found_names_the_phrase_a_text_holds(text, found):
    assert AVOID.found(text, "neutral") == found


def test_labels_without_a_list_avoid_nothing():
    assert AVOID.found("Please, could you?", "polite") is None
    assert AVOID.found("Please, could you?", "impolite") is None
    assert not AvoidedPhrases({}) and not AvoidedPhrases({"a": []}) and AVOID
