"""The whole pipeline on tiny models: spec -> plan -> engine -> extraction -> file."""

import sys
from collections import Counter

import pandas as pd
import pytest

import sdgen
from sdgen.engines import Result, register_engine
from sdgen.errors import ModelError
from sdgen.plan import make_plan
from sdgen.spec import build_spec

from conftest import ROOT, base_spec
from fake_engines import FakeBaseModel

FAST = {"max_new_tokens": 24, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0}
ENGINE = {"threads": 2, "max_num_seqs": 16}


def tiny_spec(tmp_path, model, **changes):
    data = base_spec(
        sample_size=40, batch_size=16, models=[str(model)], generation=FAST, engine=ENGINE,
        output=str(tmp_path / "out.csv"), prompt_style="fewshot",
    )  # fmt: skip
    data.update(changes)
    return build_spec(data, base_dir=tmp_path)


def read(path):
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False)
    return pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_parquet(path)


@pytest.mark.parametrize("kind", ["chat", "no-system", "base"])
def test_rows_match_the_plan(tmp_path, tiny_models, kind):
    spec = tiny_spec(tmp_path, tiny_models[kind])
    summary = sdgen.generate(spec)
    df = read(summary.output)
    plan = {r.row: r for r in make_plan(spec)}
    assert summary.written == len(df) == 40  # a row lost to an unparseable answer is replaced by row + 40
    assert list(df.columns) == ["text", "label", "category", "type", "model", "row", "seed"]
    assert df["row"].is_unique and (df["row"] % 40).is_unique
    for rec in df.itertuples():
        planned = plan[rec.row % 40]
        assert (rec.label, rec.category, rec.type, rec.model) == (
            planned.label, planned.category, planned.type, planned.model,
        )  # fmt: skip
    assert summary.generated_tokens > 0 and summary.wall_time > 0
    stats = summary.per_model[str(tiny_models[kind])]
    assert stats.rows == summary.written
    # where the time went, from the engine's worker: priming, steps, prompt tokens (the shared prefix cached)
    assert stats.priming_seconds > 0 and stats.step_seconds >= stats.full_batch_seconds
    assert 0 < stats.cached_prompt_tokens < stats.prompt_tokens
    assert f"prompt tokens {stats.prompt_tokens - stats.cached_prompt_tokens:,} computed" in summary.timing_line()


def test_same_seed_same_rows_and_new_seed_new_rows(tmp_path, tiny_models):
    a = read(sdgen.generate(tiny_spec(tmp_path, tiny_models["chat"], output=str(tmp_path / "a.csv"))).output)
    b = read(sdgen.generate(tiny_spec(tmp_path, tiny_models["chat"], output=str(tmp_path / "b.csv"))).output)
    c = read(sdgen.generate(tiny_spec(tmp_path, tiny_models["chat"], output=str(tmp_path / "c.csv"), seed=9)).output)
    key = ["row", "text", "label", "seed"]
    assert a.sort_values("row")[key].values.tolist() == b.sort_values("row")[key].values.tolist()
    assert set(a["text"]) != set(c["text"])


class ReasoningEngine(FakeBaseModel):
    """Answers every request in the reasoning style's format (after the prompt's "OUTPUT:" prefix)."""

    backend = "reasoning"

    def generate(self, requests):
        for req in requests:
            (row,) = req.rows
            yield Result(req.id, f" Row {row} says hello, thanks, and good day.\nREASONING: Row {row} is kind.", 9, "stop")


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_reasoning_style_writes_text_and_reasoning_in_every_format(tmp_path, ext):
    register_engine("reasoning", ReasoningEngine)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    spec = tiny_spec(tmp_path, model, prompt_style="reasoning", output=str(tmp_path / f"o{ext}"), sample_size=12)
    summary = sdgen.generate(spec, backend="reasoning")
    df = read(summary.output).sort_values("row")
    assert summary.written == len(df) == 12 and summary.unparseable == 0
    assert list(df.columns) == ["text", "label", "category", "type", "model", "reasoning", "row", "seed"]
    assert df["text"].tolist() == [f"Row {r} says hello, thanks, and good day." for r in range(12)]
    assert df["reasoning"].tolist() == [f"Row {r} is kind." for r in range(12)]


def test_a_random_model_in_the_reasoning_style_writes_nothing_unparsed(tmp_path, tiny_models):
    """Random words never carry OUTPUT/REASONING: every row and every replacement is unparseable after its attempts;
    nothing junk lands, and the summary says in one line that the replacement budget ran out."""
    spec = tiny_spec(tmp_path, tiny_models["chat"], prompt_style="reasoning", output=str(tmp_path / "r.jsonl"),
                     sample_size=8)  # fmt: skip
    summary = sdgen.generate(spec)
    assert summary.written == 0 and summary.unparseable == 8 * 3  # 8 planned rows and the run's 2 x 8 replacements (the default)
    assert summary.per_model[str(tiny_models["chat"])].attempts == 24 * spec.engine.max_attempts
    assert summary.missing_note.startswith("8 of 8 rows missing: ") and summary.missing_note.endswith(
        "the replacement budget ran out (balance.replacements 2 x 8 rows = 16 extra rows, all used); filling them is "
        "out of reach: every row of a cell was lost; raise balance.replacements to fill them")


def test_sample_size_not_multiple_of_batch_size(tmp_path, tiny_models):
    spec = tiny_spec(tmp_path, tiny_models["chat"], sample_size=13, batch_size=5)
    summary = sdgen.generate(spec)
    assert summary.written + summary.unparseable == 13
    assert len(read(summary.output)) == summary.written


def test_missing_model_fails_before_output_is_created(tmp_path):
    spec = build_spec(base_spec(models=["nope.gguf"], output=str(tmp_path / "o.csv")), base_dir=tmp_path)
    with pytest.raises(ModelError, match="unknown model 'nope.gguf'"):
        sdgen.generate(spec)
    assert not (tmp_path / "o.csv").exists()


def test_overrides_from_path(tmp_path, tiny_models, write_spec):
    path = write_spec(base_spec(models=[str(tiny_models["chat"])], generation=FAST, engine=ENGINE))
    summary = sdgen.generate(path, rows=6, output=tmp_path / "x.jsonl", seed=5)
    assert summary.output == tmp_path / "x.jsonl" and summary.planned == 6


def test_two_models_in_one_run(tmp_path, tiny_models):
    models = [{"name": str(tiny_models["chat"]), "weight": 1}, {"name": str(tiny_models["base"]), "weight": 1}]
    summary = sdgen.generate(tiny_spec(tmp_path, None, models=models, sample_size=30))
    df = read(summary.output)
    assert set(df["model"]) == {m["name"] for m in models}
    assert Counter(df["model"]) == Counter({k: v.rows for k, v in summary.per_model.items()})


def test_sdg_drop_in(tmp_path, tiny_models):
    summary = sdgen.sdg(
        12, ["positive", "negative"], {"food": ["pizza", "sushi"]}, 5,
        output_path=tmp_path / "output.csv", model=str(tiny_models["chat"]), max_new_tokens=16,
    )  # fmt: skip
    df = read(tmp_path / "output.csv")
    assert summary.written == len(df) and set(df["label"]) <= {"positive", "negative"}
    assert set(df["type"]) <= {"pizza", "sushi"}


def test_generate_path_needs_no_torch(tmp_path, tiny_models):
    """Run generate in a fresh interpreter where importing torch would fail."""
    import subprocess

    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "import sdgen\n"
        "from sdgen.spec import build_spec\n"
        "sys.path.insert(0, 'tests'); from conftest import ROOT, base_spec\n"
        f"spec = build_spec(base_spec(sample_size=4, models=[{str(tiny_models['chat'])!r}],"
        f" output={str(tmp_path / 'nt.csv')!r}, generation={{'max_new_tokens': 8}}))\n"
        "s = sdgen.generate(spec)\n"
        "assert s.written + s.missing == s.planned == 4\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


class ScriptedEngine(FakeBaseModel):
    """Fails a row's first attempts by a rule, one request at a time, and records what it was fed."""

    backend = "scripted"
    runs: list[list[tuple[int, int]]] = []

    def __init__(self, model, options) -> None:
        self.fail_attempts = {row: row % 3 for row in range(30)}  # planned row 3k+2 fails twice, 3k+1 once, 3k never

    def generate(self, requests):
        fed: list[tuple[int, int]] = []
        ScriptedEngine.runs.append(fed)
        for req in requests:
            (row,) = req.rows
            attempt = sum(1 for r, _ in fed if r == row)
            fed.append((row, req.seed))
            ok = attempt >= self.fail_attempts.get(row, 0)  # replacements (rows 30+) parse at once
            yield Result(req.id, f" Row {row} attempt {attempt} was fine, thanks." if ok else "", 5, "stop")


def test_unparseable_rows_retry_in_the_same_engine_run_then_get_replaced(tmp_path, tiny_models):
    """A row that fails to parse is retried with new seeds in the same run; after its last attempt it is lost,
    and under balance: random too its replacement (row + sample_size, same cell) fills its place."""
    register_engine("scripted", ScriptedEngine)
    ScriptedEngine.runs.clear()
    spec = tiny_spec(tmp_path, tiny_models["base"], sample_size=30)
    summary = sdgen.generate(spec, backend="scripted", engine={**ENGINE, "max_attempts": 2})
    assert len(ScriptedEngine.runs) == 1  # retries joined the running batch, no second pass
    fed = ScriptedEngine.runs[0]
    assert len(fed) == 30 + 20 + 10  # rows 3k+1 and 3k+2 retried once; 3k+2 spent its 2 attempts and was replaced
    seeds: dict[int, list[int]] = {}
    for row, seed in fed:
        seeds.setdefault(row, []).append(seed)
    assert all(len(set(s)) == len(s) for s in seeds.values())
    df = read(summary.output)
    assert sorted(df["row"]) == [r for r in range(30) if r % 3 != 2] + [r + 30 for r in range(30) if r % 3 == 2]
    assert summary.unparseable == 10 and summary.per_model[str(tiny_models["base"])].attempts == 60
    assert summary.written == 30 and summary.missing_note is None
    plan = {r.row: r for r in make_plan(spec)}
    assert all(rec.label == plan[rec.row % 30].label for rec in df.itertuples())
    assert all(df.set_index("row").loc[r, "seed"] == seeds[r][-1] for r in df["row"])
