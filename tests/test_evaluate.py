"""`sdgen eval` on a vendored real sample (180 politeness rows, 60 per label; tests/data/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

import sdgen
from sdgen.errors import SdgenError
from sdgen.quality.evaluate import _sample, _split, evaluate
from sdgen.realdata import read_real

from conftest import ROOT

REAL = ROOT / "tests" / "data" / "politeness_sample.csv"
LABELS = ["impolite", "neutral", "polite"]


def reference_rows(n: int) -> pd.DataFrame:
    """The real rows the reference classifier trains on for an n-row dataset (seed 0)."""
    _, pool = _split(read_real(REAL, "text", "label"), LABELS, 0)
    return _sample(pool, n, 0)


def write(df: pd.DataFrame, path):
    df.assign(model="m")[["text", "label", "model"]].to_csv(path, index=False)
    return path


def test_counts_of_the_split_the_reference_and_the_confusion_matrix(tmp_path):
    """180 real rows: 90 held out (30 per label), 90 in the pool; a 30-row dataset gets a 30-row reference."""
    data = write(reference_rows(30), tmp_path / "same.csv")
    report = evaluate(data, REAL)
    assert report.labels == LABELS and report.synthetic_rows == 30 and report.real_test_rows == 90
    assert report.reference_rows == 30
    assert [sum(row) for row in report.confusion] == [30, 30, 30]
    # a dataset made of the very rows the reference trains on scores exactly the reference
    assert report.macro_f1 == report.reference_macro_f1 and report.ratio == 1.0
    assert report.agreement > 0.8  # real rows, so a real-trained classifier mostly agrees
    # its agreement with the humans on unseen real rows is lower (these are rows it did not train on)
    assert report.real_agreement is not None and report.real_agreement < report.agreement
    assert 0 < report.distinct_2 <= 1 and 0 <= report.mean_pairwise_similarity < 0.2
    written = json.loads((tmp_path / "same.eval.json").read_text())
    assert written["macro_f1"] == report.macro_f1 and written["ratio_to_reference"] == 1.0
    assert (tmp_path / "same.eval.confusion.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "same.eval.md").read_text()
    assert "macro-F1 **" in md and "| polite |" in md and "same.eval.confusion.png" in md


def test_wrong_labels_lose_agreement_and_f1(tmp_path):
    rows = reference_rows(60)
    right = evaluate(write(rows, tmp_path / "right.csv"), REAL)
    shifted = rows.assign(label=rows["label"].map(dict(zip(LABELS, LABELS[1:] + LABELS[:1]))))
    wrong = evaluate(write(shifted, tmp_path / "wrong.csv"), REAL)
    assert wrong.agreement < 0.3 < right.agreement
    assert wrong.macro_f1 < right.macro_f1
    assert set(wrong.agreement_by_model) == {"m"}


def test_misread_rows_name_what_they_are_read_as_and_the_words_that_mark_each_label(tmp_path):
    """Real rows under shifted labels: every label's rows are read as the label they came from, and the words that
    mark a label in the generated rows are those of the real label its rows came from."""
    rows = reference_rows(60)
    shift = dict(zip(LABELS, LABELS[1:] + LABELS[:1]))
    right = evaluate(write(rows, tmp_path / "right.csv"), REAL)
    wrong = evaluate(write(rows.assign(label=rows["label"].map(shift)), tmp_path / "wrong.csv"), REAL)
    assert right.read_as == {lab: {} for lab in LABELS}
    assert wrong.read_as == {new: {old: 1.0} for old, new in shift.items()}
    for old, new in shift.items():
        assert wrong.markers[new]["generated"] == right.markers[old]["generated"]
        assert wrong.markers[new]["real"] == right.markers[new]["real"] and len(right.markers[new]["real"]) == 8
    md = (tmp_path / "wrong.eval.md").read_text()
    assert f"| neutral | 0.0% | impolite 100% | {', '.join(wrong.markers['neutral']['real'])} |" in md


def test_agreement_by_model_and_label(tmp_path):
    rows = reference_rows(60).reset_index(drop=True)
    rows["model"] = ["a" if i % 2 else "b" for i in range(len(rows))]
    rows[["text", "label", "model"]].to_csv(tmp_path / "two.csv", index=False)
    report = evaluate(tmp_path / "two.csv", REAL)
    assert set(report.agreement_by_model) == {"a", "b"} and set(report.agreement_by_label) == set(LABELS)


def test_bad_inputs_are_one_line_errors(tmp_path):
    data = write(reference_rows(30), tmp_path / "d.csv")
    with pytest.raises(SdgenError, match=r"no column 'sentence' \(columns: text, label, domain\); name them with --text-col"):
        evaluate(data, REAL, text_col="sentence")
    odd = pd.read_csv(data).assign(label=lambda d: d["label"].replace({"polite": "courteous"}))
    odd.to_csv(tmp_path / "odd.csv", index=False)
    with pytest.raises(SdgenError, match=r"has no rows labelled 'courteous' \(its labels: impolite, neutral, polite\)"):
        evaluate(tmp_path / "odd.csv", REAL)
    with pytest.raises(SdgenError, match="real data file not found"):
        evaluate(data, tmp_path / "nope.csv")
    proc = subprocess.run([sys.executable, "-m", "sdgen.cli", "eval", str(data), "--real", str(REAL), "--label-col", "y"],
                          capture_output=True, text=True)  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "no column 'y'" in lines[0]


def test_the_cli_prints_the_table(tmp_path):
    data = write(reference_rows(30), tmp_path / "d.csv")
    proc = subprocess.run([sys.executable, "-m", "sdgen.cli", "eval", str(data), "--real", str(REAL), "--json"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["real_test_rows"] == 90


def test_generate_checks_the_real_file_first_and_appends_the_eval_to_the_report(tmp_path, monkeypatch):
    from fake_engines import CraftedEngine
    from sdgen.engines import register_engine

    register_engine("crafted", CraftedEngine)

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    spec = sdgen.build_spec({"task": "t", "labels": LABELS, "categories": {"c": ["x"]}, "sample_size": 30,
                             "models": [str(model)], "output": str(tmp_path / "out.csv")}, base_dir=tmp_path)  # fmt: skip
    with pytest.raises(SdgenError, match="no column 'body'"):
        sdgen.generate(spec, backend="crafted", evaluate=REAL, eval_columns=("body", "label"))
    assert not (tmp_path / "out.csv").exists()  # refused before any row was made
    summary = sdgen.generate(spec, backend="crafted", evaluate=REAL)
    assert summary.evaluation is not None and summary.evaluation.synthetic_rows == summary.written
    assert "## Evaluation against real data" in summary.report_file.read_text()
    assert (tmp_path / "out.eval.json").is_file()


def seed_of(n: int) -> pd.DataFrame:
    """n real rows per label, drawn from the sample file (they are also in it: eval must leave them out)."""
    return read_real(REAL, "text", "label").groupby("label", group_keys=False).sample(n, random_state=1)


def test_the_learning_curve_against_the_users_seed(tmp_path):
    seed = tmp_path / "seed.csv"
    seed_of(5)[["text", "label"]].to_csv(seed, index=False)
    helpful = write(reference_rows(60), tmp_path / "helpful.csv")
    report = evaluate(helpful, REAL, seed_file=seed)
    assert report.seed_rows == 15 and report.real_test_rows + report.reference_rows <= 180 - 15
    assert "15 real rows that are also in the seed were left out of the test and reference rows" in report.notes
    assert report.hybrid_macro_f1 > report.seed_macro_f1 and report.helps and report.hybrid_gain > 1
    md = (tmp_path / "helpful.eval.md").read_text()
    assert f"- Learning curve with the user's real rows (`seed.csv`): seed + generated rows {report.hybrid_macro_f1:.3f}" in md
    assert json.loads((tmp_path / "helpful.eval.json").read_text())["hybrid_gain"] == report.hybrid_gain
    # rows whose labels are shuffled teach the wrong thing: the report says so plainly
    rows = reference_rows(60)
    noise = write(rows.assign(label=rows["label"].sample(frac=1, random_state=3).to_numpy()), tmp_path / "noise.csv")
    bad = evaluate(noise, REAL, seed_file=seed)
    assert not bad.helps and bad.hybrid_line().startswith("the generated rows do not help: seed + generated rows")
    assert "the generated rows do not help" in (tmp_path / "noise.eval.md").read_text()


def test_a_seed_that_is_the_real_file_is_warned_about(tmp_path):
    data = write(reference_rows(30), tmp_path / "d.csv")
    proc = subprocess.run([sys.executable, "-m", "sdgen.cli", "eval", str(data), "--real", str(REAL), "--seed", str(REAL)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "warning: the seed file is also the real file (politeness_sample.csv): these figures are scored on the rows " \
           "the spec was tuned on" in " ".join(proc.stderr.split())
    assert "**Warning: the seed file is also the real file" in (tmp_path / "d.eval.md").read_text()
    # a whole number is still the split seed, as before
    proc = subprocess.run([sys.executable, "-m", "sdgen.cli", "eval", str(data), "--real", str(REAL), "--seed", "3", "--json"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and json.loads(proc.stdout)["seed_macro_f1"] is None
    assert json.loads(proc.stdout)["macro_f1"] == evaluate(data, REAL, seed=3, write=False).macro_f1


def vocabulary_rows(label: str, word: str, n: int, seed: int) -> pd.DataFrame:
    """n texts of ``word`` among filler words (its label's marker), labelled ``label``."""
    import random

    rng = random.Random(seed)
    filler = "the a of film scene story time people place way day part".split()
    texts = [" ".join([word, *rng.sample(filler, 5), str(rng.randrange(10**6))]) for _ in range(n)]
    return pd.DataFrame({"text": texts, "label": label})


def test_the_real_label_shares_are_scored_and_asked_for_where_they_help(tmp_path):
    """Real rows 80% `common`: where half the generated rows teach its marker under another label, drawing them at
    the real shares scores higher than as many at their own shares, and the report gives the spec lines."""
    real = pd.concat([vocabulary_rows("common", "alpha", 400, 1), vocabulary_rows("rare", "beta", 50, 2),
                      vocabulary_rows("other", "gamma", 50, 3)])  # fmt: skip
    real.to_csv(tmp_path / "real.csv", index=False)
    generated = pd.concat([vocabulary_rows("common", "alpha", 60, 4), vocabulary_rows("rare", "alpha", 60, 5),
                           vocabulary_rows("other", "gamma", 60, 6)])  # fmt: skip
    report = evaluate(write(generated, tmp_path / "even.csv"), tmp_path / "real.csv")
    assert report.real_shares == {"common": 0.8, "other": 0.1, "rare": 0.1}
    assert report.shares_rows == 76  # 60 common rows at 80%: 60, and 7.5 rounded to 8 for each 10% label
    assert report.shares_macro_f1 > report.as_generated_macro_f1 and report.shares_help
    md = (tmp_path / "even.eval.md").read_text()
    line = next(line for line in md.splitlines() if line.startswith("- Label shares: "))
    snippet = line.split("`")[1]  # the spec lines it suggests load as a spec's balance
    balance = __import__("yaml").safe_load(snippet)["balance"]
    assert balance == {"shares": {"common": 0.8, "other": 0.1, "rare": 0.1}}
    assert json.loads((tmp_path / "even.eval.json").read_text())["shares_macro_f1"] == report.shares_macro_f1
    proc = subprocess.run([sys.executable, "-m", "sdgen.cli", "eval", str(tmp_path / "even.csv"), "--real",
                           str(tmp_path / "real.csv")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"label shares: {report.shares_line()}" in " ".join(proc.stdout.split())
    # a dataset at about the real shares gets no figure
    near = pd.concat([generated[generated["label"] == "common"], generated[generated["label"] != "common"].iloc[::8]])
    close = evaluate(write(near, tmp_path / "near.csv"), tmp_path / "real.csv")
    assert close.shares_macro_f1 is None and "Label shares" not in (tmp_path / "near.eval.md").read_text()


def test_real_shares_that_would_not_help_are_said_not_to():
    from sdgen.quality.evaluate import EvalReport

    report = EvalReport("d.csv", "r.csv", ["a", "b"], 100, 50, 0.6, {}, reference_macro_f1=0.5,
                        real_shares={"a": 0.9, "b": 0.1}, shares_rows=55, shares_macro_f1=0.4,
                        as_generated_macro_f1=0.45)  # fmt: skip
    assert not report.shares_help
    assert report.shares_line() == ("55 of these rows drawn at the real rows' label shares (a 90%, b 10%) score "
                                    "macro-F1 0.400 (0.80 of real-trained), as many drawn at the dataset's own "
                                    "shares 0.450: generating at those shares would not help these rows")  # fmt: skip
