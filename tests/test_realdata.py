"""Real examples: each group of plan rows draws its own, the same on every call; avoided phrases are never shown."""

import pandas as pd
import pytest

from sdgen.text import AvoidedPhrases
from sdgen.realdata import ExamplePool, RealDataError


@pytest.fixture
def real(tmp_path):
    rows = [(f"thanks, could you look at item {i}?", "polite") for i in range(20)]
    rows += [(f"item {i} fails on start." if i % 2 else f"please check item {i}.", "neutral") for i in range(20)]
    path = tmp_path / "real.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


def test_each_group_draws_its_own_examples_and_the_same_every_time(real):
    pool = ExamplePool(real, "text", "label", ["polite", "neutral"], per_label=2, seed=7)
    draws = [pool.draw(group) for group in range(6)]
    assert draws == [pool.draw(group) for group in range(6)]
    assert all(sorted(label for _, label in d) == ["neutral", "neutral", "polite", "polite"] for d in draws)
    assert len({tuple(d) for d in draws}) > 1


def test_real_rows_holding_a_phrase_their_label_avoids_are_never_shown_but_stay_reserved(real):
    avoided = AvoidedPhrases({"neutral": ["please"]})
    pool = ExamplePool(real, "text", "label", ["polite", "neutral"], per_label=3, seed=7, avoided=avoided)
    shown = [text for group in range(20) for text, label in pool.draw(group) if label == "neutral"]
    assert shown and not any("please" in text for text in shown)
    assert sum("please" in text for text, _ in pool.reserved()) == 10 and len(pool.reserved()) == 40


def test_a_label_left_without_a_real_row_to_show_is_named(real):
    with pytest.raises(RealDataError, match="every row labelled 'polite' holds a phrase that label avoids"):
        ExamplePool(real, "text", "label", ["polite", "neutral"], 1, 7, AvoidedPhrases({"polite": ["could you"]}))


def test_same_label_draws_only_the_asked_labels_rows_each_group_and_label_its_own(real):
    pool = ExamplePool(real, "text", "label", ["polite", "neutral"], per_label=3, seed=7, same_label=True)
    assert pool.slots == 3
    polite = [pool.draw(group, "polite") for group in range(6)]
    assert polite == [pool.draw(group, "polite") for group in range(6)]
    assert all(len(d) == 3 and {label for _, label in d} == {"polite"} for d in polite)
    assert len({tuple(d) for d in polite}) > 1
    assert {label for _, label in pool.draw(0, "neutral")} == {"neutral"}


def test_same_label_draws_as_many_as_the_smallest_label_holds(tmp_path):
    path = tmp_path / "real.csv"
    rows = [(f"polite {i}", "polite") for i in range(6)] + [("neutral 0", "neutral"), ("neutral 1", "neutral")]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    pool = ExamplePool(path, "text", "label", ["polite", "neutral"], per_label=4, seed=7, same_label=True)
    assert pool.slots == 2 and len(pool.draw(0, "polite")) == 2  # every frame has the same slots to fill


def test_anchors_leave_the_frame_without_slots_and_are_drawn_per_request_and_label(real):
    pool = ExamplePool(real, "text", "label", ["polite", "neutral"], per_label=3, seed=7, anchor=True)
    assert pool.slots == 0
    anchors = [pool.anchor_for(request, "polite") for request in range(12)]
    assert anchors == [pool.anchor_for(request, "polite") for request in range(12)]
    assert len(set(anchors)) > 1 and all(text.startswith("thanks") for text in anchors)
    assert "could you" not in pool.anchor_for(0, "neutral")


def test_handles_are_shown_as_at_user_and_reserved_both_as_written_and_as_shown(tmp_path):
    rows = [("@Altermundus Sorry, could you say more?", "polite"), ("Write to a@b.com, @user", "polite"),
            ("Which file fails?", "neutral"), ("Does it fail on start?", "neutral")]
    path = tmp_path / "real.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    for anchor in (False, True):
        pool = ExamplePool(path, "text", "label", ["polite", "neutral"], per_label=2, seed=7, anchor=anchor)
        shown = {pool.anchor_for(r, "polite") for r in range(20)} if anchor else {t for t, _ in pool.draw(0)}
        assert "@user Sorry, could you say more?" in shown and "Write to a@b.com, @user" in shown  # an address stays
        assert not any("Altermundus" in text for text in shown)
        assert set(pool.reserved()) == {*rows, ("@user Sorry, could you say more?", "polite")}
