"""transformers baseline backend: static batches, left padding, one rng per row, bf16 where the CPU has it.

HF `generate` samples a whole batch from one global rng, so rows of a batch cannot have their
own seeds; this backend runs its own decode loop over the model's forward pass (with its KV
cache) and draws each row's token from that row's `torch.Generator`. It is the accuracy
reference and a benchmark baseline, and the IPEX backend reuses it.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from sdgen.engines.base import PER_REQUEST_SAMPLING, Engine, Request, Result, StopMatcher, batches_of_equal_sampling, cut_at_stop
from sdgen.hardware import has_bf16
from sdgen.errors import EngineError, ModelError
from sdgen.models.hf_compat import dtype_kwargs
from sdgen.models.registry import CACHE_DIR, ResolvedModel
from sdgen.spec import EngineOptions, GenerationParams


def hf_model_dir(model: ResolvedModel) -> Path:
    """An HF model dir for the model: itself, or a cached dequantized copy of a GGUF."""
    if model.format == "hf":
        return model.path
    if model.format == "gguf":
        import transformers

        stat = model.path.stat()
        key = hashlib.sha256(f"{model.path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
        # per transformers major version: a tokenizer saved by 5.x names a class that 4.x (IPEX's env) lacks
        major = transformers.__version__.split(".")[0]
        cached = CACHE_DIR / "hf" / f"{model.path.stem}-{key}-tf{major}"
        if not (cached / "config.json").is_file():
            from sdgen.models.convert import hf_dir_from_gguf

            tmp = cached.with_name(cached.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            hf_dir_from_gguf(model.path, tmp).rename(cached)
            shutil.rmtree(tmp, ignore_errors=True)
        return cached
    raise ModelError(f"{model.path} is an OpenVINO IR; the {model.format} format has no torch weights")


class TorchEngine(Engine):
    backend = "torch"
    capabilities = frozenset({PER_REQUEST_SAMPLING})  # no constrained choices, no log-probs: no judge

    def __init__(self, model: ResolvedModel, options: EngineOptions) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise EngineError(f"the {self.backend} backend needs {exc.name}: run `make install-convert`") from None
        self.torch = torch
        if options.threads:
            torch.set_num_threads(options.threads)
        self.options = options
        if options.dtype == "int8" and self.backend != "ipex":
            raise EngineError("dtype int8 (weight-only) is an ipex backend option; use bf16 or fp32 with torch")
        bf16 = options.dtype in ("bf16", "int8") or (options.dtype == "auto" and has_bf16())
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        path = hf_model_dir(model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self._stops = StopMatcher(self.tokenizer)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = self._load(AutoModelForCausalLM, path)
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(e) for e in eos + [self.tokenizer.eos_token_id] if e is not None}

    def _load(self, auto_class, path: Path):
        return auto_class.from_pretrained(path, **dtype_kwargs(self.dtype)).eval()

    @property
    def chat_template(self) -> str | None:
        return self.tokenizer.chat_template or None

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, requests: Iterable[Request]) -> Iterator[Result]:
        for batch in batches_of_equal_sampling(requests, self.options.static_batch_size):
            if any(req.choices for req in batch):
                raise EngineError(f"the {self.backend} backend cannot constrain outputs to a label set; judge with openvino")
            yield from self._generate_batch(batch)

    def _generate_batch(self, batch: list[Request]) -> list[Result]:
        torch = self.torch
        params = batch[0].params
        enc = self.tokenizer([r.prompt for r in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        history = ids.clone()
        generators = [torch.Generator().manual_seed(r.seed) for r in batch]
        done = [False] * len(batch)
        outputs: list[list[int]] = [[] for _ in batch]
        reasons = ["length"] * len(batch)
        past, step_ids = None, ids
        step_pos = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: each row counts from its first real token
        with torch.inference_mode():
            for _ in range(params.max_new_tokens):
                out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos,
                                 past_key_values=past, use_cache=True)  # fmt: skip
                past = out.past_key_values
                logits = out.logits[:, -1, :].float()
                next_ids = self._sample(logits, history, params, generators)
                for i, token in enumerate(next_ids.tolist()):
                    if done[i]:
                        continue
                    if token in self.eos_ids:
                        done[i], reasons[i] = True, "stop"
                        continue
                    outputs[i].append(token)
                    if batch[i].stop_strings and self._stops.completes_stop(outputs[i], 1, batch[i].stop_strings):
                        done[i], reasons[i] = True, "stop"
                if all(done):
                    break
                step_ids = next_ids[:, None]
                history = torch.cat([history, step_ids], dim=1)
                mask = torch.cat([mask, torch.ones_like(step_ids)], dim=1)
                step_pos = step_pos[:, -1:] + 1
        return [self._result(req, toks, reason) for req, toks, reason in zip(batch, outputs, reasons)]

    def _sample(self, logits, history, params: GenerationParams, generators):
        torch = self.torch
        if params.repetition_penalty != 1.0:
            seen = torch.gather(logits, 1, history)
            seen = torch.where(seen < 0, seen * params.repetition_penalty, seen / params.repetition_penalty)
            logits = logits.scatter(1, history, seen)
        if params.temperature == 0:
            return logits.argmax(dim=-1)
        logits = logits / params.temperature
        if params.top_k:
            kth = torch.topk(logits, min(params.top_k, logits.shape[-1])).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if params.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True)
            cumulative = sorted_logits.softmax(-1).cumsum(-1)
            drop = cumulative - sorted_logits.softmax(-1) > params.top_p  # keep the token that crosses top_p
            logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
        probs = logits.softmax(-1)
        if params.min_p:
            probs = probs.masked_fill(probs < params.min_p * probs.max(-1, keepdim=True).values, 0.0)
        return torch.stack([torch.multinomial(probs[i], 1, generator=g)[0] for i, g in enumerate(generators)])

    def _result(self, req: Request, tokens: list[int], reason: str) -> Result:
        text = cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), req.stop_strings)
        return Result(req.id, text, len(tokens), reason)

    def close(self) -> None:
        self.model = None
