"""Output that is not a terminal stays readable: `sdgen models | grep` finds whole names, and a run's progress in a log
is whole plain lines (rows, rows/s, tok/s, ETA), not a live bar folded to 80 columns."""

from __future__ import annotations

import io
import subprocess
import sys

import yaml

from sdgen.engines import register_engine
from sdgen.progress import LineProgress

from conftest import ROOT, cli_ok, shop_spec
from fake_engines import CopyingEngine

register_engine("copying", CopyingEngine)


def test_models_piped_is_one_whole_line_per_model():
    proc = subprocess.run([sys.executable, "-m", "sdgen.cli", "models"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    fields = [line.split("\t") for line in lines]
    assert all(len(f) == 6 for f in fields), lines
    assert [f[0] for f in fields if f[0].startswith("qwen")] == ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]


def test_line_progress_writes_whole_lines():
    stream = io.StringIO()
    progress = LineProgress(stream, interval=0)
    progress.start(10, "spec · model")
    progress.update(4, 40)
    progress.update(6, 60)
    progress.stop()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 and lines[0].startswith("spec · model: 0/10 rows, 0.00 rows/s, 0 tok/s, ETA ?")
    assert lines[-1].startswith("spec · model: 10/10 rows, ") and " rows/s, " in lines[-1] and " tok/s, ETA 0:00, " in lines[-1]


def test_line_progress_keeps_a_steady_interval():
    stream = io.StringIO()
    progress = LineProgress(stream, interval=3600)
    progress.start(100, "run")
    for _ in range(100):
        progress.update(1, 5)
    progress.stop()
    assert len(stream.getvalue().splitlines()) == 2  # the start and the end; none between within the hour


def test_a_generate_run_logged_to_a_file_shows_progress_lines(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(shop_spec(tmp_path, name="shop")))
    err = cli_ok(capsys, monkeypatch, "generate", spec, "--backend", "copying")
    progress = [line for line in err.splitlines() if line.startswith("shop · ")]
    assert progress and progress[-1].split(": ", 1)[1].startswith("12/12 rows, "), err
    assert "\r" not in err and "━" not in err  # no live bar
