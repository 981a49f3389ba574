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
from sdgen.engines import register_engine
from sdgen.errors import OutputError
from sdgen.plan import make_plan
from sdgen.store.files import read_dataset

from conftest import ROOT, base_spec
from fake_engines import CraftedEngine

register_engine("slow", CraftedEngine)
register_engine("crafted", CraftedEngine)  # a second name, to change the backend between runs  # the children's backend name, unslowed, for refusals

TESTS = ROOT / "tests"

# A child process: the crafted engine (fake_engines); with a kill point, it SIGKILLs itself once that many rows
# have settled (progress decides where the kill lands, not a clock).
CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import sdgen
    from sdgen.engines import register_engine
    from sdgen.progress import NullProgress
    import fake_engines as tc

    class KillAt(NullProgress):
        def __init__(self, at):
            self.at, self.rows = at, 0

        def update(self, rows, tokens):
            self.rows += rows
            if self.at and self.rows >= self.at:
                os.kill(os.getpid(), signal.SIGKILL)

    def judged(row, label, attempt):  # the judge gives planned rows 6, 19, 32, ... the other label, and is unsure
        text = tc.SCENARIO(row, label, attempt)  # of 9, 22, 35, ... (below min_confidence); rows 4, 21, 38, ...
        other = {{"a": "b", "b": "c", "c": "a"}}[label]  # say "please", which label a avoids
        if row < 400 and row % 17 == 4 and row % 13 not in (6, 9):
            text = text and f"{{text}} please"
        if row < 400 and row % 13 == 9:
            return text and f"{{text}} says {{label}} at 0.2"
        return text and f"{{text}} says {{other if row % 13 == 6 and row < 400 else label}}"

    tc.CraftedEngine.script = staticmethod(judged if sys.argv[4] == "judge" else tc.SCENARIO)
    tc.ListEngine.skip = staticmethod(lambda seed, i: (seed + i) % 9 == 0)  # some lists lack an item
    register_engine("slow", tc.ListEngine if sys.argv[4] == "list" else tc.CraftedEngine)
    spec = sdgen.build_spec({spec!r}, base_dir=__import__("pathlib").Path(sys.argv[1]))
    sdgen.generate(spec, backend="slow", resume=sys.argv[2] == "resume", report=False, progress=KillAt(int(sys.argv[3])))
""")


def crafted_spec(tmp_path, suffix, **changes):
    model = tmp_path / "fake.gguf"
    model.write_bytes(b"GGUF")
    data = {
        "task": "Crafted texts.", "labels": ["a", "b", "c"], "categories": {"topic": ["x", "y"]},
        "sample_size": 400, "batch_size": 16, "seed": 5, "models": [str(model)], "prompt_style": "fewshot",
        "rows_per_request": 1,
        "output": str(tmp_path / f"out{suffix}"),
    }  # fmt: skip
    data.update(changes)
    return data


def run_child(data, tmp_path, mode, kill_at=0):
    """Run a child to completion, or until it kills itself after ``kill_at`` settled rows."""
    code = CHILD.format(tests=str(TESTS), spec=data)
    script = "judge" if data.get("judge") else "list" if data.get("rows_per_request", 1) > 1 else "plain"
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), mode, str(kill_at), script], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    return proc.returncode, proc.stderr


def wait_for_rows(proc, out, size: int) -> None:
    """Wait until the running child has written ``size`` bytes of rows (it must still be running then)."""
    while not out.exists() or out.stat().st_size < size:
        assert proc.poll() is None, f"the run ended before writing {size} bytes of rows"
        time.sleep(0.05)


def final_rows(path):
    if not path.exists():  # e.g. a run with no conflicts writes no conflicts file
        return pd.DataFrame(columns=["row", "text", "label", "category", "type", "seed"])
    df = read_dataset(path).sort_values("row").reset_index(drop=True)
    return df[["row", "text", "label", "category", "type", "seed"]]  # the model path differs between dirs


def settled_once(run_dir, suffix) -> set[int]:
    """Every row id the run settled, checking that no row settled twice (dataset, conflicts, rejected, journal)."""
    seen: list[int] = []
    for name in ("out", "out.conflicts", "out.rejected"):
        path = run_dir / f"{name}{suffix}"
        if path.exists():
            seen += read_dataset(path)["row"].astype(int).tolist()
    journal = [json.loads(line) for line in (run_dir / "out.journal.jsonl").read_text().splitlines()]
    seen += [e["row"] for e in journal if e["event"] != "replacement"]
    pulled = set(final_rows(run_dir / f"out.conflicts{suffix}")["row"]) & set(final_rows(run_dir / f"out{suffix}")["row"])
    assert not pulled  # the earlier side of a conflict left the dataset
    assert len(seen) == len(set(seen)), "a row settled twice"
    return set(seen)


@pytest.mark.parametrize("suffix, mode", [(".csv", ""), (".jsonl", ""), (".parquet", ""), (".jsonl", "judge"),
                                          (".csv", "rows_per_request")])  # fmt: skip
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_dataset(tmp_path, suffix, mode):
    """Killed after a random number of settled rows (three times), resumed, then left to finish; with the judge
    rejecting rows mid-run (given another label, or their own below min_confidence), or with several rows per request (a group a kill cut is asked again)."""
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref_dir.mkdir(), run_dir.mkdir()
    labels = {"a": {"description": "A.", "avoid": ["please"]}, "b": "B.", "c": "C."}
    extra = {"judge": {"min_confidence": 0.5}, "labels": labels} if mode == "judge" else {"rows_per_request": 5} if mode else {}
    judge = mode == "judge"
    code, err = run_child(crafted_spec(ref_dir, suffix, **extra), ref_dir, "fresh")
    assert code == 0, err
    reference = final_rows(ref_dir / f"out{suffix}")
    ref_conflicts = final_rows(ref_dir / f"out.conflicts{suffix}")
    data = crafted_spec(run_dir, suffix, **extra)
    rng = random.Random(suffix)
    kills = 0
    for _ in range(3):  # killed after a random number of settled rows, resumed and killed again, ...
        code, err = run_child(data, run_dir, "resume" if kills else "fresh", kill_at=rng.randint(1, 100))  # 3 x 100 < 400
        assert code == -signal.SIGKILL, err
        kills += 1
    code, err = run_child(data, run_dir, "resume")  # ... then left to finish
    assert code == 0, err
    pd.testing.assert_frame_equal(final_rows(run_dir / f"out{suffix}"), reference)
    pd.testing.assert_frame_equal(final_rows(run_dir / f"out.conflicts{suffix}"), ref_conflicts)
    assert json.loads((run_dir / "out.manifest.json").read_text())["status"] == "finished"
    settled = settled_once(run_dir, suffix)
    assert settled >= set(range(400)) and settled == settled_once(ref_dir, suffix)
    if judge:
        rejected = final_rows(run_dir / f"out.rejected{suffix}")
        pd.testing.assert_frame_equal(rejected, final_rows(ref_dir / f"out.rejected{suffix}"))
        assert set(rejected["row"]) == {r for r in range(400) if r % 13 in (6, 9)}  # parsed ones: 6, 9, 19, 22, ...
        journal = [json.loads(line) for line in (run_dir / "out.journal.jsonl").read_text().splitlines()]
        plan = {r.row: r.label for r in make_plan(sdgen.build_spec(data, base_dir=run_dir))}
        asked = {r for r in range(400) if r % 17 == 4 and r % 13 not in (6, 9) and plan[r] == "a"}
        assert asked and {e["row"] for e in journal if e["event"] == "avoided"} == asked
        assert len(reference) == 400  # every loss (duplicates, unparseable, rejections) was replaced


def test_resume_repairs_a_torn_last_line(tmp_path):
    data = crafted_spec(tmp_path, ".csv", sample_size=120)
    code, err = run_child(data, tmp_path, "fresh", kill_at=50)
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


def test_a_run_started_before_an_upgrade_that_added_spec_fields_resumes(tmp_path):
    """A manifest written by an older sdgen lacks the fields added since: left at their defaults they are no
    change (the run resumes and finishes with the uninterrupted rows); set otherwise, the refusal names them."""
    data = crafted_spec(tmp_path, ".csv", sample_size=120)
    code, err = run_child(data, tmp_path, "fresh", kill_at=50)
    assert code == -signal.SIGKILL, err
    manifest = tmp_path / "out.manifest.json"
    old = json.loads(manifest.read_text())
    del old["spec"]["judge"]["min_confidence"], old["spec"]["generation"]["min_p"]  # added after this run began
    manifest.write_text(json.dumps(old))
    spec = sdgen.build_spec(data, base_dir=tmp_path)
    with pytest.raises(OutputError, match=r"cannot resume out.csv: judge.min_confidence: null -> 0.5"):
        sdgen.generate(spec, judge={"enabled": False, "min_confidence": 0.5}, resume=True, backend="slow")
    code, err = run_child(data, tmp_path, "resume")
    assert code == 0, err
    ref = tmp_path / "ref"
    ref.mkdir()
    code, _ = run_child(crafted_spec(ref, ".csv", sample_size=120), ref, "fresh")
    pd.testing.assert_frame_equal(final_rows(tmp_path / "out.csv"), final_rows(ref / "out.csv"))


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
    rows = 200  # the signal comes after ~3 KB of rows (~15), far from the end
    for sig in (signal.SIGTERM, signal.SIGINT):
        out = tmp_path / f"out-{sig.name}.csv"
        spec = write_spec(base_spec(models=[str(tiny_models["chat"])], prompt_style="fewshot", batch_size=8,
                                    generation={"max_new_tokens": 48}, engine={"threads": 2, "max_num_seqs": 8},
                                    sample_size=rows, output=str(out)), name=f"spec-{sig.name}.yaml")  # fmt: skip
        cmd = [sys.executable, "-m", "sdgen.cli", "generate", str(spec), "-q"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        wait_for_rows(proc, out, 3000)
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
        assert final["row"].is_unique and set(final["row"] % rows) == set(range(rows))  # lost rows replaced (row + rows)
        assert not set(final["row"]) & dropped
        assert set(written["row"]) <= set(final["row"]) | dropped


def test_real_engine_resume_reproduces_the_uninterrupted_rows(tmp_path, tiny_models, write_spec):
    """Per-row seeds and an f32 KV cache: rows generated after a SIGKILL are the uninterrupted run's, texts included
    but for a rare row whose sampled token flipped on the kernels' batch-shape rounding (docs/resume.md)."""
    common = dict(models=[str(tiny_models["chat"])], prompt_style="fewshot", batch_size=8, sample_size=300,
                  generation={"max_new_tokens": 40}, engine={"threads": 2, "max_num_seqs": 16, "dtype": "fp32"})  # fmt: skip
    ref = write_spec(base_spec(**common, output=str(tmp_path / "ref.jsonl")), name="ref.yaml")
    run = write_spec(base_spec(**common, output=str(tmp_path / "run.jsonl")), name="run.yaml")
    cli = [sys.executable, "-m", "sdgen.cli", "generate"]
    assert subprocess.run([*cli, str(ref), "-q"], capture_output=True, cwd=ROOT).returncode == 0
    proc = subprocess.Popen([*cli, str(run), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    out = tmp_path / "run.jsonl"
    wait_for_rows(proc, out, 4000)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    partial = len(out.read_text().splitlines())
    done = subprocess.run([*cli, str(run), "-q", "--resume"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    a, b = final_rows(tmp_path / "run.jsonl"), final_rows(tmp_path / "ref.jsonl")
    assert 0 < partial < len(b)
    assert a["row"].tolist() == b["row"].tolist()
    pd.testing.assert_frame_equal(a[["row", "label", "category", "type"]], b[["row", "label", "category", "type"]])
    differ = a["row"][(a["text"] != b["text"]) | (a["seed"] != b["seed"])].tolist()
    assert len(differ) <= 3, f"{len(differ)} of {len(b)} rows differ: {differ}"


def test_resuming_a_finished_run_adds_nothing(tmp_path):
    data = crafted_spec(tmp_path, ".csv", sample_size=40)
    assert run_child(data, tmp_path, "fresh")[0] == 0
    before = final_rows(tmp_path / "out.csv")
    assert run_child(data, tmp_path, "resume")[0] == 0
    pd.testing.assert_frame_equal(final_rows(tmp_path / "out.csv"), before)
