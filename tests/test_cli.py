"""The `sdgen` command as a user runs it: a real subprocess, exit codes, stdout/stderr."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, base_spec

FAST = {"max_new_tokens": 16, "temperature": 1.0}


def sdgen(*args, cwd=ROOT):
    cmd = [sys.executable, "-c", "from sdgen.cli import main; main()", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def tiny_spec(write_spec, tiny_models, tmp_path):
    return write_spec(base_spec(models=[str(tiny_models["chat"])], generation=FAST, engine={"threads": 2},
                                prompt_style="fewshot", output=str(tmp_path / "out.csv")))  # fmt: skip


def test_generate_quiet_prints_only_the_output_path(tiny_spec, tmp_path):
    proc = sdgen("generate", tiny_spec, "--rows", 6, "--seed", 3, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "out.csv")
    assert len(pd.read_csv(tmp_path / "out.csv")) >= 1


def test_generate_shows_summary(tiny_spec, tmp_path):
    proc = sdgen("generate", tiny_spec, "--rows", 8, "--output", tmp_path / "o.jsonl", "--threads", 1)
    assert proc.returncode == 0, proc.stderr
    for word in ("rows written", "unparseable", "exact duplicates", "generated tokens", "tok/s", "wall time"):
        assert word in proc.stderr
    assert (tmp_path / "o.jsonl").is_file()


def one_line_error(proc, *fragments):
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_existing_output_is_refused_then_overwritten(tiny_spec, tmp_path):
    (tmp_path / "out.csv").write_text("old\n")
    one_line_error(sdgen("generate", tiny_spec, "--rows", 2), "already exists", "--overwrite")
    assert (tmp_path / "out.csv").read_text() == "old\n"
    assert sdgen("generate", tiny_spec, "--rows", 2, "--overwrite", "-q").returncode == 0


def test_user_errors_are_one_line(tmp_path, write_spec):
    one_line_error(sdgen("generate", tmp_path / "missing.yaml"), "spec file not found")
    bad = write_spec(base_spec(sample_size=0), name="bad.yaml")
    one_line_error(sdgen("generate", bad), "bad.yaml", "sample_size")
    one_line_error(sdgen("generate", bad, "--rows", 3, "--model", "no-such-model"), "unknown model 'no-such-model'")
    one_line_error(sdgen("generate", bad, "--rows", 3, "--backend", "cuda"), "unknown backend 'cuda'")


def test_models_lists_builtins_and_paths(tiny_models):
    proc = sdgen("models", tiny_models["base"])
    assert proc.returncode == 0, proc.stderr
    assert "built-in" in proc.stdout and "local" in proc.stdout
    proc = sdgen("models", tiny_models["base"], "--json")
    rows = {r["name"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert rows["smollm2-135m-instruct"]["provisioned"] is True
    assert rows["smollm2-135m-instruct"]["location"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert rows[str(tiny_models["base"])]["format"] == "gguf"


def test_ctrl_c_keeps_completed_rows_and_exits_130(write_spec, tiny_models, tmp_path):
    import signal
    import time

    spec = write_spec(base_spec(models=[str(tiny_models["chat"])], prompt_style="fewshot", batch_size=7,
                                generation={"max_new_tokens": 64}, engine={"threads": 2, "max_num_seqs": 8},
                                output=str(tmp_path / "out.csv")))  # fmt: skip
    cmd = [sys.executable, "-c", "from sdgen.cli import main; main()", "generate", str(spec), "-n", "100000", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    out = tmp_path / "out.csv"
    while not out.exists() or out.stat().st_size < 2000:  # stop it once rows are on disk
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    df = pd.read_csv(out)
    assert len(df) > 0 and df["row"].is_unique
    assert f"interrupted: {len(df)} rows written to {out}" in stderr


def test_a_bare_ray_flag_never_takes_the_next_word_as_its_address():
    from sdgen.cli import _bare_ray_flag

    assert _bare_ray_flag(["generate", "s.yaml", "--ray"]) == ["generate", "s.yaml", "--ray="]
    assert _bare_ray_flag(["generate", "s.yaml", "--ray", "--quiet"]) == ["generate", "s.yaml", "--ray=", "--quiet"]
    assert _bare_ray_flag(["generate", "--ray", "spec.yml"]) == ["generate", "--ray=", "spec.yml"]
    assert _bare_ray_flag(["generate", "s.yaml", "--ray", "h:6379"]) == ["generate", "s.yaml", "--ray", "h:6379"]


def test_a_model_that_needs_the_convert_extra_names_it(tiny_spec, tmp_path):
    """Rich markup used to eat "[convert]" out of this message; without torch, Gemma 3 says what to install."""
    blocked = "import sys; sys.modules['torch'] = None; sys.modules['optimum'] = None; from sdgen.cli import main; main()"
    cmd = [sys.executable, "-c", blocked, "generate", str(tiny_spec), "-n", "2", "-m", "gemma3-270m",
           "-o", str(tmp_path / "g.csv")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**__import__("os").environ,
                          "SDGEN_CACHE": str(tmp_path / "cache")})  # fmt: skip
    one_line_error(proc, "install the [convert] extra (`make install-convert`)", "'gemma3-270m'")
