"""Curation end to end with crafted engine outputs: duplicates, conflicts, quotas, verification and the report.

A scripted engine answers each request with a text the test chose for that row, so every count
below is known in advance.
"""

import json
import re
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest
import yaml

import sdgen
from sdgen.engines import Result, register_engine
from sdgen.errors import EngineError, OutputError
from sdgen.plan import make_plan, quotas
from sdgen.run.replacements import ReplacementBudget
from sdgen.spec import build_spec

from conftest import ROOT, cli_error
from fake_engines import CraftedEngine, ExampleCopier, ListEngine, words

register_engine("crafted", CraftedEngine)


@pytest.fixture(autouse=True)
def unique_texts():
    """Every test starts from an engine that writes a new text per row."""
    CraftedEngine.script = staticmethod(lambda row, label, attempt: words(row))


def spec_for(tmp_path, model_path, **changes):
    data = {
        "task": "Crafted texts.", "labels": ["a", "b"], "categories": {"topic": ["x", "y"], "place": ["z"]},
        "sample_size": 40, "batch_size": 8, "seed": 3, "models": [str(model_path)], "prompt_style": "fewshot",
        "output": str(tmp_path / "out.csv"), "balance": {"replacements": 0},  # no replacements: losses stay visible
    }  # fmt: skip
    data.update(changes)
    return build_spec(data, base_dir=tmp_path)


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "fake.gguf"  # resolved by path; the crafted engine never reads it
    path.write_bytes(b"GGUF")
    return path


def read(path):
    return pd.read_csv(path, keep_default_na=False)


def crafted_scenario(spec):
    """One exact copy, two near copies, one cross-label copy; returns the rows involved."""
    plan = make_plan(spec)
    a = [r.row for r in plan if r.label == "a"]
    b = [r.row for r in plan if r.label == "b"]
    exact, near1, near2 = a[5], a[6], a[7]
    original = a[3]
    conflict = next(r for r in b if r > original)
    texts = {
        exact: words(a[0]).upper().replace(" ", " , "),  # case and punctuation do not make it new
        near1: words(a[1]).rsplit(" ", 1)[0] + " changed",  # one word of 40 differs
        near2: "opening " + words(a[2]),
        conflict: words(original) + "!",
    }
    CraftedEngine.script = staticmethod(lambda row, label, attempt: texts.get(row, words(row)))
    return {"exact": exact, "near": [near1, near2], "conflict": conflict, "original": original, "a": a}


def test_duplicates_are_dropped_and_conflicts_set_aside(tmp_path, model_path):
    spec = spec_for(tmp_path, model_path)
    rows = crafted_scenario(spec)
    summary = sdgen.generate(spec, backend="crafted")
    df = read(summary.output)
    conflicts = read(tmp_path / "out.conflicts.csv")
    assert summary.exact_duplicates == 1 and summary.near_duplicates == 2 and summary.conflicts == 2
    gone = {rows["exact"], *rows["near"], rows["conflict"], rows["original"]}
    assert sorted(df["row"]) == sorted(set(range(40)) - gone) and summary.written == 35
    assert sorted(conflicts["row"]) == sorted([rows["conflict"], rows["original"]])
    pairs = dict(zip(conflicts["row"], conflicts["conflict_with"]))
    assert pairs == {rows["conflict"]: rows["original"], rows["original"]: rows["conflict"]}
    assert set(conflicts["label"]) == {"a", "b"}
    q = summary.quality[str(model_path)]
    assert (q.parsed, q.kept, q.exact_duplicates, q.near_duplicates, q.conflicts) == (40, 35, 1, 2, 2)


def test_keep_duplicates_flags_them(tmp_path, model_path):
    spec = spec_for(tmp_path, model_path)
    rows = crafted_scenario(spec)
    summary = sdgen.generate(spec, backend="crafted", keep_duplicates=True)
    df = read(summary.output).set_index("row")
    flagged = df[df["duplicate"] != ""]
    assert dict(flagged["duplicate"]) == {rows["exact"]: "exact", rows["near"][0]: "near", rows["near"][1]: "near"}
    a = rows["a"]
    assert dict(flagged["duplicate_of"].astype(int)) == {
        rows["exact"]: a[0],
        rows["near"][0]: a[1],
        rows["near"][1]: a[2],
    }
    assert len(df) == 40 - 2  # the conflict's two sides still leave the dataset


def test_a_resumed_run_replaces_the_rows_the_live_run_replaced(tmp_path, model_path):
    """Whether a row is lost on resume comes from the quality steps (`Curator.restore`), as in the live run: a
    flagged duplicate (``keep_duplicates``) is lost and replaced, both sides of a conflict under ``conflicts:
    keep`` stay. (Resume once re-derived losses itself, and asked for the opposite of both.)"""
    from sdgen.quality.curate import Curator, RowBuffer
    from sdgen.run.state import Resumed
    from sdgen.spec import apply_overrides

    spec = apply_overrides(spec_for(tmp_path, model_path, dedup={"conflicts": "keep"}, balance={"replacements": 1}),
                           keep_duplicates=True)  # fmt: skip
    rows = crafted_scenario(spec)
    summary = sdgen.generate(spec, backend="crafted")
    df, conflicts = read(summary.output), read(tmp_path / "out.conflicts.csv")
    replaced = {r - 40 for r in df["row"] if r >= 40}
    assert replaced == {rows["exact"], *rows["near"]}  # the live run replaced the flagged rows, not the conflict's
    journal = [json.loads(line) for line in (tmp_path / "out.journal.jsonl").read_text().splitlines()]
    planned, side = df[df["row"] < 40], conflicts[conflicts["row"] < 40]  # as if stopped before any replacement
    lost = Curator(spec, RowBuffer(lambda: None), RowBuffer(lambda: None)).restore(planned, side, journal)
    pending = Resumed(planned, side, journal).pending(spec, make_plan(spec), summary, ReplacementBudget(spec), lost)
    assert sorted(r.row for r in pending) == sorted(r + 40 for r in replaced)


def test_conflicts_keep_leaves_both_sides_in_the_dataset(tmp_path, model_path):
    spec = spec_for(tmp_path, model_path, dedup={"conflicts": "keep"})
    rows = crafted_scenario(spec)
    summary = sdgen.generate(spec, backend="crafted")
    df = read(summary.output)
    assert {rows["conflict"], rows["original"]} <= set(df["row"]) and len(df) == 40 - 3
    assert sorted(read(tmp_path / "out.conflicts.csv")["row"]) == sorted([rows["conflict"], rows["original"]])


def test_dedup_off_keeps_everything(tmp_path, model_path):
    spec = spec_for(tmp_path, model_path, dedup=False)
    crafted_scenario(spec)
    summary = sdgen.generate(spec, backend="crafted")
    assert summary.written == 40 and summary.exact_duplicates == 0 and not (tmp_path / "out.conflicts.csv").exists()


def test_exact_plan_deals_exact_quotas(tmp_path, model_path):
    for by, cells in (("label", 2), ("label_category", 4)):
        spec = spec_for(tmp_path, model_path, sample_size=43, balance={"mode": "exact", "by": by})
        plan = make_plan(spec)
        key = (lambda r: (r.label,)) if by == "label" else (lambda r: (r.label, r.category))
        assert Counter(key(r) for r in plan) == quotas(spec) and len(quotas(spec)) == cells
        assert sorted(quotas(spec).values())[-1] - sorted(quotas(spec).values())[0] <= 1
        assert plan == make_plan(spec)  # deterministic
    assert [r.label for r in make_plan(spec)] != [
        r.label for r in make_plan(spec_for(tmp_path, model_path, seed=4, balance="exact"))
    ]


def test_label_shares_deal_each_label_its_share_of_the_plan(tmp_path, model_path):
    """A classifier learns how common each label is from its rows: `balance.shares` gives the labels the shares the
    user's real data has, exactly under `exact` (largest remainders, split over categories), by draw under `random`."""
    spec = spec_for(tmp_path, model_path, sample_size=43, balance={"mode": "exact", "shares": {"a": 0.9, "b": 0.1}})
    assert quotas(spec) == {("a",): 39, ("b",): 4}  # 38.7 and 4.3: the remainder to a's larger fraction
    assert Counter(r.label for r in make_plan(spec)) == {"a": 39, "b": 4}
    cells = spec_for(tmp_path, model_path, sample_size=40, balance={"mode": "exact", "by": "label_category",
                                                                    "shares": {"a": 3, "b": 1}})  # fmt: skip
    assert quotas(cells) == {("a", "topic"): 15, ("a", "place"): 15, ("b", "topic"): 5, ("b", "place"): 5}
    drawn = Counter(r.label for r in make_plan(spec_for(tmp_path, model_path, sample_size=2000,
                                                        balance={"shares": {"a": 0.9, "b": 0.1}})))  # fmt: skip
    assert 1700 < drawn["a"] < 1900
    plain = [(r.label, r.category, r.type) for r in make_plan(spec_for(tmp_path, model_path))]
    assert plain == [(r.label, r.category, r.type) for r in make_plan(spec_for(tmp_path, model_path, balance={}))]
    summary = sdgen.generate(spec, backend="crafted")
    assert Counter(read(spec.output_path)["label"]) == {"a": 39, "b": 4} and summary.written == 43


@pytest.mark.parametrize("shares, says", [({"a": 1.0}, "missing b"), ({"a": 1, "b": 1, "c": 1}, "not a label: c"),
                                          ({"a": 1, "b": 0}, "above 0")])  # fmt: skip
def test_label_shares_that_miss_a_label_name_another_or_are_not_positive_are_one_line_errors(
        tmp_path, model_path, capsys, monkeypatch, shares, says):  # fmt: skip
    spec = tmp_path / "spec.yaml"
    data = {"task": "t", "labels": ["a", "b"], "categories": {"topic": ["x"]}, "sample_size": 4, "balance": {"shares": shares}}
    spec.write_text(yaml.safe_dump(data))
    assert "balance.shares" in (line := cli_error(capsys, monkeypatch, "generate", spec)) and says in line


def test_exact_balance_replaces_lost_rows_until_every_cell_is_full(tmp_path, model_path):
    spec = spec_for(tmp_path, model_path, sample_size=24, balance={"mode": "exact", "by": "label_category", "replacements": 3},
                    engine={"max_attempts": 1})  # fmt: skip
    # every 3rd planned row is unparseable, every 4th repeats row 0's text: each loss is replaced by a new row id
    CraftedEngine.script = staticmethod(
        lambda row, label, attempt: "" if row % 3 == 1 and row < 24 else words(0) if row % 4 == 2 and 0 < row < 24 else words(row)
    )
    summary = sdgen.generate(spec, backend="crafted")
    df = read(summary.output)
    assert Counter(zip(df["label"], df["category"])) == Counter({c: q for c, q in quotas(spec).items()})
    assert summary.shortfall == {} and summary.written == 24
    assert df["row"].is_unique and df["row"].max() >= 24  # replacement of row r is row r + 24, r + 48, ...
    plan = {r.row: r for r in make_plan(spec)}
    assert all((r.label, r.category, r.type) == (plan[r.row % 24].label, plan[r.row % 24].category, plan[r.row % 24].type)
               for r in df.itertuples())  # a replacement keeps its planned row's cell  # fmt: skip
    stats = summary.per_model[str(model_path)]
    assert stats.extra_rows == stats.unparseable + summary.exact_duplicates + summary.conflicts


def test_exact_balance_reports_the_cells_it_could_not_fill(tmp_path, model_path):
    spec = spec_for(tmp_path, model_path, sample_size=20, balance={"mode": "exact", "replacements": 1})
    CraftedEngine.script = staticmethod(lambda row, label, attempt: words(row) if label == "a" else words(999))
    summary = sdgen.generate(spec, backend="crafted")
    assert summary.filled == {("a",): 10, ("b",): 1}
    assert summary.shortfall == {("b",): 9}
    # the run's budget (1 x 20 extra rows) all went to the cell that lost rows, all duplicates again
    assert summary.per_model[str(model_path)].extra_rows == 20
    assert summary.exact_duplicates == 9 + 20
    assert re.fullmatch(r"9 of 20 rows missing: b lost 29 of 30 rows \(97%\); the replacement budget ran out "
                        r"\(balance.replacements 1 x 20 rows = 20 extra rows, all used\); filling them would take about "
                        r"270 more rows, about \d+ s at this run's pace; raise balance.replacements to fill them",
                        summary.missing_note)  # fmt: skip
    stats = json.loads((tmp_path / "out.stats.json").read_text())
    assert {tuple(q["cell"]): (q["quota"], q["filled"]) for q in stats["quotas"]} == {("a",): (10, 10), ("b",): (10, 1)}
    assert "1 of 2 cells full" in (tmp_path / "out.report.md").read_text()


@pytest.mark.parametrize("action", ["flag", "drop"])
def test_the_judge_rejects_mislabelled_rows_and_they_are_replaced(tmp_path, model_path, action):
    """The engine judges each parsed row in the same run; a row it gives another label goes to the rejected file
    and a new row for the same cell takes its place (drop), or stays flagged (flag)."""
    spec = spec_for(tmp_path, model_path, sample_size=30, judge={"action": action}, balance={"replacements": 1})
    # a text "says" the label the judge will give: planned rows 0, 5, 10, ... are mislabelled, replacements are not
    CraftedEngine.script = staticmethod(
        lambda row, label, attempt: f"{words(row)} says {({'a': 'b', 'b': 'a'}[label] if row % 5 == 0 and row < 30 else label)}"
    )
    summary = sdgen.generate(spec, backend="crafted")
    df = read(summary.output)
    wrong = {r for r in range(30) if r % 5 == 0}
    labels = {r.row: r.label for r in make_plan(spec)}
    j = summary.judge
    for label in ("a", "b"):
        rows = [r for r in range(30) if labels[r] == label]
        judged = j.by_label[label]
        assert judged.total - judged.agree == len(set(rows) & wrong)
    if action == "flag":
        assert (j.overall.agree, j.overall.total) == (24, 30) and len(df) == 30
        assert set(df.loc[~df["agrees"], "row"]) == wrong
        assert all(df["judged_label"] == [labels[r] if r not in wrong else {"a": "b", "b": "a"}[labels[r]] for r in df["row"]])
        assert not (tmp_path / "out.rejected.csv").exists()
    else:
        assert (j.overall.agree, j.overall.total) == (30, 36)  # 6 replacements, all judged right
        assert summary.written == 30 and summary.missing_note is None
        assert sorted(df["row"]) == sorted((set(range(30)) - wrong) | {r + 30 for r in wrong})  # r's replacement: r + 30
        rejected = read(tmp_path / "out.rejected.csv")
        assert set(rejected["row"]) == wrong and set(rejected["judged_label"]) <= {"a", "b"}
        assert Counter(df["label"]) == Counter(labels.values())  # each replacement took its rejected row's cell
        assert "rejected and replaced" in (tmp_path / "out.report.md").read_text()


@pytest.mark.parametrize("min_confidence", [0.0, 0.5])
def test_the_judge_also_rejects_rows_it_labels_unsurely_below_min_confidence(tmp_path, model_path, min_confidence):
    """A row the judge gives its own label with a probability under judge.min_confidence is rejected and replaced
    like a mislabelled one; the rejected file and the summary say how sure the judge was."""
    judge = {"min_confidence": min_confidence} if min_confidence else True
    spec = spec_for(tmp_path, model_path, sample_size=30, judge=judge, balance={"replacements": 1})
    # planned rows 0, 3, 6, ... get their own label at 0.3, rows 1, 4, ... at 0.7; replacements at 0.9
    sure = {0: 0.3, 1: 0.7, 2: 1.0}
    CraftedEngine.script = staticmethod(
        lambda row, label, attempt: f"{words(row)} says {label} at {sure[row % 3] if row < 30 else 0.9}"
    )
    summary = sdgen.generate(spec, backend="crafted")
    df = read(summary.output)
    unsure = {r for r in range(30) if r % 3 == 0} if min_confidence else set()
    assert summary.written == 30 and summary.missing_note is None
    assert sorted(df["row"]) == sorted((set(range(30)) - unsure) | {r + 30 for r in unsure})
    assert summary.judge.unsure == len(unsure) and summary.judge.rejected == len(unsure)
    if min_confidence:
        rejected = read(tmp_path / "out.rejected.csv")
        assert set(rejected["row"]) == unsure and list(rejected["judged_label"]) == list(rejected["label"])
        assert set(rejected["judge_confidence"]) == {0.3}
        assert "10 of them given their own label below min_confidence" in (tmp_path / "out.report.md").read_text()
    else:
        assert not (tmp_path / "out.rejected.csv").exists()


def test_min_confidence_needs_an_engine_that_reports_how_sure_the_judge_was(tmp_path, model_path):
    class NoLogprobs(CraftedEngine):
        def generate(self, requests):
            for result in super().generate(requests):
                yield Result(result.id, result.text, result.generated_tokens, result.finish_reason)

    register_engine("nologprobs", NoLogprobs)
    spec = spec_for(tmp_path, model_path, sample_size=6, judge={"min_confidence": 0.5})
    with pytest.raises(EngineError, match="judge.min_confidence needs the judge's log-probs"):
        sdgen.generate(spec, backend="nologprobs")


def test_spec_examples_are_never_copied_into_the_data(tmp_path, model_path):
    """A generated text equal to a spec example (after normalisation) or nearly so is dropped and replaced."""
    example = words(9999)
    spec = spec_for(tmp_path, model_path, sample_size=20, balance={"replacements": 1},
                    examples=[{"label": "b", "category": "topic", "type": "x", "output": example}])  # fmt: skip
    inside = f"{words(5000, 6)}. {example.capitalize()}! {words(5001, 6)}"  # the example whole, inside a longer text
    start = " ".join(example.split()[:6])  # its first words alone are no copy
    scripts = {3: example.upper() + "!", 7: example.upper() + "!", 11: example + " again", 13: inside, 15: f"{start} {words(15, 30)}"}
    CraftedEngine.script = staticmethod(lambda row, label, attempt: scripts.get(row, words(row)))
    summary = sdgen.generate(spec, backend="crafted")
    df = read(summary.output)
    assert summary.screened("example") == Counter({"spec example": 4}) and summary.written == 20
    assert not {3, 7, 11, 13} & set(df["row"]) and 15 in set(df["row"])
    normalised = [" ".join(t.lower().replace("!", " ").replace(".", " ").split()) for t in df["text"]]
    assert not any(example in text for text in normalised)


def test_report_has_tables_and_charts_and_rebuilds(tmp_path, model_path):
    spec = spec_for(tmp_path, model_path)
    crafted_scenario(spec)
    summary = sdgen.generate(spec, backend="crafted")
    report = tmp_path / "out.report.md"
    assert summary.report_file == report
    text = report.read_text()
    assert "2.5%" in text and "5.0%" in text  # 1 exact and 2 near duplicates of 40 parsed rows
    for png in ("labels.png", "lengths.png"):
        assert (tmp_path / "out.report" / png).read_bytes()[:4] == b"\x89PNG"
    report.unlink()
    proc = subprocess.run([sys.executable, "-m", "sdgen.cli", "report", str(summary.output)], capture_output=True,
                          text=True, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert report.read_text() == text


def test_report_of_a_foreign_file_measures_the_file(tmp_path):
    texts = [words(i) for i in range(8)] + [words(0).upper(), words(1) + "!"]
    labels = ["a"] * 8 + ["a", "b"]
    path = tmp_path / "theirs.csv"
    pd.DataFrame({"text": texts, "label": labels, "model": "m", "category": "c"}).to_csv(path, index=False)
    from sdgen.quality.report import build_report

    report = build_report(path)
    table = [line for line in report.read_text().splitlines() if line.startswith("| m |")][0]
    cells = [c.strip() for c in table.strip("|").split("|")]
    assert cells[1:6] == ["10", "10", "10.0%", "0.0%", "20.0%"]  # 1 exact copy; a cross-label copy: both sides


def test_stale_sidecars_and_bad_report_targets(tmp_path, model_path):
    spec = spec_for(tmp_path, model_path)
    (tmp_path / "out.conflicts.csv").write_text("old")
    with pytest.raises(OutputError, match="out.conflicts.csv .*exists; pass --resume to finish that run, --overwrite to start over"):
        sdgen.generate(spec, backend="crafted")
    assert not (tmp_path / "out.csv").exists()
    sdgen.generate(spec, backend="crafted", overwrite=True)
    assert not (tmp_path / "out.conflicts.csv").exists()  # this run had no conflicts: the stale file is gone
    from sdgen.quality.report import build_report

    with pytest.raises(OutputError, match="no such dataset file"):
        build_report(tmp_path / "missing.csv")


def test_quality_fields_validate_with_clear_errors(tmp_path, model_path):
    from sdgen.errors import SpecError
    from sdgen.spec import apply_overrides

    spec = spec_for(tmp_path, model_path, dedup=False, balance="exact", judge=True)
    assert not spec.dedup.enabled and spec.balance.mode == "exact" and spec.judge.enabled and spec.judge.action == "drop"
    assert apply_overrides(spec, keep_duplicates=True).dedup.keep_duplicates
    assert not apply_overrides(spec, keep_duplicates=True).dedup.enabled  # the flag does not re-enable dedup
    cases = {
        "balance: exact needs sample_size >= 4": dict(sample_size=3, balance={"mode": "exact", "by": "label_category"}),
        "balance.mode: Input should be 'random' or 'exact'": dict(balance="even"),
        "dedup.threshold: Input should be less than or equal to 1": dict(dedup={"threshold": 1.5}),
        "dedup.conflicts: Input should be 'separate' or 'keep'": dict(dedup={"conflicts": "drop"}),
        "judge.action: Input should be 'drop' or 'flag'": dict(judge={"action": "fix"}),
        "verify: the end-of-run verification is now the online judge: use `judge: true`": dict(verify={"model": "m"}),
        "labels.a: unknown field 'nto'": dict(labels={"a": {"description": "A.", "nto": "B."}, "b": "B."}),
        "label_contrasts: 'c' is not one of the labels": dict(label_contrasts={"c": "x"}),
        "dedup.near_threshold: unknown field": dict(dedup={"near_threshold": 0.9}),
    }
    for message, changes in cases.items():
        with pytest.raises(SpecError, match=re.escape(message)):
            spec_for(tmp_path, model_path, **changes)


def test_a_separate_judge_model_is_refused_before_anything_is_written(tmp_path, model_path):
    from sdgen.errors import SpecError

    spec = spec_for(tmp_path, model_path, judge={"model": str(model_path)})
    with pytest.raises(SpecError, match="judge.model: the online judge runs on the generating engine"):
        sdgen.generate(spec, backend="crafted")
    assert not (tmp_path / "out.csv").exists()


def test_a_judge_shown_real_rows_reads_them_as_its_examples_and_still_rejects(tmp_path, model_path):
    """judge.real: the judge's prompt is the real rows as labelled examples (no spec task), the judged text last."""
    real = tmp_path / "real.csv"
    pd.DataFrame({"text": ["real one", "real two", "real three"], "label": ["a", "b", "a"]}).to_csv(real, index=False)
    prompts = []

    class Recording(CraftedEngine):
        def generate(self, requests):  # requests stream in as results go out: record them as they pass
            def seen():
                for req in requests:
                    prompts.extend([req.prompt] if req.choices else [])
                    yield req

            yield from super().generate(seen())

    register_engine("recording-judge", Recording)
    spec = spec_for(tmp_path, model_path, sample_size=20, judge={"real": "real.csv"}, balance={"replacements": 1})
    CraftedEngine.script = staticmethod(lambda row, label, attempt: f"text {row} says {'ab'[label == 'a'] if row == 0 else label}")
    summary = sdgen.generate(spec, backend="recording-judge")
    assert summary.written == 20 and summary.judge.rejected == 1
    head = prompts[0].rsplit("Text: ", 1)[0]
    assert head.startswith("Label each text as one of: a, b.") and "Crafted texts" not in head
    assert all(f"Text: {t}\nLabel: {label}" in head for t, label in (("real one", "a"), ("real two", "b")))
    assert prompts[0].endswith("\nLabel:") and {p.rsplit("Text: ", 1)[0] for p in prompts} == {head}


def test_a_judge_given_its_prior_scores_each_label_and_keeps_rows_it_leans_away_from(tmp_path, model_path):
    """judge.prior: every label is asked for in turn, and a label wins by its probability relative to the judge's
    lean. Rows the judge reads as "a" at 0.7 keep their label "b" when it leans to "a" at 0.8 (0.3/0.2 > 0.7/0.8);
    rows it reads as "a" surely are still rejected and replaced."""
    spec = spec_for(tmp_path, model_path, sample_size=20, balance={"replacements": 1},
                    judge={"prior": {"a": 0.8, "b": 0.2}, "action": "drop"})  # fmt: skip
    from sdgen.errors import SpecError

    CraftedEngine.script = staticmethod(
        lambda row, label, attempt: f"text {row} says a at {0.7 if row % 2 else 0.99}" if label == "b" and row < 20
        else f"text {row} says {label}")  # fmt: skip
    summary = sdgen.generate(spec, backend="crafted")
    rows = read(tmp_path / "out.csv")
    leaned = [r for r in rows.to_dict("records") if "at 0.7" in r["text"]]
    assert summary.written == 20 and leaned and all(r["label"] == "b" for r in leaned)
    rejected = read(tmp_path / "out.rejected.csv")
    assert len(rejected) == summary.judge.rejected > 0 and set(rejected["text"].str[-4:]) == {"0.99"}
    assert summary.judge.requests == 2 * (summary.written + summary.judge.rejected)  # one request per label and row
    with pytest.raises(SpecError, match=r"judge.prior: give every label \(a, b\)"):
        spec_for(tmp_path, model_path, judge={"prior": {"a": 1.0}})


def test_a_judge_real_file_lacking_a_label_fails_before_anything_is_written(tmp_path, model_path):
    from sdgen.errors import SpecError
    from sdgen.realdata import RealDataError

    pd.DataFrame({"text": ["real one"], "label": ["a"]}).to_csv(tmp_path / "real.csv", index=False)
    spec = spec_for(tmp_path, model_path, judge={"real": "real.csv"})
    with pytest.raises(RealDataError, match="has no rows labelled 'b'"):
        sdgen.generate(spec, backend="crafted")
    assert not (tmp_path / "out.csv").exists()
    with pytest.raises(SpecError, match="judge.real: true takes its rows from examples_from"):
        spec_for(tmp_path, model_path, judge={"real": True})


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_conflicts_and_judge_flags_rewrite_every_format(tmp_path, model_path, suffix):
    from sdgen.store.files import read_dataset

    spec = spec_for(tmp_path, model_path, output=str(tmp_path / f"out{suffix}"), judge={"action": "flag"})
    rows = crafted_scenario(spec)
    summary = sdgen.generate(spec, backend="crafted", keep_duplicates=True)
    df = read_dataset(summary.output)
    assert len(df) == 38 and rows["original"] not in set(df["row"])
    assert set(df.loc[df["duplicate"] == "exact", "duplicate_of"]) == {rows["a"][0]}
    assert df["duplicate_of"].isna().sum() == 35 and df["agrees"].dtype == bool
    conflicts = read_dataset(tmp_path / f"out.conflicts{suffix}")
    assert dict(zip(conflicts["row"], conflicts["conflict_with"])) == {
        rows["conflict"]: rows["original"], rows["original"]: rows["conflict"]}  # fmt: skip


register_engine("list", ListEngine)
register_engine("copier", ExampleCopier)


def test_several_rows_per_request_fill_their_rows_by_position(tmp_path, model_path):
    ListEngine.requests.clear()
    ListEngine.skip = staticmethod(lambda seed, i: False)
    spec = spec_for(tmp_path, model_path, sample_size=160, rows_per_request=4)  # past the ramp of singles and pairs
    summary = sdgen.generate(spec, backend="list")
    df = read(summary.output).set_index("row")
    plan = {r.row: r for r in make_plan(spec)}
    assert summary.written == 160 and sorted(df.index) == list(range(160))
    groups = [rows for rows in ListEngine.requests if len(rows) > 2]
    assert groups and all(len(g) <= 4 for g in ListEngine.requests) and sum(map(len, ListEngine.requests)) == 160
    for group in ListEngine.requests:  # one request, one seed; rows share label, category and type
        assert len({df.loc[r, "seed"] for r in group}) == 1
        assert len({(plan[r].label, plan[r].category, plan[r].type) for r in group}) == 1
        for i, r in enumerate(group, 1):
            assert df.loc[r, "text"] == words(int(df.loc[r, "seed"]) % 100_000 + 7 * i)
    assert len(ListEngine.requests) < 160  # fewer requests than rows


def test_items_missing_from_a_list_are_asked_again_one_row_at_a_time(tmp_path, model_path):
    ListEngine.requests.clear()
    ListEngine.skip = staticmethod(lambda seed, i: i == 3)  # every list lacks its third text
    spec = spec_for(tmp_path, model_path, sample_size=160, rows_per_request=4, engine={"max_attempts": 2},
                    balance={"replacements": 1})  # past the ramp; a rare exact duplicate is replaced
    summary = sdgen.generate(spec, backend="list")
    df = read(summary.output)
    singles = [rows for rows in ListEngine.requests if len(rows) == 1]
    thirds = {g[2] for g in ListEngine.requests if len(g) >= 3}
    assert thirds and thirds <= {r for (r,) in singles}  # each missing third row got a request of its own
    assert summary.written == 160 and summary.unparseable == 0 and len(set(df["row"] % 160)) == 160


def test_rows_holding_a_phrase_their_label_avoids_are_dropped_before_the_judge(tmp_path, model_path):
    """labels.NAME.avoid: a row of that label whose text holds one of the phrases is lost before the judge sees
    it, journaled with the phrase and replaced; the same text under another label is kept. The engine stops such a
    text where the phrase ends (a request for one text carries its label's phrases): it is dropped and replaced the
    same way."""
    CraftedEngine.stopped.clear()
    labels = {"a": {"description": "A.", "avoid": ["please", "could you"]}, "b": "B."}
    spec = spec_for(tmp_path, model_path, sample_size=30, labels=labels, judge=True, balance={"replacements": 1})
    asks = {r for r in range(30) if r % 4 == 1}  # planned rows that write "Could  you PLEASE"; replacements do not
    CraftedEngine.script = staticmethod(
        lambda row, label, attempt: f"{words(row)} Could  you PLEASE says {label}" if row in asks else f"{words(row)} says {label}"
    )
    summary = sdgen.generate(spec, backend="crafted")
    df = read(summary.output)
    labels_of = {r.row: r.label for r in make_plan(spec)}
    avoided = {r for r in asks if labels_of[r] == "a"}
    assert avoided and asks - avoided  # both labels wrote the phrase
    assert sorted(CraftedEngine.stopped) == sorted(avoided)  # stopped early, only under the label that avoids it
    assert summary.written == 30 and summary.missing_note is None
    assert sorted(df["row"]) == sorted((set(range(30)) - avoided) | {r + 30 for r in avoided})
    assert set(df.loc[df["text"].str.contains("PLEASE"), "row"]) == asks - avoided
    assert summary.judge.overall.total == 30  # the judge never saw an avoided row
    assert summary.avoided == Counter({"could you": len(avoided)})
    journal = [json.loads(line) for line in (tmp_path / "out.journal.jsonl").read_text().splitlines()]
    assert sorted((e["row"], e["reason"]) for e in journal if e["event"] == "avoided") == [(r, "could you") for r in sorted(avoided)]
    assert f'for a phrase their label avoids (labels.NAME.avoid): {len(avoided)} ("could you" {len(avoided)})' in (
        tmp_path / "out.report.md").read_text()


def test_tokens_spent_on_dropped_rows_are_counted(tmp_path, model_path):
    """Five of 40 rows are dropped (one exact, two near duplicates, both sides of a conflict): their 10 tokens each
    are what the loss cost; the summary, stats and report say so."""
    spec = spec_for(tmp_path, model_path)
    crafted_scenario(spec)
    summary = sdgen.generate(spec, backend="crafted")
    assert summary.generated_tokens == 400 and summary.lost_tokens == 50 and summary.lost_share == 0.125
    assert json.loads((tmp_path / "out.stats.json").read_text())["lost_tokens"] == 50
    assert "generated tokens 400, 50 of them (12.5%) spent on texts that did not reach the dataset" in \
        summary.report_file.read_text()


def test_a_requests_tokens_are_split_over_its_texts_by_length():
    from sdgen.extract import Extracted
    from sdgen.run.settle import token_shares

    texts = [Extracted("a" * 30, None), None, Extracted("b" * 10, None)]
    assert token_shares(texts, 60) == [30.0, 20.0, 10.0]  # the unparsed text counts as a mean one
    assert token_shares([None, None], 8) == [4.0, 4.0]


def test_where_the_time_went(tmp_path, model_path):
    """Model load, the first row and the tail after the last request went in, for every run: in the stats, the
    CLI summary's wall-time line and the report."""
    summary = sdgen.generate(spec_for(tmp_path, model_path), backend="crafted")
    stats = summary.per_model[str(model_path)]
    assert 0 <= stats.load_seconds <= stats.first_row_seconds <= stats.seconds
    assert 0 <= stats.tail_seconds <= stats.seconds - stats.load_seconds
    saved = json.loads((tmp_path / "out.stats.json").read_text())["per_model"][str(model_path)]
    assert saved["first_row_seconds"] == stats.first_row_seconds and saved["tail_seconds"] == stats.tail_seconds
    assert summary.timing_line().startswith(f"model load {stats.load_seconds:.1f} s, first row after ")
    assert "after the last request went in" in summary.report_file.read_text()
    assert "priming" not in summary.timing_line()  # an engine that reports no steps: no priming or batch figures


def test_a_replacement_of_an_example_copy_is_told_not_to_repeat_the_examples(tmp_path, model_path):
    """A row lost as a copy of the spec's example is replaced by a row whose request says not to repeat the
    examples (a new seed alone let one row copy the same example three times); a resumed run asks the same."""
    from sdgen.quality.curate import Curator, RowBuffer
    from sdgen.run.state import Resumed

    ExampleCopier.example, ExampleCopier.told = "the parcel came back unopened", []
    examples = [{"label": "a", "category": "topic", "type": "x", "output": ExampleCopier.example}]
    spec = spec_for(tmp_path, model_path, examples=examples, balance={"replacements": 2})
    summary = sdgen.generate(spec, backend="copier")
    journal = [json.loads(line) for line in (tmp_path / "out.journal.jsonl").read_text().splitlines()]
    copied = sorted(e["row"] for e in journal if e["event"] == "example")
    assert copied == list(range(0, 40, 5))  # the one-text requests (all 40 rows) of rows divisible by 5
    assert sorted(ExampleCopier.told) == [r + 40 for r in copied]  # each replacement was told, and did not copy
    df = read(summary.output)
    assert summary.written == 40 and not (df["text"] == ExampleCopier.example).any()
    nothing = df.iloc[:0]  # as if nothing but the journal were written
    lost = Curator(spec, RowBuffer(lambda: None), RowBuffer(lambda: None)).restore(nothing, None, journal)
    pending = {r.row: r for r in Resumed(nothing, None, journal).pending(spec, make_plan(spec), summary,
                                                                          ReplacementBudget(spec), lost)}  # fmt: skip
    assert {r for r, row in pending.items() if row.unlike_examples} == {r + 40 for r in copied}


def test_rows_a_classifier_of_real_rows_reads_as_another_label_are_dropped(tmp_path, model_path):
    """label_check: a classifier fitted on the user's real rows reads each parsed row; a row it reads clearly as
    another label is journaled ("misread", with that label), replaced, and counted in the summary and report.
    Rows it reads as their own label, and rows it is unsure of, are kept."""
    sunny, rainy = "sunny warm bright dry", "rainy cold wet grey"
    real = pd.DataFrame({"text": [f"{sunny} day {i}" for i in range(6)] + [f"{rainy} night {i}" for i in range(6)],
                         "label": ["a"] * 6 + ["b"] * 6})  # fmt: skip
    real.to_csv(tmp_path / "real.csv", index=False)
    spec = spec_for(tmp_path, model_path, sample_size=30, label_check="real.csv", balance={"replacements": 1})
    labels_of = {r.row: r.label for r in make_plan(spec)}
    misread = {r for r in range(30) if r % 5 == 2 and labels_of[r] == "a"}  # label a, written as b's weather
    unsure = {r for r in range(30) if r % 5 == 4}  # no weather words at all

    def script(row, label, attempt):
        if row in unsure:
            return words(row)
        weather = rainy if row in misread else (sunny if label == "a" else rainy)
        return f"{words(row, 6)} {weather}"

    CraftedEngine.script = staticmethod(script)
    summary = sdgen.generate(spec, backend="crafted")
    df = read(summary.output)
    assert misread and summary.written == 30 and summary.missing_note is None
    assert sorted(df["row"]) == sorted((set(range(30)) - misread) | {r + 30 for r in misread})
    assert summary.screened("misread") == Counter({"b": len(misread)})
    journal = [json.loads(line) for line in (tmp_path / "out.journal.jsonl").read_text().splitlines()]
    assert sorted((e["row"], e["reason"]) for e in journal if e["event"] == "misread") == [(r, "b") for r in sorted(misread)]
    assert (f"as another label by a classifier of the real rows (label_check): {len(misread)} "
            f'("b" {len(misread)})') in (tmp_path / "out.report.md").read_text()  # fmt: skip
    assert not set(df["text"]) & set(real["text"])  # the real rows are learnt from, never written


def test_label_check_refuses_a_real_file_without_a_label_before_writing(tmp_path, model_path):
    pd.DataFrame({"text": ["one", "two"], "label": ["a", "a"]}).to_csv(tmp_path / "real.csv", index=False)
    spec = spec_for(tmp_path, model_path, label_check={"path": "real.csv"})
    with pytest.raises(sdgen.SdgenError, match=r"real.csv: has no rows labelled 'b'"):
        sdgen.generate(spec, backend="crafted")
    assert not list(tmp_path.glob("out*"))


def test_the_realism_check_drops_rows_of_tags_only_unless_a_real_row_is_one():
    """Rows that are nothing but hashtags read no more generated to a classifier of character n-grams fitted on
    tweets that carry hashtags; the realism check drops a row of only #hashtags, @mentions and links where every real
    row has words, online (with its own reason) and in tune's screen alike. Rows with a word pass to the classifier,
    and where some real row is tags only, so may the generated ones."""
    from sdgen.quality.steps.base import Candidate
    from sdgen.quality.steps.realism_check import RealismCheck, least_generated

    real = [f"so happy today with my friends {i} #blessed" for i in range(10)] + ["@user #monday #coffee again"]
    generated = [f"I am feeling very joyful about everything number {i}" for i in range(10)]
    check = RealismCheck(real, generated, ["joy"] * 10, keep=1.0)
    stuffed, prose = "#sun #happy @user http://x.co", "@user #sun #happy #friends #blessed so"
    assert check.passes([stuffed, prose], ["joy", "joy"]) == [False, True]
    drop = check.decide(Candidate(0, stuffed, "joy", "life", "friends", "m"))
    assert drop is not None and drop.reason == "only #hashtags, @mentions or links, where every real row has words"
    assert least_generated(real, [stuffed, prose, *generated], ["joy"] * 12, keep=1.0) == [False] + [True] * 11
    tagged = [*real, "#mood #friday"]  # a real row of tags only: such rows are like it
    assert RealismCheck(tagged, generated, ["joy"] * 10, keep=1.0).passes([stuffed], ["joy"]) == [True]
    assert least_generated(tagged, [stuffed, *generated], ["joy"] * 11, keep=1.0) == [True] * 11


def test_a_new_quality_step_is_one_class_and_one_entry_in_the_chain(tmp_path, model_path, monkeypatch):
    """A step written as docs/development.md says (a `Step` subclass, one entry in `CHAIN`) runs on every parsed
    row: its drops are journaled under its name and replaced, the summary, stats and report count them per reason,
    and a resumed run's curator counts them again from the journal."""
    from sdgen.quality import steps
    from sdgen.quality.curate import Curator, RowBuffer
    from sdgen.quality.steps import Drop, Step
    from sdgen.store.files import read_dataset

    class Zebra(Step):
        name = "zebra"
        title = "for a zebra (a test step)"

        @classmethod
        def from_spec(cls, spec):
            return cls()

        def decide(self, row):
            return Drop("striped") if "zebra" in row.text else None

    monkeypatch.setattr(steps, "CHAIN", (*steps.CHAIN, Zebra))
    striped = {r for r in range(30) if r % 5 == 2}
    CraftedEngine.script = staticmethod(lambda row, label, attempt: words(row) + (" zebra" if row in striped else ""))
    spec = spec_for(tmp_path, model_path, sample_size=30, balance={"replacements": 1})
    summary = sdgen.generate(spec, backend="crafted")
    df = read(summary.output)
    assert sorted(df["row"]) == sorted((set(range(30)) - striped) | {r + 30 for r in striped})
    assert summary.screened("zebra") == Counter({"striped": len(striped)})
    journal = [json.loads(line) for line in (tmp_path / "out.journal.jsonl").read_text().splitlines()]
    assert sorted(e["row"] for e in journal if e["event"] == "zebra") == sorted(striped)
    (stats,) = json.loads((tmp_path / "out.stats.json").read_text())["per_model"].values()
    assert stats["quality"]["screened"]["zebra"] == {"striped": len(striped)}
    assert f"for a zebra (a test step): {len(striped)}" in summary.report_file.read_text()
    resumed = Curator(spec, RowBuffer(lambda: None), RowBuffer(lambda: None))
    resumed.restore(read_dataset(summary.output), None, journal)
    (counts,) = resumed.per_model.values()
    assert counts.screened == {"zebra": {"striped": len(striped)}} and counts.kept == 30
    assert counts.parsed == 30 + len(striped)


def test_quotas_are_a_step_that_counts_cells_and_keeps_exact_cells_from_overfilling(tmp_path, model_path):
    """`Quotas` counts the rows each cell holds (what the summary's line on short cells reads), takes a row that
    leaves the dataset out again, and under ``balance: exact`` drops a row past its cell's count without asking
    for a replacement (a full cell's replacement would be past it too)."""
    from sdgen.quality.curate import Curator, RowBuffer

    spec = spec_for(tmp_path, model_path, sample_size=4, balance={"mode": "exact", "replacements": 1})
    written: list[dict] = []
    curator = Curator(spec, RowBuffer(lambda: _ListWriter(written)), RowBuffer(lambda: _ListWriter([])))
    record = {"label": "a", "category": "topic", "type": "x", "model": "m"}
    lost = [curator.offer({**record, "row": row, "text": words(row)}) for row in range(3)]
    assert lost == [[], [], []] and curator.cells == Counter({("a",): 2})  # the third a row: the cell holds 2
    curator.flush()
    assert [r["row"] for r in written] == [0, 1]
    (counts,) = curator.per_model.values()
    assert counts.screened == {"quota": {"full": 1}} and counts.kept == 2
    curator.offer({**record, "label": "b", "row": 3, "text": words(0) + "!"})  # a conflict takes row 0 out
    assert curator.cells == Counter({("a",): 1})
    random = Curator(spec_for(tmp_path, model_path, sample_size=4), RowBuffer(lambda: _ListWriter([])),
                     RowBuffer(lambda: _ListWriter([])))  # fmt: skip
    assert [random.offer({**record, "row": row, "text": words(row)}) for row in range(3)] == [[], [], []]
    assert random.cells == Counter({("a",): 3})  # no quotas to hold: counted only


class _ListWriter:
    def __init__(self, rows: list) -> None:
        self.rows = rows

    def write(self, rows) -> None:
        self.rows.extend(rows)

    def close(self) -> None:
        pass


def test_a_list_stops_at_an_avoided_phrase_and_its_later_items_are_asked_alone(tmp_path, model_path, monkeypatch):
    """A request for several texts stops once its answer holds a phrase its label avoids: that item is dropped and
    replaced, and the items after it, which never came, are asked again one row at a time (later items of such
    a list mostly repeat the phrase); every planned row still ends up written."""
    ListEngine.requests.clear(), ListEngine.stopped.clear()
    monkeypatch.setattr(ListEngine, "extra", staticmethod(lambda label, k, i: " zebra crossing" if (label, k, i) == ("a", 4, 2) else ""))
    labels = {"a": {"description": "A.", "avoid": ["zebra"]}, "b": "B."}
    spec = spec_for(tmp_path, model_path, sample_size=200, rows_per_request=4, labels=labels, balance={"replacements": 1})
    summary = sdgen.generate(spec, backend="list")
    df = read(summary.output)
    stopped = ListEngine.stopped
    assert len([rows for rows in stopped if len(rows) == 4]) >= 5 and all(len(rows) >= 2 for rows in stopped)
    singles = {rows[0] for rows in ListEngine.requests if len(rows) == 1}
    later = {row for rows in stopped for row in rows[2:]}
    assert later and later <= singles  # the items after the stop were asked again, alone
    journal = [json.loads(line) for line in (tmp_path / "out.journal.jsonl").read_text().splitlines()]
    assert sorted(e["row"] for e in journal if e["event"] == "avoided") == sorted(rows[1] for rows in stopped)
    assert summary.written == 200 and not df["text"].str.contains("zebra").any()
    assert later <= set(df["row"])  # and kept under their own row ids
