"""Accuracy of a converted IR against the fp32 torch reference of its source model.

Two figures, both cheap enough to run after every conversion: how many of the first 32 greedy
tokens agree with the reference on a fixed prompt set (prefix agreement, so one early
divergence is not hidden by chance matches later), and the perplexity of both on a short text
that ships with the package. Written as JSON next to the IR and shown by `sdgen models`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

ACCURACY_FILE = "sdgen_accuracy.json"
NEW_TOKENS = 32
PROMPTS = [
    "Write a short, polite message thanking a hotel for a pleasant stay.",
    "Explain in two sentences why trains are often late in winter.",
    "List three things to check before buying a used washing machine.",
    "Write a one-line complaint about a delayed flight.",
    "What is the capital of France, and what river runs through it?",
    "Describe a toy shop to a child in three sentences.",
    "Translate to French: The kettle arrived broken.",
    "Continue the story: The conductor opened the door and",
]


@dataclass
class AccuracyReport:
    reference: str
    new_tokens: int
    prompts: int
    greedy_prefix_agreement: float  # mean share of the first NEW_TOKENS tokens matched before the first divergence
    greedy_exact_match: float  # share of prompts whose NEW_TOKENS tokens all match
    perplexity: float
    reference_perplexity: float

    def save(self, ir_dir: Path) -> Path:
        path = ir_dir / ACCURACY_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    def summary(self) -> str:
        return (
            f"greedy {self.greedy_prefix_agreement:.0%} of {self.new_tokens} tokens, "
            f"ppl {self.perplexity:.2f} (fp32 {self.reference_perplexity:.2f})"
        )


def load_accuracy(ir_dir: Path) -> AccuracyReport | None:
    path = ir_dir / ACCURACY_FILE
    if not path.is_file():
        return None
    return AccuracyReport(**json.loads(path.read_text()))


def reference_text() -> str:
    return resources.files("sdgen").joinpath("data/perplexity.txt").read_text(encoding="utf-8")


def _prompt_ids(tokenizer) -> list[list[int]]:
    out = []
    for prompt in PROMPTS:
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                 add_generation_prompt=True)  # fmt: skip
            out.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            out.append(tokenizer(prompt)["input_ids"])
    return out


def _prefix_match(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _torch_greedy(model, prompts: list[list[int]]) -> list[list[int]]:
    import torch

    out = []
    with torch.inference_mode():
        for ids in prompts:
            tensor = torch.tensor([ids])
            gen = model.generate(tensor, attention_mask=torch.ones_like(tensor), do_sample=False,
                                 max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)  # fmt: skip
            out.append(gen[0, len(ids):].tolist())
    return out


def _ov_greedy(ir_dir: Path, prompts: list[list[int]]) -> list[list[int]]:
    import numpy as np
    import openvino as ov
    import openvino_genai as ov_genai

    scheduler = ov_genai.SchedulerConfig()
    scheduler.cache_size = 1
    pipe = ov_genai.ContinuousBatchingPipeline(str(ir_dir), scheduler, "CPU")
    config = ov_genai.GenerationConfig()
    config.max_new_tokens = NEW_TOKENS
    config.min_new_tokens = NEW_TOKENS
    inputs = [ov.Tensor(np.array([ids], dtype=np.int64)) for ids in prompts]
    results = pipe.generate(inputs, [config] * len(inputs))
    return [list(r.m_generation_ids[0]) for r in results]


def _perplexity(logits, ids) -> float:
    import torch

    logits = torch.as_tensor(logits, dtype=torch.float32)[0, :-1]
    targets = torch.as_tensor(ids)[0, 1:]
    return math.exp(torch.nn.functional.cross_entropy(logits, targets).item())


def measure(ir_dir: Path, hf_source: str, *, label: str | None = None) -> AccuracyReport:
    """Compare an IR with the fp32 torch model it was converted from (`label` names that source)."""
    import torch
    from optimum.intel import OVModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sdgen.models.hf_compat import dtype_kwargs

    tokenizer = AutoTokenizer.from_pretrained(hf_source)
    reference = AutoModelForCausalLM.from_pretrained(hf_source, **dtype_kwargs(torch.float32)).eval()
    prompts = _prompt_ids(tokenizer)
    ref_tokens = _torch_greedy(reference, prompts)
    ov_tokens = _ov_greedy(ir_dir, prompts)
    matches = [_prefix_match(a, b) for a, b in zip(ref_tokens, ov_tokens)]
    ids = tokenizer(reference_text(), return_tensors="pt")["input_ids"][:, :512]
    with torch.inference_mode():
        ref_ppl = _perplexity(reference(ids).logits, ids)
    del reference
    ov_model = OVModelForCausalLM.from_pretrained(ir_dir, compile=True)
    ov_ppl = _perplexity(ov_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits, ids)
    return AccuracyReport(
        reference=f"{label or hf_source} (torch fp32)", new_tokens=NEW_TOKENS, prompts=len(PROMPTS),
        greedy_prefix_agreement=round(sum(matches) / (NEW_TOKENS * len(matches)), 4),
        greedy_exact_match=round(sum(m == NEW_TOKENS for m in matches) / len(matches), 4),
        perplexity=round(ov_ppl, 3), reference_perplexity=round(ref_ppl, 3),
    )  # fmt: skip
