import pytest

from sdgen.extract import extract
from sdgen.plan import PlannedRow

ROW = PlannedRow(0, "polite", "travel", "air", "m", 1)
TEXT = "Thank you for the smooth flight, the crew was lovely."


@pytest.mark.parametrize(
    "raw",
    [
        TEXT,
        f'"{TEXT}"',
        f"“{TEXT}”",
        f"Sure! Here is a polite message:\n\n{TEXT}",
        f"Here's a polite review about air travel:\n{TEXT}",
        f"Text: {TEXT}",
        f"**Output:** {TEXT}",
        f"Label: polite\nCategory: travel\nType: air\n{TEXT}",
        f"{TEXT}<|im_end|>",
        f"<start_of_turn>model\n{TEXT}<end_of_turn>",
        f"{TEXT}\n\nNote: this text is polite because it thanks the crew.",
        f"{TEXT}\n\nI hope this helps!",
        f"  \n{TEXT}\n  ",
        f"Sure - here's a polite message about air travel. {TEXT}",
        f"Here is a polite review: {TEXT}",
    ],
)
def test_bare_output_is_cleaned(raw):
    assert extract(raw, ROW, reasoning=False).text == TEXT


@pytest.mark.parametrize(
    "raw",
    [
        f"OUTPUT: {TEXT}\nREASONING: It thanks the crew warmly.",
        f"OUTPUT: {TEXT}\n\nREASONING: It thanks the crew warmly.\n\nOUTPUT: another one",
        f"**OUTPUT:** {TEXT}\n**REASONING:** It thanks the crew warmly.",
        f'output: "{TEXT}"\nreasoning: It thanks the crew warmly.<|im_end|>',
        f"{TEXT}\nREASONING: It thanks the crew warmly.",
    ],
)
def test_output_and_reasoning(raw):
    parsed = extract(raw, ROW, reasoning=True)
    assert parsed.text == TEXT
    assert parsed.reasoning == "It thanks the crew warmly."


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "polite",
        "<|im_end|>",
        "Sure!",
        "Here is a polite message:",
        "Sure - Here's a polite message about shopping at supermarkets.",
        "ĠThe Ġcrew Ġwas Ġlovely",  # byte-level BPE markers: a broken detokenizer
        "The ĊflightĊ was fine today",
    ],
)
def test_junk_is_rejected(raw):
    assert extract(raw, ROW, reasoning=False) is None


def test_reasoning_style_needs_reasoning():
    assert extract(f"OUTPUT: {TEXT}", ROW, reasoning=True) is None
    assert extract(f"OUTPUT: {TEXT}\nREASONING: ok", ROW, reasoning=True) is None  # too short to be a reason


def test_unicode_and_multiline_texts_survive():
    text = "Merci beaucoup ! Le vol était parfait 😀\nÀ bientôt, 東京"
    assert extract(text, ROW, reasoning=False).text == text


def test_cut_off_quote_is_dropped():
    assert extract(f'"{TEXT} And then', ROW, reasoning=False).text == f"{TEXT} And then"
