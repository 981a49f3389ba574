"""`mix_real` / `--mix-real`: the user's real rows go into the dataset once, marked `source: real`, and no
generated row copies one."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

import sdgen
from sdgen.engines import register_engine
from sdgen.run.finish import mix_in_real
from sdgen.store.files import read_dataset

from conftest import cli_ok, shop_spec
from fake_engines import SHOP_ROWS, CopyingEngine

register_engine("copying", CopyingEngine)
REAL = SHOP_ROWS


@pytest.fixture(autouse=True)
def fresh_engine():
    CopyingEngine.copied = set()


def write_real(path, text_col="text", label_col="label"):
    pd.DataFrame(REAL, columns=[text_col, label_col]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_mix_real_writes_exactly_the_real_rows_once(tmp_path, suffix):
    write_real(tmp_path / "real.csv")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(shop_spec(tmp_path, mix_real="real.csv", output=f"out{suffix}")))
    summary = sdgen.generate(spec, backend="copying")
    df = read_dataset(summary.output)
    real = df[df["source"] == "real"]
    assert sorted(zip(real["text"], real["label"])) == sorted(REAL)
    assert sorted(real["row"]) == [-5, -4, -3, -2, -1]
    generated = df[df["source"] == "generated"]
    assert len(generated) == 12 == summary.written and summary.real_rows == 5 and len(df) == 17
    # the engine copied a real row for each label: both copies were dropped and replaced
    assert not set(generated["text"]) & {t for t, _ in REAL} and summary.screened("example") == {"real row": 2}
    # finishing again (a resumed run) does not add them twice
    assert len(read_dataset(summary.output).pipe(lambda d: d[d["source"] == "real"])) == 5
    mix_in_real(sdgen.load_spec(spec), summary, None, pd.DataFrame(REAL, columns=["text", "label"]))
    assert len(read_dataset(summary.output)) == 17


def test_mix_real_from_the_cli_with_named_columns(tmp_path, capsys, monkeypatch):
    write_real(tmp_path / "mine.csv", "body", "y")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(shop_spec(tmp_path)))
    cli_ok(capsys, monkeypatch, "generate", spec, "--backend", "copying", "-q", "-o", tmp_path / "mixed.jsonl",
           "--mix-real", tmp_path / "mine.csv", "--text-col", "body", "--label-col", "y")  # fmt: skip
    df = pd.read_json(tmp_path / "mixed.jsonl", lines=True)
    assert (df["source"] == "real").sum() == 5 and (df["source"] == "generated").sum() == 12


def test_without_mix_real_there_is_no_source_column(tmp_path):
    summary = sdgen.generate(sdgen.build_spec(shop_spec(tmp_path), base_dir=tmp_path), backend="copying")
    assert "source" not in read_dataset(summary.output).columns and summary.real_rows == 0


def test_mix_real_true_needs_examples_from(tmp_path):
    with pytest.raises(sdgen.SpecError, match="mix_real: true takes its rows from examples_from, which the spec lacks"):
        sdgen.build_spec(shop_spec(tmp_path, mix_real=True), base_dir=tmp_path)


def test_mix_real_true_takes_the_examples_from_file(tmp_path):
    write_real(tmp_path / "ex.csv", "body", "y")
    data = shop_spec(tmp_path, mix_real=True, examples_from={"path": "ex.csv", "text_col": "body", "label_col": "y"})
    summary = sdgen.generate(sdgen.build_spec(data, base_dir=tmp_path), backend="copying")
    assert summary.real_rows == 5
