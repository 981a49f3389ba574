"""Every documented entry point runs: `--help` of each script under scripts/, each benchmarks/*.py with a CLI and each
`sdgen` subcommand (a moved module once broke the conversion script, silently), and the conversion script converts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SCRIPTS = sorted(p for folder in ("scripts", "benchmarks") for p in (ROOT / folder).glob("*.py")
                 if '__name__ == "__main__"' in p.read_text(encoding="utf-8"))  # fmt: skip


def sdgen_commands() -> list[str]:
    from sdgen.cli import app

    return sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_the_scripts_are_found():
    names = {p.name for p in SCRIPTS}
    assert {"convert_model.py", "kill_resume.py", "quality_run.py", "quality_eval.py", "tune_eval.py"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_script_answers_help(script: Path):
    proc = run(str(script), "--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr


def test_every_sdgen_command_answers_help():
    commands = sdgen_commands()
    assert {"generate", "tune", "eval", "convert", "models", "bench", "report"} <= set(commands)
    for command in commands:
        proc = run("-m", "sdgen.cli", command, "--help")
        assert proc.returncode == 0 and "Usage: " in proc.stdout, (command, proc.stderr)


def test_the_conversion_script_converts_a_tiny_model(tiny_hf, tmp_path):
    """The real optimum-intel + NNCF export, in the default suite: converting is one of the three things sdgen is
    for, and this script once broke on a moved module (the other modes: tests/test_convert.py, `make test-slow`)."""
    out = tmp_path / "ir"
    proc = run("scripts/convert_model.py", str(tiny_hf), "--out", str(out), "--weights", "int8", timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert (out / "openvino_model.xml").is_file() and "tokenizer ok" in proc.stdout
