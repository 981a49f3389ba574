"""`sdgen tune` with a scripted engine whose texts fit their labels only when the spec says the word: a change is
kept only when held-out real rows say it helps; the seed's folds; bad seeds; what tune reads in real rows."""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

import sdgen
from sdgen.engines import Result, register_engine
from sdgen.realdata import SeedSet
from sdgen.spec import build_spec
from sdgen.tuning import profile
from sdgen.tuning.output import SELF_READ
from sdgen.tuning.proposals import (Change, Evidence, avoid_overused, describe_by_model, real_anchors, real_shots,
                                    style_hints, typical_examples)

from conftest import cli_error, cli_ok
from fake_engines import FakeBaseModel

LABELS = ["calm", "angry", "sad"]
VOCAB = {label: [f"{label[:2]}{i}" for i in range(25)] for label in LABELS}  # each label's own words
NOISE = [f"zz{i}" for i in range(200)]
STIFF, STIFF_SHARE = " furthermore, moreover!", 0.3


def label_text(label: str, rng: random.Random) -> str:
    return " ".join(rng.sample(VOCAB[label], 8))


def nearest_label(prompt: str) -> str:
    """A few-shot judge: the label of the example that shares most words with the last text ("?" when none does)."""
    *shots, last = re.findall(r"Text: (.*)\nLabel:(.*)", prompt + "\n")
    words = set(last[0].split())
    overlap, label = max((len(words & set(text.split())), label.strip()) for text, label in shots)
    return label if overlap else "?"


class ScriptedEngine(FakeBaseModel):
    """Writes a text in the label's own words when the prompt holds FIT, in the next label's words with SWAP,
    and noise otherwise: what the spec says decides how well the rows fit their labels. Asked for a label (the
    tune judge), it answers by the examples its prompt shows."""

    backend = "tune-scripted"

    def generate(self, requests):
        for req in requests:
            if req.prompt.endswith("\nLabel:"):  # one label forced: likely when it is the nearest example's
                (choice,) = req.choices
                said = nearest_label(req.prompt)
                yield Result(req.id, " " + choice, 2, "stop", 0.0 if said == choice else -1.0 if said == "?" else -3.0)
                continue
            label = self.label_of(req)
            rng = random.Random(req.seed)
            if "SWAP" in req.prompt or ("MIXED" in req.prompt and rng.random() < 0.4):
                text = label_text(LABELS[(LABELS.index(label) + 1) % len(LABELS)], rng)
            elif "FIT" in req.prompt:
                text = label_text(label, rng)
            else:
                text = " ".join(rng.sample(NOISE, 8))
            if "STIFF" in req.prompt and rng.random() < STIFF_SHARE:
                text += STIFF  # the right words, said as no real row says them
            yield Result(req.id, " " + text, 8, "stop")


register_engine("tune-scripted", ScriptedEngine)


def with_task(word: str):
    def proposal(data: dict, ev: Evidence) -> Change:
        return Change(word.lower(), f"task says {word}", {**data, "task": f"{data['task']} {word}."}, ["task"])

    proposal.__name__ = word.lower()
    return proposal


@pytest.fixture
def seed_csv(tmp_path):
    rng = random.Random(7)
    rows = [(label_text(label, rng), label) for label in LABELS for _ in range(12)]
    path = tmp_path / "seed.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


@pytest.fixture
def spec_path(tmp_path):
    model = tmp_path / "fake.gguf"  # resolved by path; the scripted engine never reads it
    model.write_bytes(b"GGUF")
    data = {"name": "moods", "task": "Write short notes.", "labels": {label: f"A {label} note." for label in LABELS},
            "categories": {"topic": ["home", "work"]}, "sample_size": 30, "models": [str(model)],
            "output": "moods.csv"}  # fmt: skip
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_change_is_kept_only_when_held_out_rows_say_it_helps(tmp_path, spec_path, seed_csv):
    rounds = []
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted", pilot_rows_per_label=8,
                        proposals=[with_task("FIT"), with_task("SWAP")], on_event=lambda k, r: rounds.append(k))  # fmt: skip
    baseline, fit, swap = result.rounds
    assert baseline.name == "baseline" and fit.name == "fit" and swap.name == "swap"
    assert fit.kept and min(fit.gains) > 0  # both pilots, each on the fold it was not derived from, rose
    assert all(s.agreement == 1.0 for s in fit.scores)  # label words: a classifier of held-out rows agrees
    assert not swap.kept and max(swap.gains) < 0  # every row in another label's words: worse than FIT
    assert rounds.count("pilot") == 6 and rounds.count("round") == 3
    tuned = yaml.safe_load(result.spec_path.read_text())
    assert tuned["task"] == "Write short notes. FIT." and "SWAP" not in result.spec_path.read_text()
    comments = [line for line in result.spec_path.read_text().splitlines() if line.startswith("# tune round")]
    assert len(comments) == 1 and comments[0].startswith("# tune round 1 (fit): task says FIT; held-out score")
    log = result.log_path.read_text()
    assert "| 1 | fit: task says FIT | yes |" in log and "| 2 | swap: task says SWAP | no |" in log
    fit_row = next(line for line in log.splitlines() if line.startswith("| 1 | fit"))
    assert " / ".join(f"{s.value:.3f}" for s in fit.scores) in fit_row  # each pilot's own score: the spread
    assert result.pilot_rows == 6 * 24

    # the tuned spec is an ordinary spec: it loads and generates, and its rows now fit their labels
    summary = sdgen.generate(result.spec_path, backend="tune-scripted", rows=30, output=tmp_path / "out.csv")
    df = pd.read_csv(summary.output)
    assert len(df) == 30 and all(set(t.split()) <= set(VOCAB[label]) for t, label in zip(df["text"], df["label"]))


def test_the_label_check_is_kept_when_it_drops_rows_held_out_real_rows_read_otherwise(tmp_path, spec_path, seed_csv):
    """A model that writes 40% of its rows in another label's words: the label check (a classifier of one fold's real
    rows) drops them, the other fold agrees with every row left, and the tuned spec checks against the whole seed.
    The check is scored on the baseline pilots' own rows, without pilots of its own."""
    from sdgen.tuning.proposals import label_check

    data = yaml.safe_load(spec_path.read_text())
    spec_path.write_text(yaml.safe_dump({**data, "task": "Write short notes. FIT. MIXED."}, sort_keys=False))
    events = []
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "out" / "tuned.yaml", backend="tune-scripted",
                        pilot_rows_per_label=8, proposals=[label_check], on_event=lambda k, w: events.append(k))  # fmt: skip
    baseline, check = result.rounds
    assert check.name == "label-check" and check.kept and min(check.gains) > 0
    assert all(s.agreement == 1.0 for s in check.scores) and all(s.agreement < 0.8 for s in baseline.scores)
    assert events.count("pilot") == 2 and result.pilot_rows == 2 * 24  # the baseline's two pilots, nothing more
    for before, after in zip(baseline.scores, check.scores):  # the rows of the same pilot it keeps, at their rate
        writing = before.rows / before.rows_per_s  # and the screening's own time on top: the fake writes in ~ms
        assert 0 < after.rows < before.rows and after.rows / writing > after.rows_per_s > after.rows / (writing + 1.0)
    tuned = yaml.safe_load(result.spec_path.read_text())
    assert tuned["label_check"] == {"path": "../seed.csv", "min_ratio": 0.8}
    summary = sdgen.generate(result.spec_path, backend="tune-scripted", rows=60, output=tmp_path / "out.csv")
    df = pd.read_csv(summary.output)
    assert all(set(t.split()) <= set(VOCAB[label]) for t, label in zip(df["text"], df["label"]))
    dropped = sum(summary.screened("misread").values())
    assert dropped > 10 and len(df) > 50  # a row lost 3 times (0.4^3 of them) stays missing: balance.replacements


def _tune_where_the_panel_sees_no_gain(tmp_path, spec_path, seed_csv, monkeypatch, proposal, panel_reads):
    """Tune with one screening proposal, every pilot scored alike (no gain); where ``panel_reads`` is given, the panel
    reads the folds' real rows at that rate."""
    from sdgen.tuning import loop
    from sdgen.tuning.score import PilotScore

    data = yaml.safe_load(spec_path.read_text())
    spec_path.write_text(yaml.safe_dump({**data, "task": "Write short notes. FIT. MIXED."}, sort_keys=False))
    monkeypatch.setattr(loop._Session, "_score",
                        lambda self, rows, direction, rate: PilotScore(0.5, 0.5, 0, 0, 0, len(rows), rate))  # fmt: skip
    if panel_reads is not None:
        monkeypatch.setattr(loop, "panel_agreement", lambda held, generated, seed=0: panel_reads)
    return sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                      pilot_rows_per_label=8, proposals=[proposal])  # fmt: skip


@pytest.mark.parametrize("folds_read", [None, 0.4])
def test_the_label_check_is_kept_without_the_panels_vote_only_where_the_folds_read_each_other_clearly(
        tmp_path, spec_path, seed_csv, monkeypatch, folds_read):  # fmt: skip
    """The panel sees no gain from the label check. Where the folds' classifiers read each other's real rows nearly
    all right, the check is kept anyway, and the log and the tuned spec say why; where they read them barely above
    chance (40%, chance 33%), a check fitted on them could only drop rows at random, and the panel's vote stands."""
    from sdgen.tuning.proposals import label_check

    result = _tune_where_the_panel_sees_no_gain(tmp_path, spec_path, seed_csv, monkeypatch, label_check, folds_read)
    _, check = result.rounds
    assert len(LABELS) == 3 and check.name == "label-check" and check.gains == [0.0, 0.0] and check.again == {}
    tuned, log = result.spec_path.read_text(), result.log_path.read_text()
    if folds_read is not None:
        assert result.judge_accuracy == [0.4, 0.4] and not check.trusted and not check.kept
        assert "label_check" not in yaml.safe_load(tuned)
        return
    assert min(result.judge_accuracy) > 0.9 and check.kept
    assert re.fullmatch(r"the folds read each other's real rows right \d+% / \d+% \(chance 33%\)", check.trusted)
    assert yaml.safe_load(tuned)["label_check"] == {"path": "seed.csv", "min_ratio": 0.8}
    assert f"kept whatever the score: {check.trusted}" in tuned and f"| yes: {check.trusted} |" in log


def test_a_kept_screen_drops_later_pilots_rows_after_they_are_written_not_while(tmp_path, spec_path, seed_csv):
    """Once the label check is kept, later pilots generate without it (no row dropped and replaced on the way: no
    rejected rows file) and it screens what they wrote, as it screened the baseline's: the round scores the rows it
    keeps, at the rate they were written."""
    from sdgen.tuning.proposals import label_check

    data = yaml.safe_load(spec_path.read_text())
    spec_path.write_text(yaml.safe_dump({**data, "task": "Write short notes. FIT. MIXED."}, sort_keys=False))
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        pilot_rows_per_label=8, proposals=[label_check, with_task("NOTE")])  # fmt: skip
    _, check, note = result.rounds
    assert check.kept and [s.rows for s in note.scores] == [s.rows for s in check.scores]  # the same plan, screened
    workdir = tmp_path / "tuned.tune"
    for fold in (0, 1):
        written = pd.read_csv(workdir / f"round2-note-fold{fold}.csv")
        assert len(written) == 24 and all(s.rows < 24 for s in note.scores)
        assert not (workdir / f"round2-note-fold{fold}.rejected.csv").exists()
    assert yaml.safe_load(result.spec_path.read_text())["label_check"]  # the tuned spec still checks online


def test_the_realism_check_drops_rows_that_read_generated_and_the_tuned_spec_learns_from_the_pilots(
        tmp_path, spec_path, seed_csv):  # fmt: skip
    """A model that ends 30% of its rows in words no real row uses: the realism check (a classifier of real rows
    against the pilot's own rows, each row read by one fitted without it) keeps the 60% of each label's rows that
    read least generated, which leaves those out; the held-out fold's realism rises, so it is kept without pilots of
    its own. The tuned spec points at the seed and at the pilot rows it learnt from, and drops such rows online."""
    from sdgen.tuning.proposals import realism_check

    data = yaml.safe_load(spec_path.read_text())
    spec_path.write_text(yaml.safe_dump({**data, "task": "Write short notes. FIT. STIFF."}, sort_keys=False))
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "out" / "tuned.yaml", backend="tune-scripted",
                        pilot_rows_per_label=8, proposals=[realism_check])  # fmt: skip
    baseline, check = result.rounds
    assert check.name == "realism-check" and check.kept and min(check.gains) > 0 and result.pilot_rows == 2 * 24
    assert all(after.realism > before.realism for before, after in zip(baseline.scores, check.scores))
    assert [s.rows for s in check.scores] == [3 * round(0.6 * 8)] * 2  # of each label's 8 rows per pilot
    tuned = yaml.safe_load(result.spec_path.read_text())
    option = tuned["realism_check"]
    assert option["path"] == "../seed.csv" and option["keep"] == 0.6
    assert tuned["balance"] == {"replacements": 4}  # the run's budget (2 x rows) grown for rows that pass 60% as often
    comments = [line for line in result.spec_path.read_text().splitlines() if line.startswith("# tune round")]
    assert len(comments) == 2 and comments[0].startswith("# tune round 1 (realism-check): realism_check: keep the 60%")
    assert comments[1] == "# tune round 1 (realism-check): with `realism_check` above"  # the key it also grew
    assert option["generated"] == "tuned.generated.csv"  # named after the tuned spec: a second tune keeps its own
    learnt = pd.read_csv(result.spec_path.parent / option["generated"])  # both baseline pilots' rows
    assert len(learnt) == 48 and 0.1 < learnt["text"].str.endswith(STIFF).mean() < 0.5
    summary = sdgen.generate(result.spec_path, backend="tune-scripted", rows=60, output=tmp_path / "out.csv")
    df = pd.read_csv(summary.output)
    assert len(df) == 60 and df["text"].str.endswith(STIFF).mean() < 0.1
    assert sum(summary.screened("unreal").values()) > 15  # ~40% of what it parsed: 60 rows kept of ~100


def test_a_realism_check_needs_the_rows_it_learns_generated_text_from(tmp_path, spec_path, seed_csv):
    data = yaml.safe_load(spec_path.read_text())
    for given, said in [(True, "realism_check needs the rows this spec generated before"),
                        ({"path": "seed.csv"}, "realism_check.generated: required field is missing"),
                        ({"generated": "g.csv"}, "realism_check takes its real rows from examples_from")]:
        with pytest.raises(sdgen.SdgenError, match=re.escape(said)):
            build_spec({**data, "realism_check": given}, base_dir=tmp_path)
    spec = build_spec({**data, "realism_check": {"path": "seed.csv", "generated": "none.csv"}}, base_dir=tmp_path)
    with pytest.raises(sdgen.SdgenError, match=r"none.csv"):
        sdgen.generate(spec, backend="tune-scripted", output=tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("panel_reads", [0.3, None])
def test_the_real_judge_is_kept_without_the_panels_vote_only_where_the_model_reads_real_rows_clearly_better(
        tmp_path, spec_path, seed_csv, monkeypatch, panel_reads):  # fmt: skip
    """The panel sees no gain from the judge. Where the panel reads held-out real rows at 30% and the model nearly
    all of them, the judge is kept anyway, and the log and the tuned spec say why; where the panel reads them as
    well as the model, its vote stands and the judge is dropped."""
    from sdgen.tuning.proposals import judged_by_real

    result = _tune_where_the_panel_sees_no_gain(tmp_path, spec_path, seed_csv, monkeypatch, judged_by_real, panel_reads)
    _, judge = result.rounds
    assert judge.name == "real-judge" and judge.gains == [0.0, 0.0] and min(result.model_accuracy) > 0.9
    tuned, log = result.spec_path.read_text(), result.log_path.read_text()
    reads = " and ".join(f"{a:.1%}" for a in result.model_accuracy)  # measured for the judge's round, and logged
    assert f"shown one fold's real rows as examples (what `not:` lines are read by), {reads}; " in log
    least, right, overall = result.model_sure  # the judge's least confidence, learnt from that reading
    assert (f"; {right:.0%} of those it read at {least:g} or more, {overall:.0%} of all" if least else
            "those it read more surely were not read right more often") in log  # fmt: skip
    if panel_reads is None:
        assert min(result.judge_accuracy) > 0.9 and not judge.trusted and not judge.kept
        assert "judge" not in yaml.safe_load(tuned)
        return
    assert judge.kept
    assert re.fullmatch(r"the model reads held-out real rows right \d+% / \d+%, the panel 30% / 30%", judge.trusted)
    assert judge.again == {}  # no second pilots: the gains do not decide
    assert yaml.safe_load(tuned)["judge"]["real"] == {"path": "seed.csv"}
    assert f"kept whatever the score: {judge.trusted}" in tuned and f"| yes: {judge.trusted} |" in log
    # the model, which screened the pilots, also read their label fit: the log says its figure runs high
    assert result.label_reader == "model" and SELF_READ in log


@pytest.mark.parametrize("panel_reads", [0.3, 0.45])
def test_where_the_panel_barely_reads_the_labels_the_model_reads_the_pilots_label_fit(
        tmp_path, spec_path, seed_csv, monkeypatch, panel_reads):  # fmt: skip
    """The folds' classifiers read each other's real rows at 30% (chance 33%) and the model nearly all of them: the
    model, shown the held-out fold, reads the pilots' label fit (noise: as one label at most; the label's own words:
    all), before any change rests on its reading, and the log says so. At 45% the panel still reads it."""
    from sdgen.tuning import loop

    monkeypatch.setattr(loop, "panel_agreement", lambda held, generated, seed=0: panel_reads)
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        pilot_rows_per_label=8, proposals=[with_task("FIT")])  # fmt: skip
    baseline, fit = result.rounds
    assert fit.kept and min(result.model_accuracy or [0]) > 0.9 if panel_reads < 0.4 else result.model_accuracy == []
    log = " ".join(result.log_path.read_text().split())
    if panel_reads > 0.4:  # the panel (as `score` fits it, on the real rows) reads the words: all or nothing
        assert result.label_reader == "panel" and "label fit instead" not in log
        return
    assert result.label_reader == "model"
    # noise is read as one label at most (its lean), the label's own words as that label
    assert all(s.agreement <= 0.34 for s in baseline.scores) and [s.agreement for s in fit.scores] == [1.0, 1.0]
    reads = " / ".join(f"{a:.0%}" for a in result.model_accuracy)
    assert f"so the spec's model, which reads them {reads}, read the pilots' label fit instead" in log
    assert "overstates" not in log  # no screen of the model's: its reading of the pilots is not its own choice


def _tune_with_a_trusted_judge(tmp_path, spec_path, seed_csv, monkeypatch):
    """Tune with the real judge as the one proposal, the model trusted over the panel, which reads real rows at 45%:
    clearly above chance (33%), so the panel still reads the pilots' label fit."""
    from sdgen.tuning import loop
    from sdgen.tuning.proposals import judged_by_real

    monkeypatch.setattr(loop, "panel_agreement", lambda held, generated, seed=0: 0.45)
    data = yaml.safe_load(spec_path.read_text())
    spec_path.write_text(yaml.safe_dump({**data, "task": "Write short notes. FIT. MIXED."}, sort_keys=False))
    return sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                      pilot_rows_per_label=8, proposals=[judged_by_real], budget_minutes=5)  # fmt: skip


@pytest.mark.parametrize("pace", [0.001, 200.0])
def test_the_judges_round_counts_the_readings_it_brings_with_it_against_the_budget(tmp_path, spec_path, seed_csv,
                                                                                  monkeypatch, pace):  # fmt: skip
    """The judge's own reading may be cached (`not:` lines read the same rows), yet keeping it means reading the
    folds' real rows (`_trusted`) and every best pilot row again at the end: at the model's pace those readings
    either fit the budget (the judge is tried, and its re-reading held back) or leave it untried. What is held back
    is that re-reading at `REREAD_COST`, however long the round's own readings took (here each 0.05 s)."""
    import time

    from sdgen.tuning import loop

    monkeypatch.setattr(loop._Session, "_reading_seconds", lambda self, texts: pace * texts)
    held_back = []
    run = loop._Session.run

    def running(self, *args):
        stopped = run(self, *args)
        held_back.append(self.rederiving)
        return stopped

    monkeypatch.setattr(loop._Session, "run", running)
    read, score = [], loop._Session.score

    def scoring(self, prefix, prompts, labels):
        read.append(len(prompts))
        time.sleep(0.05)
        return score(self, prefix, prompts, labels)

    monkeypatch.setattr(loop._Session, "score", scoring)
    result = _tune_with_a_trusted_judge(tmp_path, spec_path, seed_csv, monkeypatch)
    if pace > 1:  # 36 real rows and 48 pilot rows twice: 132 texts, 7 hours
        assert [r.name for r in result.rounds] == ["baseline"] and "budget ran out for judged_by_real" in result.stopped
        assert read == [1]  # the probe's one row: the judge was not derived (a reading of the pilots' rows) to no end
        return
    (_, judge), rows = result.rounds, 2 * 24
    assert judge.kept and held_back == [pytest.approx(loop.REREAD_COST * pace * rows)]


def test_before_the_judge_has_read_a_row_its_readings_are_owed_at_the_baselines_pace(tmp_path, spec_path, seed_csv,
                                                                                    monkeypatch):  # fmt: skip
    """The judge's round may come before any reading has timed the model (no `not:` lines first): its readings of
    the folds and of the pilots are then owed at the baseline's seconds per row, not taken to cost nothing."""
    from sdgen.tuning import loop

    owed, owe = [], loop._Session._owed_by_reading

    def owing(self, best):
        owed.append((self.reading[1], self.row_seconds, owe(self, best)))
        return owed[-1][2]

    monkeypatch.setattr(loop._Session, "_owed_by_reading", owing)
    result = _tune_with_a_trusted_judge(tmp_path, spec_path, seed_csv, monkeypatch)
    ((read, row_seconds, (now, end)),) = owed
    baseline = result.rounds[0]
    assert read == 0 and row_seconds == pytest.approx(baseline.seconds / sum(s.rows for s in baseline.scores))
    assert now == pytest.approx(36 * row_seconds) and end == pytest.approx(loop.REREAD_COST * 48 * row_seconds)
    assert result.held_back_seconds >= end > 0
    assert f"{result.held_back_seconds:.0f} s held back for that" in result.log_path.read_text()


def test_a_pilot_is_scored_by_label_fit_and_realism():
    """The compared score is the mean of the panel's agreement (rows that read like their label's held-out real rows:
    1, the same rows under swapped labels: 0) and realism (rows written as the held-out rows are cannot be told from
    them; rows in another register can, every one); a pilot's F1 figures are measured beside it."""
    from sdgen.tuning.score import panel, realism, score_pilot

    sunny, rainy = "sunny warm bright dry day", "rainy cold wet grey night"
    held = pd.DataFrame({"text": [f"{sunny} {i}" for i in range(8)] + [f"{rainy} {i}" for i in range(8)],
                         "label": ["a"] * 8 + ["b"] * 8})  # fmt: skip
    alike = pd.DataFrame({"text": [f"{sunny} {i}" for i in range(20, 26)] + [f"{rainy} {i}" for i in range(20, 26)],
                          "label": ["a"] * 6 + ["b"] * 6})  # fmt: skip
    unlike = pd.DataFrame({"text": [f"so {sunny} again!", f"oh a {rainy} again!"] * 6, "label": ["a", "b"] * 6})
    swapped = alike.assign(label=alike["label"].map({"a": "b", "b": "a"}))
    good, bad, other = (score_pilot(r, held, held, ["a", "b"], 1.0) for r in (alike, swapped, unlike))
    assert (good.agreement, bad.agreement, other.agreement) == (1.0, 0.0, 1.0)
    assert good.realism > 0.75 and other.realism == 0.0 and bad.realism == good.realism  # labels unused
    assert good.value == (good.agreement + good.realism) / 2 and good.value > other.value > bad.value
    assert good.f1 == 1.0 and bad.f1 == 0.0 and len(panel(0)) == 3
    assert realism(held, alike.head(1)) == 0.0  # too few rows to cross-validate: no evidence of realism


def test_realism_of_rows_from_the_real_rows_own_source_is_at_most_one():
    """On few rows a cross-validated AUC falls below 0.5 by chance (unclipped, two draws of 15 texts from one word
    list scored up to 1.63): realism is capped at 1, what rows that cannot be told from real ones score."""
    from sdgen.tuning.score import realism

    rng = random.Random(0)
    words = "the a day night warm cold bright grey dry wet sunny rainy".split()
    scores = [realism(*(pd.DataFrame({"text": [" ".join(rng.sample(words, 5)) for _ in range(15)]}) for _ in "ab"),
                      seed=trial) for trial in range(6)]  # fmt: skip
    assert max(scores) == 1.0 and min(scores) > 0.8 and scores.count(1.0) >= 2


def test_a_split_round_pilots_its_losing_direction_again_and_keeps_the_change_when_the_mean_gain_is_above_zero(
        tmp_path, spec_path, seed_csv, monkeypatch):  # fmt: skip
    """Pilots scored by a script: a change's effect per (direction, seed). ONE gains in direction 0 and loses in
    direction 1, whose second seed gains more than it lost: kept. TWO splits the same way and its second seed loses
    too: dropped (the best spec's second-seed pilot in direction 1 is ONE's, not run again). THREE loses in both
    directions: no second pilot."""
    from sdgen.tuning import loop
    from sdgen.tuning.score import PilotScore

    effects = {"ONE": {(0, 0): 0.05, (1, 0): -0.01, (1, 1): 0.04}, "TWO": {(0, 0): 0.03, (1, 0): -0.02, (1, 1): -0.01},
               "THREE": {(0, 0): -0.02, (1, 0): -0.03}}  # fmt: skip
    piloted = []

    def scripted(self, data, number, direction, name, screens, repeat=0):
        piloted.append((name, direction, repeat))
        gain = sum(e.get((direction, repeat), 0.0) for word, e in effects.items() if word in data["task"])
        value = round(0.5 + gain, 4)
        return pd.DataFrame({"text": ["x"], "label": [LABELS[0]]}), PilotScore(value, value, 0, 0, 0, 1, 1.0)

    monkeypatch.setattr(loop._Session, "_pilot", scripted)
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        proposals=[with_task(w) for w in effects])  # fmt: skip
    _, one, two, three = result.rounds
    assert one.gains == [0.05, -0.01] and one.again == {1: 0.04} and one.decided_gains == [0.05, 0.015] and one.kept
    assert two.again == {1: -0.01} and two.decided_gains == [0.03, -0.015] and not two.kept
    assert three.again == {} and not three.kept
    assert piloted == [("baseline", 0, 0), ("baseline", 1, 0), ("one", 0, 0), ("one", 1, 0), ("best", 1, 1),
                       ("one", 1, 1), ("two", 0, 0), ("two", 1, 0), ("two", 1, 1), ("three", 0, 0), ("three", 1, 0)]  # fmt: skip
    assert yaml.safe_load(result.spec_path.read_text())["task"] == "Write short notes. ONE."
    assert "fold 0 again +0.040 (mean +0.0150)" in result.spec_path.read_text()
    assert "| 1 | one: task says ONE | yes | +0.050 / -0.010; fold 0 again +0.040 (mean +0.0150) |" in result.log_path.read_text()


def test_a_screening_change_is_never_piloted_and_a_split_screens_the_best_specs_second_pilot(
        tmp_path, spec_path, seed_csv, monkeypatch):  # fmt: skip
    """A change that only drops rows (`Change.screen`, the label check) is scored on the rows it keeps of the best
    spec's pilots; when its directions split, the best spec is piloted on the second seed and screened again."""
    from sdgen.tuning import loop
    from sdgen.tuning.score import PilotScore

    piloted = []
    effects = {(0, 0): 0.05, (1, 0): -0.01, (1, 1): 0.03}  # (direction, seed) -> the screened rows' gain

    def scripted_pilot(self, data, number, direction, name, screens, repeat=0):
        piloted.append((name, direction, repeat))
        rows = pd.DataFrame({"text": [f"t{i}" for i in range(10)], "label": LABELS[0], "repeat": repeat})
        return rows, self._score(rows, direction, 2.0)

    def scripted_score(self, generated, direction, rows_per_s):  # the rows it keeps gain; random ones do not
        screened = list(generated["text"]) == [f"t{i}" for i in range(5)]
        gain = effects[(direction, int(generated["repeat"].iloc[0]))] if screened else 0.0
        value = round(0.5 + gain, 4)
        return PilotScore(value, value, 0, 0, 0, len(generated), rows_per_s)

    def halve(data, ev):
        return Change("halve", "keeps half", {**data, "task": f"{data['task']} HALF."}, ["task"], lambda rows: rows.head(5))

    monkeypatch.setattr(loop._Session, "_pilot", scripted_pilot)
    monkeypatch.setattr(loop._Session, "_score", scripted_score)
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted", proposals=[halve])
    _, screened = result.rounds
    assert screened.gains == [0.05, -0.01] and screened.again == {1: 0.03} and screened.kept
    assert piloted == [("baseline", 0, 0), ("baseline", 1, 0), ("best", 1, 1)]  # the change itself: never piloted
    # half the rows at half the rate (a little less: screening takes its time too)
    assert [s.rows for s in screened.scores] == [5, 5] and all(0.99 < s.rows_per_s < 1.0 for s in screened.scores)


def test_a_screen_must_beat_random_drops_of_as_many_rows(tmp_path, spec_path, seed_csv, monkeypatch):
    """Fewer rows alone lift this script's score (as a pilot's score moves when rows are dropped): a screen that drops
    the good rows gains over the pilot it thinned, yet not over random drops of as many rows of each label, and is
    dropped; one that keeps only the good rows scores above every random drop and is kept."""
    from sdgen.tuning import loop
    from sdgen.tuning.score import PilotScore

    good_rows = {"t0", "t1", "t2"}  # one per label

    def scripted_pilot(self, data, number, direction, name, screens, repeat=0):
        rows = pd.DataFrame({"text": [f"t{i}" for i in range(24)], "label": LABELS * 8})
        return rows, self._score(rows, direction, 2.0)

    def scripted_score(self, generated, direction, rows_per_s):
        good = generated["text"].isin(good_rows).mean()
        value = round(0.5 + (24 - len(generated)) * 0.01 + 0.1 * good, 4)
        return PilotScore(value, value, 0, 0, 0, len(generated), rows_per_s)

    def screen(name: str, kept: set[str]):
        def proposal(data, ev):
            return Change(name, f"keeps {name}", {**data, "task": f"{data['task']} {name}."}, ["task"],
                          lambda rows: rows[rows["text"].isin(kept)])  # fmt: skip

        proposal.__name__ = name
        return proposal

    monkeypatch.setattr(loop._Session, "_pilot", scripted_pilot)
    monkeypatch.setattr(loop._Session, "_score", scripted_score)
    blind = screen("blind", {f"t{i}" for i in range(12, 24)})  # four rows per label, none of them good: 0.62
    good = screen("good", good_rows)  # one row per label, all good: 0.81
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        proposals=[blind, good])  # fmt: skip
    baseline, blind_round, good_round = result.rounds
    assert all(s.value == 0.5125 for s in baseline.scores)  # 3 good rows of 24
    assert all(s.value == 0.62 for s in blind_round.scores)  # above the pilot it thinned ...
    assert all(d >= 0.62 for d in blind_round.random_drops) and not blind_round.kept  # ... not above random drops
    assert all(0.71 <= d < 0.81 for d in good_round.random_drops) and good_round.kept  # 1 in 512 draws holds all 3
    assert good_round.gains == [round(0.81 - d, 4) for d in good_round.random_drops]
    assert yaml.safe_load(result.spec_path.read_text())["task"] == "Write short notes. good."
    assert "best random drop of as many rows" in result.spec_path.read_text()


def test_a_screen_of_a_pilot_that_wrote_no_rows_is_dropped_not_a_crash(tmp_path, spec_path, seed_csv, monkeypatch):
    from sdgen.tuning import loop
    from sdgen.tuning.score import PilotScore

    def empty_pilot(self, data, number, direction, name, screens, repeat=0):
        rows = pd.DataFrame({"text": [], "label": []})
        return rows, self._score(rows, direction, 0.0)

    def scripted_score(self, generated, direction, rows_per_s):
        return PilotScore(0.0, 0.0, 0, 0, 0, len(generated), rows_per_s)

    def keep_all(data, ev):
        return Change("keep-all", "keeps every row", {**data, "task": f"{data['task']} ALL."}, ["task"], lambda r: r)

    monkeypatch.setattr(loop._Session, "_pilot", empty_pilot)
    monkeypatch.setattr(loop._Session, "_score", scripted_score)
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        proposals=[keep_all])  # fmt: skip
    _, screened = result.rounds
    assert screened.random_drops == [0.0, 0.0] and screened.gains == [0.0, 0.0] and not screened.kept


def test_avoid_lists_are_scored_on_the_best_pilots_rows_and_later_pilots_write_with_them(
        tmp_path, spec_path, seed_csv, monkeypatch):  # fmt: skip
    """A screen that `generates` (avoid lists: prompt text as well) is scored like the label check, on the rows of
    the best spec's pilots it keeps, never piloted; once kept, the next round's pilots generate with it (the online
    step drops what the prompt did not prevent) instead of screening rows written without it."""
    from sdgen.tuning import loop
    from sdgen.tuning.score import PilotScore

    piloted = []

    def scripted_pilot(self, data, number, direction, name, screens, repeat=0):
        piloted.append((name, direction, "AVOID" in data["task"], len(screens)))
        rows = pd.DataFrame({"text": [f"t{i}" for i in range(10)], "label": LABELS[0]})
        return rows, self._score(rows, direction, 2.0)

    def scripted_score(self, generated, direction, rows_per_s):
        value = 0.6 if list(generated["text"]) == [f"t{i}" for i in range(5)] else 0.5
        return PilotScore(value, value, 0, 0, 0, len(generated), rows_per_s)

    def avoid(data, ev):
        change = Change("avoid-like", "drops half", {**data, "task": f"{data['task']} AVOID."}, ["task"],
                        lambda rows: rows.head(5))  # fmt: skip
        change.generates = True
        return change

    monkeypatch.setattr(loop._Session, "_pilot", scripted_pilot)
    monkeypatch.setattr(loop._Session, "_score", scripted_score)
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        proposals=[avoid, with_task("NEXT")])  # fmt: skip
    _, screened, _ = result.rounds
    assert screened.gains == [0.1, 0.1] and screened.kept and [s.rows for s in screened.scores] == [5, 5]
    assert piloted == [("baseline", 0, False, 0), ("baseline", 1, False, 0), ("next", 0, True, 0), ("next", 1, True, 0)]


def test_the_row_budget_leaves_later_rounds_untried(tmp_path, spec_path, seed_csv):
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted", pilot_rows_per_label=8,
                        budget_rows=4 * 24, proposals=[with_task("FIT"), with_task("SWAP")])  # fmt: skip
    assert [r.name for r in result.rounds] == ["baseline", "fit"] and result.pilot_rows == 4 * 24
    assert result.stopped == "the 96-row budget ran out for swap"
    assert "Left untried: the 96-row budget ran out for swap." in result.log_path.read_text()


def test_a_proposal_the_time_budget_cannot_fit_is_skipped_and_cheaper_ones_still_run(tmp_path, spec_path, seed_csv,
                                                                                      monkeypatch):  # fmt: skip
    """A round is estimated from the best spec's pilots times the proposal's relative cost: one that would overrun
    the minutes is left untried, and the next, cheaper one still runs. The log says what budget would have tried it
    (a machine's pace decides how far the minutes go)."""
    from sdgen.tuning import loop

    monkeypatch.setattr(loop, "RELATIVE_COST", {"swap": 1e6})
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted", pilot_rows_per_label=8,
                        budget_minutes=30, proposals=[with_task("SWAP"), with_task("FIT")])  # fmt: skip
    assert [r.name for r in result.rounds] == ["baseline", "fit"]
    reach = re.fullmatch(r"the 30-minute budget ran out for swap \(about `--minutes (\d+)` would have tried swap\)",
                         result.stopped)  # fmt: skip
    assert reach and int(reach.group(1)) > 30 and f"Left untried: {result.stopped}." in result.log_path.read_text()


def test_a_screen_that_costs_no_pilot_is_tried_past_the_budget(tmp_path, spec_path, seed_csv):
    """The realism check, last in the list, screens the best pilots' rows in seconds: a budget spent on the rounds
    before it does not leave it untried."""
    from sdgen.tuning.proposals import realism_check

    data = yaml.safe_load(spec_path.read_text())
    spec_path.write_text(yaml.safe_dump({**data, "task": "Write short notes. FIT. STIFF."}, sort_keys=False))
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted", pilot_rows_per_label=8,
                        budget_rows=2 * 24, proposals=[with_task("NOTE"), realism_check])  # fmt: skip
    assert [r.name for r in result.rounds] == ["baseline", "realism-check"] and result.pilot_rows == 2 * 24
    assert result.stopped == "the 48-row budget ran out for note" and result.rounds[-1].kept


def test_the_default_budget_is_five_minutes_per_label(tmp_path, spec_path, seed_csv, capsys, monkeypatch):
    """Every pilot writes its rows per label, so the default minutes grow with the labels: the same rounds fit a
    task of any size (15 minutes for 3 labels; here a 2-label task through the command, 10)."""
    from sdgen.tuning import loop

    monkeypatch.setattr(loop, "RELATIVE_COST", {"swap": 1e6})
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        pilot_rows_per_label=8, proposals=[with_task("SWAP")])  # fmt: skip
    assert result.budget_minutes == 15 and result.stopped.startswith("the 15-minute budget ran out for swap (about")
    assert "of a 15-minute budget" in result.log_path.read_text()

    two = yaml.safe_load(spec_path.read_text())
    two["labels"] = {label: two["labels"][label] for label in LABELS[:2]}
    two_spec = tmp_path / "two.yaml"
    two_spec.write_text(yaml.safe_dump(two, sort_keys=False))
    seed = pd.read_csv(seed_csv)
    seed[seed["label"].isin(LABELS[:2])].to_csv(tmp_path / "two.csv", index=False)
    monkeypatch.setattr(loop, "PROPOSALS", [with_task("SWAP")])
    err = cli_ok(capsys, monkeypatch, "tune", two_spec, "--real", tmp_path / "two.csv", "--backend", "tune-scripted",
                 "--pilot-rows", "8")  # fmt: skip
    assert "left untried: the 10-minute budget ran out for swap" in " ".join(err.split())
    assert "of a 10-minute budget" in (tmp_path / "two.tuned.tune.md").read_text()


def test_a_round_counts_the_time_its_change_took_to_derive(tmp_path, spec_path, seed_csv):
    """Deriving a change can ask the model (`not:` lines): its time is part of the round, so the budget sees it."""
    import time

    def slow_fit(data, ev):
        time.sleep(0.3)
        return with_task("FIT")(data, ev)

    slow_fit.__name__ = "slow_fit"
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        pilot_rows_per_label=8, proposals=[slow_fit])  # fmt: skip
    assert result.rounds[1].kept and result.rounds[1].seconds >= 0.6  # derived twice, once per direction
    assert result.rederive_seconds >= 0.3  # and once more from the whole seed, which the log reports
    assert f"{result.rederive_seconds:.0f} s of it deriving the kept changes again" in result.log_path.read_text()


def test_a_change_whose_deriving_used_up_the_budget_is_not_piloted(tmp_path, spec_path, seed_csv, monkeypatch):
    """Deriving can take minutes (the model reads the pilots' rows for `not:` lines): the budget is checked again
    before the change's pilots, and a round that no longer fits is left untried rather than run past the budget."""
    from sdgen.tuning import loop

    derived = []

    def slow_fit(data, ev):
        derived.append(ev)
        return with_task("FIT")(data, ev)

    slow_fit.__name__ = "slow_fit"
    check = loop._Session._out_of_budget
    monkeypatch.setattr(loop._Session, "_out_of_budget",  # the budget runs out while the change is derived
                        lambda self, *a: "the 1-minute budget ran out" if derived else check(self, *a))
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        pilot_rows_per_label=8, proposals=[slow_fit])  # fmt: skip
    assert len(derived) == 2 and [r.name for r in result.rounds] == ["baseline"] and not result.changes
    assert result.stopped.startswith("the 1-minute budget ran out for slow_fit (about `--minutes ")


def test_a_round_whose_pilots_outrun_the_budget_is_abandoned(tmp_path, spec_path, seed_csv, monkeypatch):
    """An estimate that was too short does not break the budget: a pilot past the minutes stops at its next row, its
    round is left untried, and the tune ends with what it had kept."""
    from sdgen.tuning import loop

    monkeypatch.setattr(loop._Session, "_out_of_budget", lambda self, *a: "")  # every estimate says it fits
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        pilot_rows_per_label=8, budget_minutes=1e-4, proposals=[with_task("FIT"), with_task("NEXT")])
    assert [r.name for r in result.rounds] == ["baseline"] and not result.changes  # the baseline always runs
    assert result.stopped == "the 0.0001-minute budget ran out for fit, next"
    assert "FIT" not in result.spec_path.read_text()


def test_the_screens_are_still_tried_after_a_round_outran_the_budget(tmp_path, spec_path, seed_csv, monkeypatch):
    """A round of pilots cut by the budget leaves the later prompt changes untried, not the realism check, which
    screens the best pilots' rows in seconds."""
    from sdgen.tuning import loop
    from sdgen.tuning.proposals import realism_check

    monkeypatch.setattr(loop._Session, "_out_of_budget", lambda self, *a: "")  # every estimate says it fits
    data = yaml.safe_load(spec_path.read_text())
    spec_path.write_text(yaml.safe_dump({**data, "task": "Write short notes. FIT. STIFF."}, sort_keys=False))
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        pilot_rows_per_label=8, budget_minutes=1e-4,
                        proposals=[with_task("NOTE"), with_task("NEXT"), realism_check])  # fmt: skip
    assert [r.name for r in result.rounds] == ["baseline", "realism-check"] and result.rounds[-1].kept
    assert result.stopped == "the 0.0001-minute budget ran out for note, next"


def test_the_deadline_lets_rows_through_until_it_passes():
    import time

    from sdgen.progress import NullProgress
    from sdgen.tuning.loop import _Deadline, _OutOfTime

    _Deadline(NullProgress(), None).update(1, 10)  # no deadline (the baseline)
    _Deadline(NullProgress(), time.perf_counter() + 60).update(1, 10)
    with pytest.raises(_OutOfTime):
        _Deadline(NullProgress(), time.perf_counter() - 1).update(1, 10)


def test_the_judge_reads_the_same_pilot_rows_once_for_every_proposal_that_asks(tmp_path, spec_path, seed_csv,
                                                                              monkeypatch):  # fmt: skip
    """`not:` lines and contrasts both ask how the best pilot's rows are read: the model reads them once."""
    from sdgen.tuning import loop

    read = []
    score = loop._Session.score

    def counting(self, prefix, prompts, labels):
        read.extend(prompts)
        return score(self, prefix, prompts, labels)

    def reads(name: str):
        def proposal(data, ev):
            ev.judge(list(ev.generated["text"]))  # finds nothing to change

        proposal.__name__ = name
        return proposal

    monkeypatch.setattr(loop._Session, "score", counting)
    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        pilot_rows_per_label=8, proposals=[reads("first"), reads("second")])  # fmt: skip
    assert result.skipped == ["first", "second"]
    # a real row (the probe for log-probabilities), then each direction's pilot once; the folds' real rows are read
    # only when a change rests on the model's reading of them (`_trusted`)
    assert len(read) == 1 + 2 * 24 and result.model_accuracy == []
    assert "reading of real rows was not measured" in result.log_path.read_text()


def test_a_round_that_overran_its_estimate_makes_later_estimates_longer():
    """The budget check learns from the rounds it has seen: a round that took 1.4x its estimate scales every later
    estimate by 1.4, and a round that finished early does not shrink them again."""
    from sdgen.tuning.loop import RoundEstimates

    estimates = RoundEstimates()
    assert estimates.of(100.0, 2.0) == 200.0
    estimates.observe(200.0, 280.0)
    assert estimates.of(100.0, 2.0) == pytest.approx(280.0) and estimates.of(50.0, 1.0) == pytest.approx(70.0)
    estimates.observe(70.0, 35.0)
    assert estimates.of(50.0, 1.0) == pytest.approx(70.0)


def test_a_seed_too_small_to_judge_by_is_called_out(tmp_path, spec_path, seed_csv, capsys, monkeypatch):
    """Tune says how well each fold's classifiers read the other fold's real rows (and the model, shown one fold as
    examples, once a change rests on its reading); when that is near chance (labels that the words do not tell apart), the log and the
    command warn that its decisions are mostly noise."""
    from sdgen.tuning.score import panel_agreement

    seed = pd.read_csv(seed_csv)
    noise = seed.assign(label=seed["label"].sample(frac=1, random_state=3).to_numpy())  # labels unrelated to words
    noisy_csv = tmp_path / "noisy.csv"
    noise.to_csv(noisy_csv, index=False)
    folds = SeedSet.load(seed_csv, LABELS).folds(2, 0)
    assert panel_agreement(folds[1], folds[0]) == 1.0
    noisy = SeedSet.load(noisy_csv, LABELS).folds(2, 0)
    assert panel_agreement(noisy[1], noisy[0]) < 0.6

    def run(real) -> tuple[str, str]:
        err = cli_ok(capsys, monkeypatch, "tune", spec_path, "--real", real, "--backend", "tune-scripted",
                     "--pilot-rows", "8", "--budget-rows", "48")  # fmt: skip
        return err, spec_path.with_name(f"{spec_path.stem}.tuned.tune.md").read_text()

    err, log = run(seed_csv)
    assert "How well a fold can judge: the panel fitted on one fold labels the other fold's real rows right 100.0% and 100.0%" in log
    # no round ran, so no change rested on the model's reading of real rows: it was not measured
    assert "the spec's model's reading of real rows was not measured: no change tried rested on it." in log
    assert "Weak judge" not in log and "coin flip" not in err
    err, log = run(noisy_csv)
    assert "**Weak judge:**" in log and "keep-or-drop is close to a coin flip" in " ".join(err.split())
    assert "is worth writing into its description" in " ".join(err.split())  # what the user can do about it


def test_folds_are_disjoint_stratified_and_cover_the_seed(seed_csv):
    seed = SeedSet.load(seed_csv, LABELS)
    folds = seed.folds(2, seed=3)
    texts = [set(f["text"]) for f in folds]
    assert not texts[0] & texts[1] and texts[0] | texts[1] == set(seed.rows["text"])
    assert all(f["label"].value_counts().to_dict() == {label: 6 for label in LABELS} for f in folds)
    assert [list(f["text"]) for f in seed.folds(2, seed=3)] == [list(f["text"]) for f in folds]  # seeded
    assert [list(f["text"]) for f in seed.folds(2, seed=4)] != [list(f["text"]) for f in folds]


BAD_SEEDS = {
    "a label the spec lacks": (lambda df: pd.concat([df, df.head(5).assign(label="bored")]),
                               "has rows labelled 'bored', which the spec lacks"),
    "a spec label the seed lacks": (lambda df: df[df["label"] != "sad"], "has no rows labelled 'sad'"),
    "fewer than 5 rows of a label": (lambda df: pd.concat([df[df["label"] != "sad"], df[df["label"] == "sad"].head(3)]),
                                     "too few rows: 'sad' has 3; give at least 5 per label"),
    "duplicate rows": (lambda df: pd.concat([df, df.iloc[[4]].assign(text=lambda d: d["text"].str.upper())]),
                       "1 duplicate rows (data row 37 repeats row 5"),
    "no rows": (lambda df: df.head(0), "no rows with text"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_SEEDS))
def test_bad_seeds_are_one_line_errors(tmp_path, spec_path, seed_csv, capsys, monkeypatch, case):
    change, expected = BAD_SEEDS[case]
    bad = tmp_path / "bad.csv"
    change(pd.read_csv(seed_csv)).to_csv(bad, index=False)
    line = cli_error(capsys, monkeypatch, "tune", spec_path, "--real", bad, "--backend", "tune-scripted")
    assert expected in line and str(bad) in line
    assert not (tmp_path / "spec.tuned.yaml").exists()


def test_an_empty_seed_file_and_a_wrong_column_are_one_line_errors(tmp_path, spec_path, seed_csv, capsys, monkeypatch):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "the file is empty" in cli_error(capsys, monkeypatch, "tune", spec_path, "--real", empty)
    line = cli_error(capsys, monkeypatch, "tune", spec_path, "--real", seed_csv, "--text-col", "body")
    assert "no column 'body' (columns: text, label); name them with --text-col / --label-col" in line


def test_a_common_word_is_no_marker_of_the_short_rows_that_say_it_less_often():
    """Rows of one label are short, the other's long and saying "the" and "and" several times each: the short rows'
    markers are their own words, not the common ones that a once-per-row count made look like theirs."""
    review = [f"A {w} film and the cast shines." for w in ("warm", "bold", "witty", "tender", "brave", "sly", "lush", "deft")]
    plot = [f"The {w} man leaves the town and the farm, and the sea takes the boat and the nets of the village."
            for w in ("old", "young", "lost", "tall", "quiet", "poor", "blind", "proud")]  # fmt: skip
    rows = pd.DataFrame({"text": review + plot, "label": ["fresh"] * 8 + ["plot"] * 8})
    fresh, plot = profile.markers(rows, "fresh", n=12), profile.markers(rows, "plot", n=12)
    assert {"film", "cast", "shines"} <= set(fresh) and not {"the", "and"} & set(fresh)
    assert "the" in plot


def test_what_tune_reads_in_real_rows():
    real = pd.DataFrame({"text": ["@amy please, so sad today #sad", "@bo please, feeling low #sad", "@cy please, lost my keys #sad",
                                  "Great news, thank you!", "Thank you so much, great work!", "Thank you, great."],
                         "label": ["sad", "sad", "sad", "calm", "calm", "calm"]})  # fmt: skip
    calm = [f"Please, thank you {w}." for w in ("ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal")]
    generated = pd.DataFrame({"text": [*real["text"][:2], *calm], "label": ["sad", "sad", *["calm"] * 8]})
    assert profile.markers(real, "sad") == ["please", "#sad"] and {"thank", "great"} <= set(profile.markers(real, "calm"))
    assert profile.overused(generated, real, "calm") == ["please"]
    hint = style_hints({"task": "Write."}, Evidence(real, generated))
    assert hint is not None and "about half mention someone as @user" in hint.summary
    assert "about half carry a #hashtag" in hint.summary
    avoid = avoid_overused({"task": "t", "labels": {"calm": "Calm.", "sad": "Sad."}}, Evidence(real, generated))
    assert avoid is not None and avoid.data["labels"]["calm"]["avoid"] == ["please"]
    assert "avoid" not in avoid.data["labels"]["sad"]
    # scored on the rows the online step would keep: every calm row says "Please"; sad avoids nothing
    assert list(avoid.screen(generated)["text"]) == list(real["text"][:2]) and avoid.generates
    # a phrase one of the label's examples holds, as the spec reads it (a curly apostrophe is a straight one), is never
    # proposed: the tuned spec would be refused
    sad = pd.DataFrame({"text": [f"i can't {w} #sad" for w in ("sleep", "eat", "go")], "label": "sad"})
    cant = pd.concat([real[real["label"] == "calm"], sad], ignore_index=True)
    said = pd.DataFrame({"text": [f"We can't wait, {w}!" for w in calm], "label": "calm"})
    data = {"task": "t", "labels": {"calm": "Calm.", "sad": "Sad."}}
    assert avoid_overused(data, Evidence(cant, said)).data["labels"]["calm"]["avoid"] == ["can't"]
    example = {"label": "calm", "category": "c", "type": "t", "output": "We can\u2019t wait for the weekend"}
    assert avoid_overused({**data, "examples": [example]}, Evidence(cant, said)) is None


def test_not_lines_come_from_what_the_judge_reads_the_rows_as():
    """The judge (the model shown the real rows) reads most calm rows as sad: calm gets a `not:` line naming sad;
    sad, read as itself, gets none. Every real row is an example in the judge's prompt."""
    from sdgen.tuning.proposals import not_from_misreadings

    real = pd.DataFrame({"text": ["so calm", "calm day", "so sad", "sad day"], "label": ["calm", "calm", "sad", "sad"]})
    generated = pd.DataFrame({"text": ["calm a", "calm b", "calm c", "sad a", "sad b"], "label": ["calm"] * 3 + ["sad"] * 2})
    judge = scored_judge(real, {"calm a": 0.05, "calm b": 0.05, "calm c": 0.95, "sad a": 0.05, "sad b": 0.05})
    change = not_from_misreadings({"task": "t", "labels": {"calm": "Calm.", "sad": "Sad."}}, Evidence(real, generated, judge=judge))
    assert change.data["labels"]["calm"]["not"] == "Sad (that is sad)." and "not" not in change.data["labels"]["sad"]
    assert change.summary.endswith("(calm read as sad 67%)")
    assert judge.prefix.count("\nLabel: ") == 4 and judge.prefix.startswith("Label each text as one of: calm, sad.")


def test_a_misread_label_gets_what_the_model_says_sets_it_apart_from_the_label_it_is_read_as():
    """Calm rows are read as sad: the model, shown real calm and sad rows, is asked what calm texts say that sad ones
    do not, and calm's description gets the answer; sad, read as itself, is not asked about."""
    from sdgen.tuning.proposals import contrast_by_model

    real = pd.DataFrame({"text": [f"calm note {i}" for i in range(10)] + [f"sad note {i}" for i in range(10)],
                         "label": ["calm"] * 10 + ["sad"] * 10})  # fmt: skip
    generated = pd.DataFrame({"text": ["calm a", "calm b", "sad a"], "label": ["calm", "calm", "sad"]})
    asked = []

    def ask(prompts: list[str]) -> list[str]:
        asked.extend(prompts)
        return ["  Calm texts rest;\n sad ones grieve. "] * len(prompts)

    judge = lambda texts: ["sad"] * len(texts)  # noqa: E731
    data = {"task": "t", "labels": {"calm": "Calm.", "sad": "Sad."}}
    change = contrast_by_model(data, Evidence(real, generated, ask=ask, judge=judge))
    assert change.data["labels"] == {"calm": {"description": "Calm. Calm texts rest; sad ones grieve."},
                                     "sad": {"description": "Sad."}}  # fmt: skip
    assert change.summary.endswith("(calm against sad, read as it 100%)") and len(asked) == 1
    assert asked[0].count("- calm note") == 8 and asked[0].count("- sad note") == 8
    assert 'asked for "calm" texts keeps writing texts that read as "sad"' in asked[0]
    assert contrast_by_model(data, Evidence(real, generated, judge=judge)) is None  # no model to ask
    assert contrast_by_model(data, Evidence(real, generated, ask=ask, judge=lambda t: ["calm"] * 2 + ["sad"])) is None


def test_the_model_describes_each_label_from_real_rows_of_every_label():
    real = pd.DataFrame({"text": [f"calm note {i}" for i in range(8)] + [f"sad note {i}" for i in range(8)],
                         "label": ["calm"] * 8 + ["sad"] * 8})  # fmt: skip
    asked = []

    def ask(prompts: list[str]) -> list[str]:
        asked.extend(prompts)
        return [f"  Texts that say {p.rsplit('labelled ', 1)[1].split()[0]}.\n" for p in prompts]

    data = {"task": "t", "labels": {"calm": "Calm.", "sad": "Sad."}}
    change = describe_by_model(data, Evidence(real, real.head(0), ask=ask))
    assert change.data["labels"] == {"calm": {"description": 'Calm. Texts that say "calm".'},
                                     "sad": {"description": 'Sad. Texts that say "sad".'}}  # fmt: skip
    # both questions show the same examples of every label, in the same order (one cached prefix)
    assert asked[0].rsplit("In one or two", 1)[0] == asked[1].rsplit("In one or two", 1)[0]
    assert asked[0].count("- calm note") == 6 and asked[0].count("- sad note") == 6
    assert describe_by_model(data, Evidence(real, real.head(0))) is None  # no model to ask


def test_tune_runs_on_the_real_engine_with_a_tiny_model(tmp_path, tiny_models, seed_csv):
    """Pilots and the model's own answers through OpenVINO GenAI (a random tiny model: its texts are noise, and it
    may answer nothing; the path is real), on one loaded engine."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "moods", "task": "Write short notes.", "labels": {label: f"A {label} note." for label in LABELS},
        "categories": {"topic": ["home"]}, "models": [str(tiny_models["chat"])], "sample_size": 30,
        "generation": {"max_new_tokens": 12}, "engine": {"threads": 2}, "output": "moods.csv",
    }))  # fmt: skip
    asked = []

    def ask_then_fit(data, ev):
        asked.append(ev.ask(["Describe a calm note.", "Describe a sad note.", "Describe an angry note."]))
        return with_task("FIT")(data, ev)

    ask_then_fit.__name__ = "fit"
    result = sdgen.tune(spec, seed_csv, output=tmp_path / "tuned.yaml", pilot_rows_per_label=4, proposals=[ask_then_fit])
    assert [r.name for r in result.rounds] == ["baseline", "fit"] and len(result.rounds[1].scores) == 2
    assert result.pilot_rows > 0
    assert len(asked) == 2 + result.rounds[1].kept  # one question batch per direction, and one more to re-derive
    assert all(len(answers) == 3 and all(isinstance(a, str) for a in answers) for answers in asked)
    assert set(sdgen.load_spec(result.spec_path).labels) == set(LABELS)


def test_typical_examples_leave_out_rows_the_sample_contradicts(tmp_path):
    rng = random.Random(3)
    rows = [(label_text(label, rng), label) for label in LABELS for _ in range(10)]
    rows += [(label_text("sad", rng), "calm"), (label_text("angry", rng), "calm")]  # label noise: calm in others' words
    real = pd.DataFrame(rows, columns=["text", "label"])
    ev = Evidence(real, real.head(0), tmp_path / "seed.csv", workdir=tmp_path, stem="mine")
    change = typical_examples({"task": "t"}, ev)
    assert change.data["examples_from"] == {"path": str(tmp_path / "mine.typical.csv"), "per_label": 2, "group_rows": 8}
    chosen = pd.read_csv(tmp_path / "mine.typical.csv")
    assert chosen["label"].value_counts().to_dict() == {label: 4 for label in LABELS}
    calm = chosen.loc[chosen["label"] == "calm", "text"]
    assert all(set(t.split()) <= set(VOCAB["calm"]) for t in calm)  # never the two noisy rows


def test_real_shots_add_each_labels_most_typical_real_row_to_the_specs_examples_and_room_for_its_length():
    rng = random.Random(4)
    rows = [(label_text(label, rng), label) for label in ("calm", "sad") for _ in range(10)]
    rows += [(label_text("sad", rng), "calm")]  # label noise: never shown
    rows = [(f"@Altermundus {text}" if label == "calm" else text, label) for text, label in rows]  # a real handle
    rows += [(" ".join([label_text("angry", rng)] * 12) + " grr", "angry") for _ in range(10)]  # 97 words each
    real = pd.DataFrame(rows, columns=["text", "label"])
    example = {"label": "calm", "category": "place", "type": "home", "output": "A quiet day."}
    angry = {"description": "Angry.", "avoid": ["grr"]}
    data = {"task": "t", "labels": {"calm": "Calm.", "angry": angry, "sad": "Sad."},
            "categories": {"place": ["home", "work"]}, "examples": [example], "generation": {"temperature": 0.7}}
    given = copy.deepcopy(data)
    change = real_shots(data, Evidence(real, real.head(0)))
    assert data == given  # the spec given is left as it was
    examples = change.data["examples"]
    assert examples[0] == example and [ex["label"] for ex in examples[1:]] == ["calm", "sad"]  # angry's hold "grr"
    assert [ex["type"] for ex in examples[1:]] == ["home", "work"]  # types in turn
    assert set(examples[1]["output"].split()) - {"@user"} <= set(VOCAB["calm"])  # the typical row, not the noisy one
    assert examples[1]["output"].startswith("@user ")  # a real person's handle is shown as @user
    assert change.data["generation"] == {"temperature": 0.7}  # 8-word rows fit the default room
    build_spec({**change.data, "sample_size": 3})  # the tuned spec loads
    data["labels"]["angry"] = "Angry."
    longer = real_shots(data, Evidence(real, real.head(0)))
    assert [ex["label"] for ex in longer.data["examples"][1:]] == ["angry", "calm", "sad"]
    assert longer.data["generation"] == {"temperature": 0.7, "max_new_tokens": 160}  # 97 words x 1.5, in 32s
    build_spec({**longer.data, "sample_size": 3})
    assert real_shots(longer.data, Evidence(real, real.head(0))) is None  # shown already: nothing to add


def test_real_anchors_quote_the_derive_folds_rows_and_the_tuned_spec_loads(tmp_path):
    rng = random.Random(5)
    rows = [(label_text(label, rng), label) for label in LABELS for _ in range(6)]
    real = pd.DataFrame(rows, columns=["text", "label"])
    fold = tmp_path / "fold0.csv"
    real.to_csv(fold, index=False)
    data = {"task": "t", "labels": {label: label.title() + "." for label in LABELS}, "categories": {"place": ["home"]}}
    change = real_anchors(data, Evidence(real, real.head(0), fold))
    assert "examples_from" not in data and change.data["examples_from"] == {"path": str(fold), "anchor": True}
    assert build_spec({**change.data, "sample_size": 3}).examples_from.anchor
    assert real_anchors(change.data, Evidence(real, real.head(0), fold)) is None  # real rows shown already
    assert real_anchors(data, Evidence(real, real.head(0))) is None  # no file to quote from


def test_the_tuned_spec_finds_its_files_wherever_it_is_written(tmp_path):
    """A path the user's spec holds (relative to that spec) and one a proposal wrote (absolute) both resolve from the
    tuned spec's own folder."""
    from sdgen.tuning.output import _relocate

    spec = tmp_path / "specs" / "mine.yaml"
    tuned = tmp_path / "out" / "deeper" / "tuned.yaml"
    template = {"prompt_style": "styles/t.j2", "examples_from": {"path": "data/real.csv", "per_label": 2}}
    moved = _relocate(template, spec, tuned)
    assert moved["prompt_style"] == "../../specs/styles/t.j2"
    assert moved["examples_from"] == {"path": "../../specs/data/real.csv", "per_label": 2}
    assert (tuned.parent / moved["examples_from"]["path"]).resolve() == (spec.parent / "data/real.csv").resolve()
    proposed = _relocate({"examples_from": {"path": str(tmp_path / "seed.csv")}}, spec, tuned)
    assert proposed["examples_from"]["path"] == "../../seed.csv"
    short = _relocate({"examples_from": "data/real.csv", "mix_real": "data/real.csv", "label_check":
                       {"path": str(tmp_path / "seed.csv"), "min_ratio": 0.8}, "realism_check":
                       {"generated": str(tmp_path / "seed.generated.csv"), "keep": 0.6}}, spec, tuned)  # fmt: skip
    assert short == {"examples_from": "../../specs/data/real.csv", "mix_real": "../../specs/data/real.csv",
                     "label_check": {"path": "../../seed.csv", "min_ratio": 0.8},
                     "realism_check": {"generated": "../../seed.generated.csv", "keep": 0.6}}


def scored_judge(real, calm: dict[str, float]) -> "ModelJudge":
    """The model judge shown ``real``, scripted: it gives each text ``calm[text]`` for calm and the rest for sad."""
    import math

    from sdgen.tuning.judge import ModelJudge

    def score(prefix, prompts, labels):
        assert labels == ["calm", "sad"] and all(p.startswith(prefix) for p in prompts)
        shares = [calm[p.rsplit("Text: ", 1)[1].removesuffix("\nLabel:")] for p in prompts]
        return [[math.log(c), math.log(1 - c)] for c in shares]

    return ModelJudge(score, real, ["calm", "sad"])


def test_the_real_judge_screens_the_rows_the_model_gives_another_label_and_never_starves_a_label(tmp_path):
    """real-judge: the online judge shown the real rows drops what the model reads as another label, calibrated on
    the rows it reads (it leans to sad: no calm row gets calm at 0.5, yet two of three read as calm relative to its
    lean, which the tuned spec keeps as judge.prior). It is scored by screening the best pilot's rows, and the run
    gets room to replace them. A judge that would reject most of some label's rows is not proposed, nor is one where
    the spec already says what its judge does."""
    from sdgen.tuning.proposals import Withheld, judged_by_real

    real = pd.DataFrame({"text": ["so calm", "so sad"], "label": ["calm", "sad"]})
    generated = pd.DataFrame({"text": ["calm a", "calm b", "calm c", "sad a", "sad b"], "label": ["calm"] * 3 + ["sad"] * 2})
    data = {"task": "t", "labels": {"calm": "Calm.", "sad": "Sad."}}
    seed = tmp_path / "seed.csv"
    judge = scored_judge(real, {"calm a": 0.4, "calm b": 0.1, "calm c": 0.4, "sad a": 0.1, "sad b": 0.1})
    change = judged_by_real(data, Evidence(real, generated, real_path=seed, judge=judge))
    assert change.data["judge"] == {"real": {"path": str(seed)}, "prior": {"calm": 0.22, "sad": 0.78}}
    assert list(change.screen(generated)["text"]) == ["calm a", "calm c", "sad a", "sad b"]
    assert change.data["balance"] == {"replacements": 4}  # calm keeps 2 of 3: 3 / (2/3) rows where 3 were allowed
    assert "keeps 67% of the label it keeps least" in change.summary
    judge = scored_judge(real, {"calm a": 0.1, "calm b": 0.1, "calm c": 0.1, "sad a": 0.3, "sad b": 0.3})  # inverted
    with pytest.raises(Withheld, match="gives calm's rows their own label 0% of the time .under 20%.; calm would starve"):
        judged_by_real(data, Evidence(real, generated, real_path=seed, judge=judge))
    assert judged_by_real({**data, "judge": False}, Evidence(real, generated, real_path=seed, judge=judge)) is None


def test_the_judges_least_confidence_is_where_the_real_rows_it_reads_surely_are_read_right():
    """The least confidence is learnt from the model's out-of-fold reading of real rows: the step at which those it
    reads at least that surely are read right most often, as long as it leaves half of them; none where being surer
    is not being righter, or where so sure a reading covers too few real rows."""
    from sdgen.tuning.judge import Reading, least_confidence

    # calibrated on these rows (the lean is even): the first two read at 0.9, the last two at 0.6
    reading = Reading(["a", "b"], [[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
    assert reading.confidences == pytest.approx([0.9, 0.9, 0.6, 0.6])
    assert least_confidence(["a", "b", "b", "a"], [reading]) == (0.7, 1.0, 0.5)  # the sure ones are the right ones
    assert least_confidence(["b", "a", "a", "b"], [reading]) == (0.0, 0.5, 0.5)  # the sure ones are the wrong ones
    unsure = Reading(["a", "b"], [[0.6, 0.4], [0.4, 0.6]] * 2)  # read right half the time too, none surely
    # pooled, the sure rows are right 2 of 2 but a quarter of the rows: too few to go by
    assert least_confidence(["a", "b", "b", "a"] * 2, [reading, unsure]) == (0.0, 0.5, 0.5)
    assert least_confidence([], []) == (0.0, 0.0, 0.0)


def test_the_real_judge_drops_rows_it_reads_less_surely_than_its_least_confidence(tmp_path):
    """Given a least confidence (learnt from the real rows), the real judge also drops rows it gives their own label
    less surely, writes it as judge.min_confidence, and sizes the replacements for what it drops."""
    from sdgen.tuning.proposals import judged_by_real

    real = pd.DataFrame({"text": ["so calm", "so sad"], "label": ["calm", "sad"]})
    generated = pd.DataFrame({"text": ["calm a", "calm b", "calm c", "sad a", "sad b", "sad c"],
                              "label": ["calm"] * 3 + ["sad"] * 3})  # fmt: skip
    data = {"task": "t", "labels": {"calm": "Calm.", "sad": "Sad."}}
    seed = tmp_path / "seed.csv"
    shares = {"calm a": 0.95, "calm b": 0.6, "calm c": 0.2, "sad a": 0.05, "sad b": 0.4, "sad c": 0.8}
    change = judged_by_real(data, Evidence(real, generated, real_path=seed, judge=scored_judge(real, shares),
                                           sure=(0.7, 0.9, 0.6)))  # fmt: skip
    assert change.data["judge"]["min_confidence"] == 0.7
    assert list(change.screen(generated)["text"]) == ["calm a", "sad a"]  # 0.6 and 0.4 read calm / sad, not surely
    assert "or its own below 0.7 calibrated probability (held-out real rows it reads that surely it reads right 90% " \
           "of the time, all of them 60%) (keeps 33% of the label it keeps least" in change.summary
    assert change.data["balance"] == {"replacements": 8}  # keeping a third, where the plain judge keeps two thirds: 4
    plain = judged_by_real(data, Evidence(real, generated, real_path=seed, judge=scored_judge(real, shares)))
    assert "min_confidence" not in plain.data["judge"] and "below" not in plain.summary
    assert list(plain.screen(generated)["text"]) == ["calm a", "calm b", "sad a", "sad b"]


def test_a_tuned_spec_names_the_judges_real_rows_relative_to_itself(tmp_path):
    from sdgen.tuning.output import _relocate

    spec = tmp_path / "specs" / "plain.yaml"
    data = {"judge": {"real": {"path": str(tmp_path / "seed.csv")}}, "label_check": "seed.csv"}
    moved = _relocate(data, spec, tmp_path / "out" / "tuned.yaml")
    assert moved["judge"] == {"real": {"path": "../seed.csv"}} and moved["label_check"] == "../specs/seed.csv"


def test_over_used_phrases_come_in_the_same_order_whatever_the_hash_seed():
    """Tied phrases are ordered by spelling, not by a set's order, which changes from one process to the next: a
    tune run again on the same rows must write the same avoid lists (and so pilot the same prompts)."""
    code = (
        "import pandas as pd\n"
        "from sdgen.tuning import profile\n"
        "real = pd.DataFrame({'text': ['please help me', 'could you check', 'me and i agree', 'ok fine', 'fine then ok'] * 10,\n"
        "                     'label': ['polite', 'polite', 'polite', 'neutral', 'neutral'] * 10})\n"
        "gen = pd.DataFrame({'text': ['please could you me i go'] * 6 + ['ok'] * 2, 'label': ['neutral'] * 8})\n"
        "print(profile.overused(gen, real, 'neutral'))\n"
    )
    outputs = set()
    for seed in ("1", "2", "3", "4"):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": seed})  # fmt: skip
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout)
    assert outputs == {"['could', 'i', 'me', 'please']\n"}  # five phrases tie: the first four by spelling


def test_a_withheld_proposal_runs_no_round_and_the_log_says_why(tmp_path, spec_path, seed_csv):
    from sdgen.tuning.proposals import Withheld

    def starving(data, ev):
        raise Withheld("real-judge: sad would starve")

    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-scripted",
                        pilot_rows_per_label=8, proposals=[starving])  # fmt: skip
    assert [r.name for r in result.rounds] == ["baseline"] and result.withheld == ["real-judge: sad would starve"]
    assert "Held back: real-judge: sad would starve." in result.log_path.read_text()


def test_a_backend_without_log_probs_tunes_without_the_model_judge(tmp_path, spec_path, seed_csv):
    """The model judge reads each label's log-probability: on a backend that gives none (torch), the proposals get
    no judge (they skip what needs it) and the log says the model does not judge, instead of failing mid-run."""
    from sdgen.engines.base import PER_REQUEST_SAMPLING

    declared = {"capabilities": frozenset({PER_REQUEST_SAMPLING})}
    register_engine("tune-nologprobs", type("NoLogprobs", (ScriptedEngine,), declared))
    judges = []

    def looks(data, ev):
        judges.append(ev.judge)

    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-nologprobs",
                        pilot_rows_per_label=8, proposals=[looks])  # fmt: skip
    assert judges == [None, None] and result.model_accuracy == []  # one call per direction
    assert "the spec's model does not judge: its backend gives no log-probabilities" in result.log_path.read_text()


class SilentJudge(ScriptedEngine):
    """Declares nothing, and answers the judge's forced labels without their log-probabilities."""

    def generate(self, requests):
        for result in super().generate(requests):
            yield dataclasses.replace(result, logprob=None)


def test_a_backend_that_turns_out_to_give_no_log_probs_tunes_without_the_model_judge(tmp_path, spec_path, seed_csv):
    """A backend that does not declare its capabilities is found out at the judge's first reading: tune goes on
    without the judge, as for one that declares it has no log-probs, instead of failing mid-run with a TypeError."""
    register_engine("tune-silent-judge", SilentJudge)
    judges = []

    def looks(data, ev):
        judges.append(ev.judge)

    result = sdgen.tune(spec_path, seed_csv, output=tmp_path / "tuned.yaml", backend="tune-silent-judge",
                        pilot_rows_per_label=8, proposals=[looks])  # fmt: skip
    assert judges == [None, None] and result.model_accuracy == []
    assert "the spec's model does not judge: its backend gives no log-probabilities" in result.log_path.read_text()


def test_tune_evals_anchors_spec_is_the_plain_spec_quoting_the_seed(tmp_path):
    import importlib.util
    from pathlib import Path

    from sdgen.spec import load_spec

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "tune_eval.py"
    module_spec = importlib.util.spec_from_file_location("tune_eval", path)
    tune_eval = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(tune_eval)
    (tmp_path / "emotion.seed.csv").write_text("text,label\n" + "".join(
        f"{label} row {i},{label}\n" for label in ("anger", "joy", "optimism", "sadness") for i in range(5)))
    spec = load_spec(tune_eval.spec_for("emotion", "anchors", tmp_path))
    plain = load_spec(tune_eval.EXAMPLES / "emotion_plain.yaml")
    assert spec.examples_from.anchor and spec.real_examples_path == (tmp_path / "emotion.seed.csv").absolute()
    assert (spec.labels, spec.examples, spec.task) == (plain.labels, plain.examples, plain.task)


def test_the_log_says_an_evenly_drawn_seed_cannot_tell_the_label_shares(tmp_path, spec_path, seed_csv):
    from sdgen.tuning.output import EVEN_SEED

    def nothing(data, ev):
        return None

    def log_of(seed: Path, spec: Path) -> str:
        result = sdgen.tune(spec, seed, output=tmp_path / "tuned.yaml", backend="tune-scripted", pilot_rows_per_label=8,
                            proposals=[nothing])  # fmt: skip
        return result.log_path.read_text()

    assert EVEN_SEED in log_of(seed_csv, spec_path)  # 12 rows of every label
    uneven = tmp_path / "uneven.csv"
    rows = pd.read_csv(seed_csv)
    rows.drop(rows.index[rows["label"] == LABELS[0]][:4]).to_csv(uneven, index=False)
    assert EVEN_SEED not in log_of(uneven, spec_path)
    data = yaml.safe_load(spec_path.read_text())
    data["balance"] = {"shares": {label: 1 + i for i, label in enumerate(LABELS)}}
    with_shares = tmp_path / "shares.yaml"
    with_shares.write_text(yaml.safe_dump(data))
    assert EVEN_SEED not in log_of(seed_csv, with_shares)
