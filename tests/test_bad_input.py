"""Bad input: every user mistake is one line naming the problem, a non-zero exit, no traceback, nothing lost."""

import errno
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sdgen
from sdgen.errors import OutputError, SpecError
from sdgen.spec import Spec, build_spec

from fake_engines import CraftedEngine, words
from sdgen.engines import register_engine
from conftest import ROOT, base_spec, cli_error

register_engine("crafted", CraftedEngine)


@pytest.fixture(autouse=True)
def unique_texts():
    """Every test starts from a crafted engine that writes a new text per row."""
    CraftedEngine.script = staticmethod(lambda row, label, attempt: words(row))

CASES = {
    "malformed YAML": ("labels: [a, b\n", "malformed YAML: line"),
    "unknown field": ({"colour": "red"}, "colour: unknown field"),
    "mistyped field": ({"sample_size": "many"}, "sample_size: Input should be a valid integer"),
    "no labels": ({"labels": []}, "labels: must name at least one label"),
    "duplicate labels": ({"labels": ["a", "b", "a"]}, "labels: duplicate labels: a"),
    "empty label": ({"labels": ["a", " "]}, "labels: a label is empty"),
    "category without types": ({"categories": {"travel": []}}, "category 'travel' must list at least one type"),
    "sample_size 0": ({"sample_size": 0}, "sample_size: Input should be greater than 0"),
    "negative batch_size": ({"batch_size": -1}, "batch_size: Input should be greater than 0"),
    "example with unknown label": (
        {"examples": [{"label": "rude", "category": "travel", "type": "air", "output": "x"}]},
        "examples.0: label 'rude' is not one of the labels",
    ),
    "missing model": ({"models": ["no-such-model"]}, "unknown model 'no-such-model'"),
    "bad output format": ({"output": "out.xlsx"}, "unsupported extension"),
    "ray workers 0": ({"ray": {"workers": 0}}, "ray.workers: Input should be greater than or equal to 1"),
    "ray unknown field": ({"ray": {"nodes": 2}}, "ray.nodes: unknown field"),
}


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sdgen.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def check_one_line(proc, expected):
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], proc.stderr


@pytest.fixture
def sdgen_cli(capsys, monkeypatch):
    """The CLI run in this process (no interpreter start per case): ``sdgen_cli(*args, expected=...)``."""

    def run(*args, expected: str) -> None:
        assert expected in cli_error(capsys, monkeypatch, *args)

    return run


def test_a_bad_spec_is_one_line_from_a_real_process(tmp_path):
    """The smoke test of the one-line errors through a real `python -m sdgen.cli` (the rest run in-process)."""
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(base_spec(output=str(tmp_path / "out.csv"), colour="red")))
    check_one_line(run_cli("generate", str(path)), "colour: unknown field")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("case", list(CASES))
def test_bad_specs_are_one_line_errors(tmp_path, case, sdgen_cli):
    change, expected = CASES[case]
    path = tmp_path / "spec.yaml"
    if isinstance(change, str):
        path.write_text(change)
    else:
        data = base_spec(**{"output": str(tmp_path / "out.csv"), **change})
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
    sdgen_cli("generate", path, expected=expected)
    assert not (tmp_path / "out.csv").exists()


def test_bad_places_are_one_line_errors(tmp_path, tiny_models, sdgen_cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a dir")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(base_spec(models=[str(tiny_models["chat"])], sample_size=2)))
    sdgen_cli("generate", tmp_path / "nope.yaml", expected="spec file not found")
    sdgen_cli("generate", spec, "-o", blocker / "out.csv", expected="cannot create output dir")
    corrupt = tmp_path / "corrupt-ir"
    corrupt.mkdir()
    (corrupt / "openvino_model.xml").write_text("<net>broken")
    (corrupt / "openvino_model.bin").write_bytes(b"\0" * 16)
    out = tmp_path / "out.csv"
    sdgen_cli("generate", spec, "-m", corrupt, "-o", out, expected="has no OpenVINO tokenizer")
    corrupt_gguf = tmp_path / "corrupt.gguf"
    corrupt_gguf.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    sdgen_cli("generate", spec, "-m", corrupt_gguf, "-o", out, expected="could not load model")
    assert not out.exists() or len(pd.read_csv(out)) == 0  # (an existing output's refusal: test_cli, test_store)


def test_labels_with_commas_quotes_newlines_and_unicode_round_trip(tmp_path):
    labels = ["polite, mostly", 'says "hi"', "two\nlines", "ünïcødé ✓ 礼貌"]
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    spec = build_spec({"task": "t", "labels": labels, "categories": {"c, d": ['x "y"', "z\nw"]}, "sample_size": 40,
                       "models": [str(model)], "output": str(tmp_path / "out.csv")}, base_dir=tmp_path)  # fmt: skip
    summary = sdgen.generate(spec, backend="crafted")
    df = pd.read_csv(summary.output, keep_default_na=False)
    assert len(df) == 40 and set(df["label"]) == set(labels)
    assert set(df["category"]) == {"c, d"} and set(df["type"]) == {'x "y"', "z\nw"}


def test_full_disk_is_one_line_keeps_the_rows_and_resumes(tmp_path, monkeypatch):
    """ENOSPC on the 4th sync: the error says what is safe; after 'freeing space' --resume finishes the plan."""
    import sdgen.store.files

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    spec = build_spec({"task": "t", "labels": ["a", "b"], "categories": {"c": ["x"]}, "sample_size": 80,
                       "batch_size": 10, "models": [str(model)], "output": str(tmp_path / "out.csv")},
                      base_dir=tmp_path)  # fmt: skip
    real_fsync, calls = sdgen.store.files.os.fsync, []

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) >= 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(sdgen.store.files.os, "fsync", failing_fsync)
    with pytest.raises(OutputError, match=r"out.csv: No space left on device; the \d+ rows written before are intact"):
        sdgen.generate(spec, backend="crafted")
    monkeypatch.setattr(sdgen.store.files.os, "fsync", real_fsync)
    kept = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert len(kept) >= 10 and kept["row"].is_unique  # at least the batch synced before the failure
    summary = sdgen.generate(spec, backend="crafted", resume=True)
    df = pd.read_csv(summary.output, keep_default_na=False)
    assert sorted(df["row"]) == list(range(80))
    assert set(kept["text"]) <= set(df["text"])


# -- property-based: any spec data either validates or fails as one SpecError line ----------------

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=12))
_value = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=4), max_leaves=12)
# Every field of the spec model (a new field is fuzzed without anyone adding it here), and the removed `verify`.
_FIELDS = sorted({*(name for name, field in Spec.model_fields.items() if not field.exclude), "verify"})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(_FIELDS + ["typo"]), _value, max_size=4),
       labels=st.lists(st.text(min_size=0, max_size=10), max_size=5))  # fmt: skip
def test_any_spec_validates_or_fails_as_one_spec_error(tmp_path, changes, labels):
    data = base_spec(labels=labels)
    data.update(changes)
    try:
        spec = build_spec(data, base_dir=tmp_path)
    except SpecError as exc:
        message = str(exc)
        assert message.startswith("spec: ") and len(message) > len("spec: ")
        return
    assert spec.sample_size > 0 and spec.batch_size > 0 and spec.labels
    assert all(label.strip() for label in spec.labels) and all(types for types in spec.categories.values())


def test_the_fuzzed_fields_are_the_spec_models():
    assert {"judge", "examples_from", "rows_per_request", "contrast", "mix_real", "labels", "verify"} <= set(_FIELDS)
    assert "base_dir" not in _FIELDS
