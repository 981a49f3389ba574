"""One runner per benchmarked backend: the same rows, prompts and sampling, each engine used as its users would.

Every runner returns a `Measured`: the texts that survived extraction, token counts, and when the
model was loaded and the first row came out. Throughput counts from the end of model loading;
time to first row counts from the start (loading included), as a user waits for it.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from sdgen.errors import EngineError, ModelError
from sdgen.extract import extract
from sdgen.models.registry import CACHE_DIR, CONVERT_REPORT, ResolvedModel
from sdgen.plan import PlannedRow, make_plan
from sdgen.prompts import PromptBuilder, detect_mode
from sdgen.spec import Spec


@dataclass
class Clock:
    """Marks of one cell's run, in seconds since it started."""

    start: float = field(default_factory=time.perf_counter)
    loaded_at: float | None = None
    first_row_at: float | None = None
    end_at: float | None = None

    def loaded(self) -> None:
        if self.loaded_at is None:
            self.loaded_at = time.perf_counter() - self.start

    def row(self) -> None:
        if self.first_row_at is None:
            self.first_row_at = time.perf_counter() - self.start

    def stop(self) -> None:
        self.end_at = time.perf_counter() - self.start


@dataclass
class Measured:
    rows: int  # rows asked for
    texts: list[tuple[str, str]]  # (text, label) of the rows that survived extraction
    generated_tokens: int
    prompt_tokens: int  # of the planned rows' prompts (retries not counted)
    weights: str
    clock: Clock
    tail_s: float | None = None  # sdgen: from the last request handed out to the end (the low-batch tail)


def _parse(spec: Spec, builder: PromptBuilder, row: PlannedRow, text: str) -> str | None:
    parsed = extract(builder.response_prefix + text, row, reasoning=spec.wants_reasoning)
    return parsed.text if parsed else None


def _builder(spec: Spec, chat_template: str | None, render: Callable) -> PromptBuilder:
    return PromptBuilder(spec, detect_mode(chat_template, render), render)


def _ov_builder(spec: Spec, tok) -> PromptBuilder:
    """Prompts rendered by an OpenVINO GenAI tokenizer's chat template."""

    def render(messages):
        return tok.apply_chat_template(messages, add_generation_prompt=True)

    return _builder(spec, tok.chat_template or None, render)


def _hf_builder(spec: Spec, tok) -> PromptBuilder:
    """Prompts rendered by a transformers tokenizer's chat template."""

    def render(messages):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    return _builder(spec, tok.chat_template, render)


def _ov_weights(model: ResolvedModel) -> str:
    """"GGUF Q4_1", "IR int8"...: from the GGUF file name or the conversion report."""
    if model.format == "gguf":
        quant = re.search(r"(?i)[.-]((?:I?Q\d\w*)|F16|BF16|F32)$", model.path.stem)
        return "GGUF" + (f" {quant.group(1)}" if quant else "")
    report = model.path / CONVERT_REPORT
    if report.is_file():
        return "IR " + json.loads(report.read_text()).get("weights", "?")
    return "IR"


def _ov_prompt_tokens(tok, prompts: list[str]) -> int:
    return sum(int(tok.encode([p]).input_ids.get_shape()[1]) for p in prompts)


def _hf_prompt_tokens(tok, prompts: list[str]) -> int:
    return sum(len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"])


def torch_source(model: ResolvedModel) -> ResolvedModel:
    """Weights torch can load for a model: itself (HF dir, GGUF); an OpenVINO IR has none."""
    if model.format in ("gguf", "hf"):
        return model
    raise ModelError(f"{model.path} is an OpenVINO IR; the torch baselines need its HF dir or GGUF")


def optimum_ir(model: ResolvedModel) -> tuple[Path, str]:
    """An int8 IR for optimum-intel: the model's own IR, or one converted once from its GGUF and cached."""
    if model.format == "openvino-ir":
        return model.path, _ov_weights(model)
    stat = model.path.stat()
    key = hashlib.sha256(f"{model.path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    cached = CACHE_DIR / "bench" / f"{model.path.stem}-{key}-int8"
    if not (cached / "openvino_model.xml").is_file():
        from sdgen.models.convert import ConvertOptions, convert

        convert(str(model.path), cached, ConvertOptions(weights="int8"), overwrite=True, accuracy=False)
    return cached, "int8 IR"


# --- OpenVINO ------------------------------------------------------------------------------------------------


def run_sdgen(spec: Spec, model: ResolvedModel) -> Measured:
    """The `sdgen generate` code path, writing to a scratch JSONL file."""
    import pandas as pd

    from sdgen.run.generate import generate

    clock = Clock()

    class Marks:
        def start(self, total_rows: int, description: str, *, new: bool = False) -> None:
            clock.loaded()

        def update(self, rows: int, tokens: int) -> None:
            if rows > 0:
                clock.row()

        def stop(self) -> None:
            pass

    with tempfile.TemporaryDirectory(prefix="sdgen-bench-") as tmp:
        out = Path(tmp) / "rows.jsonl"
        summary = generate(spec, output=out, overwrite=True, progress=Marks(), report=False)  # charts are not the run
        clock.stop()
        df = pd.read_json(out, lines=True, dtype=False) if summary.written else None
        texts = list(zip(df["text"].astype(str), df["label"].astype(str))) if df is not None else []
    import openvino_genai as ov_genai

    tok = ov_genai.Tokenizer(str(model.path))
    builder = _ov_builder(spec, tok)
    prompts = [builder.build(row) for row in make_plan(spec)]
    tail = sum(stats.tail_seconds for stats in summary.per_model.values())
    return Measured(len(prompts), texts, summary.generated_tokens, _ov_prompt_tokens(tok, prompts), _ov_weights(model),
                    clock, tail_s=round(tail, 2))  # fmt: skip


def _first_attempts(spec: Spec, engine, clock: Clock) -> tuple[list[str], int, dict[int, str]]:
    """Every planned row's first attempt through one of sdgen's engines: (parsed texts, tokens, prompts by row)."""
    from sdgen.engines.base import Request

    clock.loaded()
    builder = _builder(spec, engine.chat_template, engine.render_chat)
    rows = {row.row: row for row in make_plan(spec)}
    prompts = {i: builder.build(row) for i, row in rows.items()}
    requests = [Request(i, prompts[i], spec.generation, rows[i].seed, builder.stop_strings) for i in rows]
    texts, tokens = [], 0
    for result in engine.generate(requests):
        tokens += result.generated_tokens
        if (text := _parse(spec, builder, rows[result.id], result.text)) is not None:
            clock.row()
            texts.append((text, rows[result.id].label))
    clock.stop()
    return texts, tokens, prompts


def run_engine(spec: Spec, model: ResolvedModel) -> Measured:
    """sdgen's OpenVINO engine alone on the same first-attempt requests: no retries, no writing."""
    from sdgen.engines.openvino import OpenVINOEngine

    clock = Clock()
    with OpenVINOEngine(model, spec.engine) as engine:
        texts, tokens, prompts = _first_attempts(spec, engine, clock)
        prompt_tokens = sum(engine.count_tokens(p) for p in prompts.values())
    return Measured(len(prompts), texts, tokens, prompt_tokens, _ov_weights(model), clock)


def run_genai_default(spec: Spec, model: ResolvedModel) -> Measured:
    """OpenVINO GenAI's LLMPipeline with its defaults: one generate() call on every prompt, one sampling config."""
    import openvino_genai as ov_genai

    clock = Clock()
    threads = {"INFERENCE_NUM_THREADS": spec.engine.threads} if spec.engine.threads else {}
    pipe = ov_genai.LLMPipeline(str(model.path), "CPU", **threads)
    clock.loaded()
    tok = pipe.get_tokenizer()
    builder = _ov_builder(spec, tok)
    rows = make_plan(spec)
    prompts = [builder.build(row) for row in rows]
    gen = spec.generation
    config = pipe.get_generation_config()
    config.max_new_tokens = gen.max_new_tokens
    config.do_sample, config.temperature, config.top_p, config.top_k = True, gen.temperature, gen.top_p, gen.top_k
    config.min_p = gen.min_p
    config.repetition_penalty = gen.repetition_penalty
    config.stop_strings = builder.stop_strings
    config.apply_chat_template = False  # the prompts are rendered already, identically for every backend
    result = pipe.generate(prompts, config)
    texts = [(t, row.label) for row, out in zip(rows, result.texts) if (t := _parse(spec, builder, row, out)) is not None]
    if texts:
        clock.row()  # every row arrives at the end
    clock.stop()
    tokens = int(result.perf_metrics.get_num_generated_tokens())
    return Measured(len(rows), texts, tokens, _ov_prompt_tokens(tok, prompts), _ov_weights(model), clock)


# --- optimum-intel and torch ---------------------------------------------------------------------------------


def _hf_batches(spec: Spec, tok, builder: PromptBuilder, generate_batch: Callable, clock: Clock, batch: int):
    """Static batches through HF generate; returns (parsed texts, generated tokens, prompts, rows)."""
    import itertools

    eos = {tok.eos_token_id, tok.pad_token_id} - {None}
    rows = make_plan(spec)
    texts, tokens, prompts = [], 0, []
    it = iter(rows)
    while chunk := list(itertools.islice(it, batch)):
        chunk_prompts = [builder.build(row) for row in chunk]
        prompts += chunk_prompts
        enc = tok(chunk_prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = generate_batch(enc, chunk[0].seed)
        for row, ids in zip(chunk, out[:, enc["input_ids"].shape[1] :].tolist()):
            ids = list(itertools.takewhile(lambda t: t not in eos, ids))
            tokens += len(ids)
            text = tok.decode(ids, skip_special_tokens=True)
            for stop in builder.stop_strings:
                text = text.split(stop, 1)[0]
            if (parsed := _parse(spec, builder, row, text)) is not None:
                clock.row()
                texts.append((parsed, row.label))
    return texts, tokens, prompts, len(rows)


def _hf_sampling(spec: Spec, tok, builder: PromptBuilder) -> dict:
    gen = spec.generation
    stops = sorted(builder.stop_strings)
    return dict(max_new_tokens=gen.max_new_tokens, do_sample=True, temperature=gen.temperature, top_p=gen.top_p,
                top_k=gen.top_k, min_p=gen.min_p or None, repetition_penalty=gen.repetition_penalty,
                pad_token_id=tok.pad_token_id, stop_strings=stops or None, tokenizer=tok if stops else None)  # fmt: skip


def _left_padded(tok):
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def run_optimum(spec: Spec, model: ResolvedModel) -> Measured:
    """optimum-intel's OVModelForCausalLM on an int8 IR, static batches through HF generate (one seed per batch)."""
    import torch
    from optimum.intel import OVModelForCausalLM
    from transformers import AutoTokenizer

    ir, weights = optimum_ir(model)
    clock = Clock()
    ov_config = {"INFERENCE_NUM_THREADS": str(spec.engine.threads)} if spec.engine.threads else {}
    ov_model = OVModelForCausalLM.from_pretrained(ir, ov_config=ov_config, compile=True)
    tok = _left_padded(AutoTokenizer.from_pretrained(ir))
    clock.loaded()
    builder = _hf_builder(spec, tok)
    sampling = _hf_sampling(spec, tok, builder)

    def generate_batch(enc, seed):
        torch.manual_seed(seed)
        return ov_model.generate(**enc, **sampling)

    texts, tokens, prompts, rows = _hf_batches(spec, tok, builder, generate_batch, clock, spec.engine.static_batch_size)
    clock.stop()
    return Measured(rows, texts, tokens, _hf_prompt_tokens(tok, prompts), weights, clock)


def run_torch_engine(spec: Spec, model: ResolvedModel, backend: str) -> Measured:
    """sdgen's torch or IPEX engine: static batches, per-row seeds, first attempt only."""
    from sdgen.engines.registry import create_engine

    clock = Clock()
    with create_engine(backend, torch_source(model), spec.engine) as engine:  # in-process: reads its tokenizer
        texts, tokens, prompts = _first_attempts(spec, engine, clock)
        weights = str(engine.dtype).removeprefix("torch.")
        if backend == "ipex" and spec.engine.dtype == "int8":
            weights = "woq int8"
        prompt_tokens = _hf_prompt_tokens(engine.tokenizer, list(prompts.values()))
    return Measured(len(prompts), texts, tokens, prompt_tokens, weights, clock)


def run_recipe(spec: Spec, model: ResolvedModel, *, reuse_pipeline: bool = False) -> Measured:
    """The tutorial recipe's way: a transformers pipeline() call per row, batch 1 (a new pipeline per row, as written)."""
    import torch
    from transformers import AutoTokenizer, pipeline

    from sdgen.engines.torch import hf_model_dir

    model_dir = hf_model_dir(torch_source(model))  # outside the clock: a one-off GGUF dequantization
    clock = Clock()
    tok = AutoTokenizer.from_pretrained(model_dir)
    clock.loaded()
    builder = _hf_builder(spec, tok)
    gen = spec.generation
    kwargs = dict(max_new_tokens=gen.max_new_tokens, do_sample=True, temperature=gen.temperature, top_p=gen.top_p,
                  top_k=gen.top_k, min_p=gen.min_p or None, repetition_penalty=gen.repetition_penalty, return_full_text=False)  # fmt: skip
    pipe, texts, tokens, prompts = None, [], 0, []
    rows = make_plan(spec)
    for row in rows:
        if pipe is None or not reuse_pipeline:
            pipe = pipeline("text-generation", model=str(model_dir), tokenizer=tok, device="cpu")
        torch.manual_seed(row.seed)
        prompts.append(builder.build(row))
        out = pipe(prompts[-1], **kwargs)[0]["generated_text"]
        tokens += len(tok(out, add_special_tokens=False)["input_ids"])
        if (text := _parse(spec, builder, row, out)) is not None:
            clock.row()
            texts.append((text, row.label))
    clock.stop()
    weights = str(pipe.model.dtype).removeprefix("torch.") if pipe else "?"
    return Measured(len(rows), texts, tokens, _hf_prompt_tokens(tok, prompts), weights, clock)


def run_llamacpp(spec: Spec, model: ResolvedModel) -> Measured:
    """llama.cpp's `llama-server` (built from PyPI source, cached) on the same GGUF: parallel slots, continuous
    batching, prompt caching; every planned row's first attempt with its own seed, as many clients as slots."""
    import openvino_genai as ov_genai

    from sdgen.bench.llamacpp import LlamaServer

    if model.format != "gguf":
        raise ModelError(f"{model.path}: llama.cpp runs GGUF files")
    slots = min(spec.engine.seqs_in_flight, 16)
    clock = Clock()
    server = LlamaServer(model.path, threads=spec.engine.threads or 2, slots=slots, context=2048)
    try:
        clock.loaded()
        tok = ov_genai.Tokenizer(str(model.path))  # the same chat template rendering as every OpenVINO cell
        builder = _ov_builder(spec, tok)
        rows = make_plan(spec)
        prompts = [builder.build(row) for row in rows]
        outs = server.complete_all(list(zip(prompts, [r.seed for r in rows])), spec.generation,
                                   sorted(builder.stop_strings), clients=slots)  # fmt: skip
    finally:
        server.close()
    texts = [(t, row.label) for row, (out, _, _) in zip(rows, outs) if (t := _parse(spec, builder, row, out)) is not None]
    if texts:
        clock.row()
    clock.stop()
    return Measured(len(rows), texts, sum(o[1] for o in outs), sum(o[2] for o in outs), "GGUF (llama.cpp)", clock)


RUNNERS: dict[str, Callable[[Spec, ResolvedModel], Measured]] = {
    "recipe": run_recipe,
    "torch": lambda spec, model: run_torch_engine(spec, model, "torch"),
    "ipex": lambda spec, model: run_torch_engine(spec, model, "ipex"),
    "optimum": run_optimum,
    "genai-default": run_genai_default,
    "llama.cpp": run_llamacpp,
    "engine": run_engine,
    "sdgen": run_sdgen,
}


def runner(backend: str) -> Callable[[Spec, ResolvedModel], Measured]:
    if backend not in RUNNERS:
        raise EngineError(f"unknown bench backend {backend!r}; choose from {', '.join(RUNNERS)}")
    return RUNNERS[backend]


def count_distinct(texts: Iterable[tuple[str, str]]) -> int:
    from sdgen.text import normalize_text

    return len({normalize_text(t) for t, _ in texts})
