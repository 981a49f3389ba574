"""The transformers baseline backend: true batching with left padding and one rng per row."""

import pytest
from conftest import check_min_p_keeps_only_the_likeliest_token

from sdgen.engines import Request
from sdgen.hosting import start_engine
from sdgen.errors import ModelError
from sdgen.models import resolve_model
from sdgen.spec import EngineOptions, GenerationParams

SAMPLING = GenerationParams(max_new_tokens=10, temperature=1.0, top_p=0.9, top_k=40, repetition_penalty=1.1)


@pytest.fixture(scope="module")
def engine(tiny_hf):
    with start_engine("torch", resolve_model(str(tiny_hf)), EngineOptions(threads=2, static_batch_size=4, dtype="fp32")) as eng:
        yield eng


def run(engine, requests):
    return {r.id: r for r in engine.generate(requests)}


def test_per_row_seeds_in_one_batch(engine):
    prompt = engine.render_chat([{"role": "user", "content": "Write a review."}])
    results = run(engine, [Request(i, prompt, SAMPLING, seed=i) for i in range(8)])
    assert sorted(results) == list(range(8))
    assert len({r.text for r in results.values()}) == 8
    again = run(engine, [Request(i, prompt, SAMPLING, seed=i) for i in range(8)])
    assert {i: r.text for i, r in again.items()} == {i: r.text for i, r in results.items()}


def test_row_result_does_not_depend_on_batch_neighbours(engine):
    """Left padding and position ids: a row's tokens are the same alone or next to longer prompts."""
    short = engine.render_chat([{"role": "user", "content": "Hi"}])
    long = engine.render_chat([{"role": "user", "content": "Hi " + "there, " * 30}])
    greedy = SAMPLING.model_copy(update={"temperature": 0.0})
    alone = run(engine, [Request(0, short, greedy, seed=1)])[0]
    mixed = run(engine, [Request(0, short, greedy, seed=1), Request(1, long, greedy, seed=2)])[0]
    assert alone.text == mixed.text and alone.generated_tokens == mixed.generated_tokens


def test_min_p_keeps_only_tokens_near_the_likeliest(engine):
    check_min_p_keeps_only_the_likeliest_token(engine, SAMPLING)


def test_limits_and_stop_strings(engine):
    prompt = engine.render_chat([{"role": "user", "content": "Hello"}])
    results = run(engine, [Request(i, prompt, SAMPLING.model_copy(update={"max_new_tokens": 3}), seed=i) for i in range(6)])
    assert all(1 <= r.generated_tokens <= 3 for r in results.values())
    free = run(engine, [Request(0, prompt, SAMPLING.model_copy(update={"max_new_tokens": 12}), seed=5)])[0]
    assert free.text.strip()
    stop = free.text.strip().split()[1]  # a word that occurs in the free-running text
    cut = run(engine, [Request(0, prompt, SAMPLING.model_copy(update={"max_new_tokens": 12}), seed=5, stop_strings={stop})])[0]
    assert stop not in cut.text and free.text.startswith(cut.text)
    assert cut.finish_reason == "stop"


def test_gguf_model_is_dequantized_once_into_the_cache(tiny_models, tmp_path, monkeypatch):
    import sdgen.engines.torch as torch_engine

    monkeypatch.setattr(torch_engine, "CACHE_DIR", tmp_path)
    model = resolve_model(str(tiny_models["chat"]))
    first = torch_engine.hf_model_dir(model)
    assert first.parent == tmp_path / "hf" and (first / "config.json").is_file()
    assert torch_engine.hf_model_dir(model) == first


def test_ir_dir_is_refused(tmp_path):
    from sdgen.engines.torch import hf_model_dir
    from sdgen.models import ResolvedModel

    with pytest.raises(ModelError, match="has no torch weights"):
        hf_model_dir(ResolvedModel("x", tmp_path, "openvino-ir"))


def test_generate_pipeline_with_torch_backend(tiny_hf, tmp_path):
    import sdgen
    from sdgen.spec import build_spec

    from conftest import base_spec

    spec = build_spec(base_spec(sample_size=12, models=[str(tiny_hf)], prompt_style="fewshot",
                                generation={"max_new_tokens": 12}, engine={"threads": 2, "dtype": "fp32"},
                                output=str(tmp_path / "t.csv")))  # fmt: skip
    summary = sdgen.generate(spec, backend="torch")
    assert summary.written + summary.unparseable == 12 and summary.generated_tokens > 0


def test_openvino_refuses_hf_dir_with_the_fix(tiny_hf):
    with pytest.raises(ModelError, match="convert it first: sdgen convert"):
        start_engine("openvino", resolve_model(str(tiny_hf)), EngineOptions(threads=1))
