"""End to end on the built-in SmolLM2-135M (provisioned from PyPI), as `make demo` runs it."""

import re
from collections import Counter

import pandas as pd
import pytest

import sdgen
from sdgen.plan import make_plan

from conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.integration
ROWS = 48
TEMPLATE_TOKENS = re.compile(r"<\|im_(start|end)\|>|<\|endoftext\|>|<(start|end)_of_turn>|</?s>")
BYTE_LEVEL = re.compile(r"[ĠĊ]")


@pytest.fixture(scope="module", params=["reasoning", "fewshot"])
def run(request, tmp_path_factory):
    style = request.param
    out = tmp_path_factory.mktemp(style)
    kwargs = dict(rows=ROWS, prompt_style=style, engine={"threads": 2, "max_attempts": 5})
    first = sdgen.generate(EXAMPLE_SPEC, output=out / "a.csv", **kwargs)
    second = sdgen.generate(EXAMPLE_SPEC, output=out / "b.csv", **kwargs)
    return style, first, second


def test_rows_and_labels_follow_the_plan(run):
    style, summary, _ = run
    df = pd.read_csv(summary.output, keep_default_na=False)
    plan = make_plan(sdgen.load_spec(EXAMPLE_SPEC, rows=ROWS))
    assert summary.unparseable == 0 and len(df) == ROWS == summary.written
    assert Counter(df["label"]) == Counter(r.label for r in plan)
    assert sorted(df["row"]) == list(range(ROWS))
    assert ("reasoning" in df.columns) == (style == "reasoning")


def test_texts_are_clean_natural_language(run):
    _, summary, _ = run
    df = pd.read_csv(summary.output, keep_default_na=False)
    for text in df["text"]:
        assert not TEMPLATE_TOKENS.search(text), text
        assert not BYTE_LEVEL.search(text), text
        assert len(text.split()) >= 3
        assert sum(c.isalpha() for c in text) / len(text) > 0.6, text
    if "reasoning" in df.columns:
        assert all(len(r.split()) >= 3 and not TEMPLATE_TOKENS.search(r) for r in df["reasoning"])


def test_texts_are_distinct(run):
    _, summary, _ = run
    texts = pd.read_csv(summary.output, keep_default_na=False)["text"]
    assert texts.nunique() >= 0.95 * len(texts)
    assert summary.exact_duplicates <= 0.05 * len(texts)


def test_same_seed_reproduces_the_same_rows(run):
    _, first, second = run
    a = pd.read_csv(first.output, keep_default_na=False).sort_values("row").reset_index(drop=True)
    b = pd.read_csv(second.output, keep_default_na=False).sort_values("row").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
