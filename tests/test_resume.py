"""Kill real runs at random moments (SIGKILL, SIGTERM, Ctrl-C), resume them, and check the dataset is exact."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import sdgen
from sdgen.engines.base import register_engine
from sdgen.errors import OutputError
from sdgen.sinks import read_dataset

import test_curation
from conftest import ROOT, base_spec

register_engine("slow", test_curation.CraftedEngine)  # the children's backend name, unslowed, for refusals

TESTS = ROOT / "tests"

# A child process: the crafted engine of test_curation, slowed down so that a kill lands mid-run.
CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import sdgen
    from sdgen.engines.base import register_engine
    import test_curation as tc

    class Slow(tc.CraftedEngine):
        def generate(self, requests):
            for result in super().generate(requests):
                time.sleep(0.004)
                yield result

    tc.CraftedEngine.script = staticmethod(tc.SCENARIO)
    register_engine("slow", Slow)
    spec = sdgen.build_spec({spec!r}, base_dir=sys.argv[1] and __import__("pathlib").Path(sys.argv[1]))
    sdgen.generate(spec, backend="slow", resume=sys.argv[2] == "resume", report=False)
""")


def crafted_spec(tmp_path, suffix, **changes):
    model = tmp_path / "fake.gguf"
    model.write_bytes(b"GGUF")
    data = {
        "task": "Crafted texts.", "labels": ["a", "b", "c"], "categories": {"topic": ["x", "y"]},
        "sample_size": 400, "batch_size": 16, "seed": 5, "models": [str(model)], "prompt_style": "fewshot",
        "output": str(tmp_path / f"out{suffix}"),
    }  # fmt: skip
    data.update(changes)
    return data


def run_child(data, tmp_path, mode, kill_after=None, sig=signal.SIGKILL):
    code = CHILD.format(tests=str(TESTS), spec=data)
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), mode], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    if kill_after is not None:
        time.sleep(kill_after)
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, err


def final_rows(path):
    df = read_dataset(path).sort_values("row").reset_index(drop=True)
    return df[["row", "text", "label", "category", "type", "seed"]]  # the model path differs between dirs


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_dataset(tmp_path, suffix):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref_dir.mkdir(), run_dir.mkdir()
    code, err = run_child(crafted_spec(ref_dir, suffix), ref_dir, "fresh")
    assert code == 0, err
    reference = final_rows(ref_dir / f"out{suffix}")
    ref_conflicts = final_rows(ref_dir / f"out.conflicts{suffix}")
    data = crafted_spec(run_dir, suffix)
    rng = random.Random(suffix)
    code, err = run_child(data, run_dir, "fresh", kill_after=rng.uniform(1.0, 2.5))
    kills = 1
    while code != 0 and kills < 6:  # resume, killed again at another random moment, until one finishes
        assert code == -signal.SIGKILL, err
        code, err = run_child(data, run_dir, "resume", kill_after=rng.uniform(0.8, 2.5) if kills < 3 else None)
        kills += 1
    assert code == 0, err
    assert kills >= 2  # at least one kill landed mid-run
    pd.testing.assert_frame_equal(final_rows(run_dir / f"out{suffix}"), reference)
    pd.testing.assert_frame_equal(final_rows(run_dir / f"out.conflicts{suffix}"), ref_conflicts)
    assert json.loads((run_dir / "out.manifest.json").read_text())["status"] == "finished"


def test_resume_repairs_a_torn_last_line(tmp_path):
    data = crafted_spec(tmp_path, ".csv", sample_size=120)
    code, err = run_child(data, tmp_path, "fresh", kill_after=1.2)
    assert code == -signal.SIGKILL, err
    out = tmp_path / "out.csv"
    with out.open("a", encoding="utf-8") as f:
        f.write('"half a row, cut by the crash')  # an unterminated quoted field
    code, err = run_child(data, tmp_path, "resume")
    assert code == 0, err
    df = final_rows(out)
    assert df["row"].is_unique and "half a row" not in " ".join(df["text"])
    ref = tmp_path / "ref"
    ref.mkdir()
    code, _ = run_child(crafted_spec(ref, ".csv", sample_size=120), ref, "fresh")
    pd.testing.assert_frame_equal(df, final_rows(ref / "out.csv"))


def test_resume_refusals_name_what_changed(tmp_path):
    data = crafted_spec(tmp_path, ".csv", sample_size=60)
    code, err = run_child(data, tmp_path, "fresh")
    assert code == 0, err
    spec = sdgen.build_spec(data, base_dir=tmp_path)
    with pytest.raises(OutputError, match=r"cannot resume out.csv: seed: 5 -> 6 \(pass --overwrite to start over\)"):
        sdgen.generate(spec, seed=6, resume=True, backend="slow")
    with pytest.raises(OutputError, match=r"generation.temperature: 0.8 -> 0.2"):
        sdgen.generate(spec, generation={"temperature": 0.2}, resume=True, backend="slow")
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF2")
    with pytest.raises(OutputError, match=r"cannot resume out.csv: models"):
        sdgen.generate(spec, model=str(other), resume=True, backend="slow")
    with pytest.raises(OutputError, match=r"cannot resume out.csv: backend: slow -> crafted"):
        sdgen.generate(spec, resume=True, backend="crafted")
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        sdgen.generate(spec, backend="slow")
    with pytest.raises(OutputError, match="nothing to resume"):
        sdgen.generate(spec, output=tmp_path / "new.csv", resume=True, backend="slow")
    with pytest.raises(OutputError, match="contradict"):
        sdgen.generate(spec, resume=True, overwrite=True, backend="slow")
    assert set(os.listdir(tmp_path)) == {"fake.gguf", "other.gguf", "out.csv", "out.conflicts.csv",
                                         "out.manifest.json", "out.journal.jsonl"}  # refused runs wrote nothing


def test_sigterm_and_ctrl_c_stop_gracefully_and_print_the_resume_command(tmp_path, tiny_models, write_spec):
    for sig in (signal.SIGTERM, signal.SIGINT):
        out = tmp_path / f"out-{sig.name}.csv"
        spec = write_spec(base_spec(models=[str(tiny_models["chat"])], prompt_style="fewshot", batch_size=8,
                                    generation={"max_new_tokens": 48}, engine={"threads": 2, "max_num_seqs": 8},
                                    sample_size=400, output=str(out)), name=f"spec-{sig.name}.yaml")  # fmt: skip
        cmd = [sys.executable, "-m", "sdgen.cli", "generate", str(spec), "-q"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        deadline = time.time() + 120
        while time.time() < deadline and (not out.exists() or out.stat().st_size < 3000):
            time.sleep(0.2)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, stderr
        written = pd.read_csv(out, keep_default_na=False)
        assert f"interrupted: {len(written)} rows written to {out}" in stderr
        resume_line = next(line for line in stderr.splitlines() if line.startswith("resume with: "))
        assert resume_line.endswith("--resume") and str(spec) in resume_line
        args = resume_line.removeprefix("resume with: sdgen ").split()
        done = subprocess.run([sys.executable, "-m", "sdgen.cli", *args], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        final = pd.read_csv(out, keep_default_na=False)
        journal = [json.loads(line) for line in (tmp_path / f"out-{sig.name}.journal.jsonl").read_text().splitlines()]
        dropped = {e["row"] for e in journal if e["event"] != "replacement"}
        assert final["row"].is_unique and set(final["row"]) | dropped == set(range(400))
        assert not set(final["row"]) & dropped
        assert set(written["row"]) <= set(final["row"]) | dropped


def test_real_engine_resume_reproduces_the_uninterrupted_rows(tmp_path, tiny_models, write_spec):
    """Per-row seeds and a batch-invariant KV cache: rows generated after a SIGKILL equal the uninterrupted run's."""
    common = dict(models=[str(tiny_models["chat"])], prompt_style="fewshot", batch_size=8, sample_size=300,
                  generation={"max_new_tokens": 40}, engine={"threads": 2, "max_num_seqs": 16, "dtype": "fp32"})  # fmt: skip
    ref = write_spec(base_spec(**common, output=str(tmp_path / "ref.jsonl")), name="ref.yaml")
    run = write_spec(base_spec(**common, output=str(tmp_path / "run.jsonl")), name="run.yaml")
    cli = [sys.executable, "-m", "sdgen.cli", "generate"]
    assert subprocess.run([*cli, str(ref), "-q"], capture_output=True, cwd=ROOT).returncode == 0
    proc = subprocess.Popen([*cli, str(run), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    out = tmp_path / "run.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.stat().st_size < 4000):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    partial = len(out.read_text().splitlines())
    done = subprocess.run([*cli, str(run), "-q", "--resume"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    a, b = final_rows(tmp_path / "run.jsonl"), final_rows(tmp_path / "ref.jsonl")
    assert 0 < partial < len(b)
    pd.testing.assert_frame_equal(a, b)


def test_resuming_a_finished_run_adds_nothing(tmp_path):
    data = crafted_spec(tmp_path, ".csv", sample_size=40)
    assert run_child(data, tmp_path, "fresh")[0] == 0
    before = final_rows(tmp_path / "out.csv")
    assert run_child(data, tmp_path, "resume")[0] == 0
    pd.testing.assert_frame_equal(final_rows(tmp_path / "out.csv"), before)
