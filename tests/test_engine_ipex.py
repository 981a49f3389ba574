"""The IPEX backend: per-row seeds through HF generate; IPEX itself runs in .venv-ipex (`make test-ipex`)."""

import importlib.util

import pytest

from sdgen.engines import Request
from sdgen.hosting import start_engine
from sdgen.engines.ipex import IpexEngine
from sdgen.engines.torch import TorchEngine
from sdgen.errors import EngineError
from sdgen.models import resolve_model
from sdgen.spec import EngineOptions, GenerationParams

HAS_IPEX = importlib.util.find_spec("intel_extension_for_pytorch") is not None
SAMPLING = GenerationParams(max_new_tokens=10, temperature=1.0, top_p=0.9, top_k=40, repetition_penalty=1.1)
OPTIONS = EngineOptions(threads=2, static_batch_size=4, dtype="fp32")


class GenerateOnly(IpexEngine):
    """The IPEX backend's batching and sampling path on a plain transformers model."""

    def _load(self, auto_class, path):
        return TorchEngine._load(self, auto_class, path)


def texts(engine, requests):
    return {r.id: r.text for r in engine.generate(requests)}


@pytest.fixture(scope="module")
def engines(tiny_hf):
    model = resolve_model(str(tiny_hf))
    return GenerateOnly(model, OPTIONS), TorchEngine(model, OPTIONS)


def test_per_row_seeds_through_generate_match_the_torch_backend(engines):
    generate_path, torch_loop = engines
    prompt = torch_loop.render_chat([{"role": "user", "content": "Write a review."}])
    requests = [Request(i, prompt, SAMPLING, seed=100 + i) for i in range(8)]
    got = texts(generate_path, requests)
    assert len(set(got.values())) == 8
    assert got == texts(torch_loop, requests)  # same seeds, same sampler, same tokens
    assert got == texts(generate_path, requests)


def test_stop_strings_and_limits_through_generate(engines):
    generate_path, _ = engines
    prompt = generate_path.render_chat([{"role": "user", "content": "Hello"}])
    free = next(generate_path.generate([Request(0, prompt, SAMPLING, seed=5)]))
    stop = free.text.strip().split()[1]
    cut = next(generate_path.generate([Request(0, prompt, SAMPLING, seed=5, stop_strings={stop})]))
    assert stop not in cut.text and free.text.startswith(cut.text)
    short = SAMPLING.model_copy(update={"max_new_tokens": 3})
    assert all(r.generated_tokens <= 3 for r in generate_path.generate([Request(i, prompt, short, seed=i) for i in range(5)]))


@pytest.mark.skipif(HAS_IPEX, reason="this environment has IPEX")
def test_missing_ipex_is_one_clear_line(tiny_hf):
    with pytest.raises(EngineError, match=r"own environment: `make ipex-env`"):
        start_engine("ipex", resolve_model(str(tiny_hf)), OPTIONS)


@pytest.mark.skipif(not HAS_IPEX, reason="IPEX runs in .venv-ipex: `make test-ipex`")
@pytest.mark.parametrize("dtype", ["bf16", "int8"])
def test_ipex_generates_with_per_row_seeds(tiny_hf, dtype):
    from sdgen.engines.ipex import ipex_bf16_ok
    from sdgen.hardware import cpu_class

    options = OPTIONS.model_copy(update={"dtype": dtype})
    if dtype == "bf16" and not ipex_bf16_ok():  # e.g. an AVX2 EPYC: one clear line instead of IPEX's assertion
        with pytest.raises(EngineError, match=f"IPEX bf16 needs AVX-512.*this CPU is {cpu_class()}"):
            start_engine("ipex", resolve_model(str(tiny_hf)), options)
        return
    with start_engine("ipex", resolve_model(str(tiny_hf)), options) as engine:
        prompt = engine.render_chat([{"role": "user", "content": "Write a review."}])
        requests = [Request(i, prompt, SAMPLING, seed=100 + i) for i in range(6)]
        first = texts(engine, requests)
        assert len(set(first.values())) == 6 and first == texts(engine, requests)


@pytest.mark.skipif(not HAS_IPEX, reason="IPEX runs in .venv-ipex: `make test-ipex`")
def test_cli_generate_with_the_ipex_backend(tiny_hf, tmp_path, write_spec):
    """`sdgen generate SPEC --backend ipex` end to end in IPEX's environment: worker process, curation, file."""
    import subprocess
    import sys

    import pandas as pd

    from conftest import ROOT, base_spec

    spec = write_spec(base_spec(models=[str(tiny_hf)], prompt_style="fewshot", generation={"max_new_tokens": 12},
                                engine={"threads": 2, "static_batch_size": 4}, output=str(tmp_path / "out.csv")))  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "sdgen.cli", "generate", str(spec), "--backend", "ipex", "-n", "8", "-q"],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    summary = __import__("json").loads((tmp_path / "out.stats.json").read_text())
    # lost rows are replaced by row + 8 within the budget: at most 8 rows, each planned row at most once
    assert len(df) == summary["written"] <= 8 and df["row"].is_unique and (df["row"] % 8).is_unique
    assert set(df["model"]) == {str(tiny_hf)}
