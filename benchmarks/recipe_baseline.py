"""The tutorial recipe's way of generating, measured on the same rows and prompts as sdgen.

One transformers `pipeline()` call per row, batch 1, as the recipe does (by default a new
pipeline per row, exactly as written; `--reuse-pipeline` builds it once). Needs the `[convert]`
extra. The built-in GGUF is dequantized into an HF model dir once and cached, as for the torch
backend (with a tokenizer rebuilt from the GGUF: transformers' own conversion garbles SmolLM2's).

    python benchmarks/recipe_baseline.py --rows 16
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sdgen.engines.torch import hf_model_dir
from sdgen.extract import extract
from sdgen.models import resolve_model
from sdgen.plan import make_plan
from sdgen.prompts import PromptBuilder, detect_mode
from sdgen.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "examples" / "customer_service.yaml"))
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--style", default=None, help="override prompt_style")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse-pipeline", action="store_true", help="build the pipeline once (fairer baseline)")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer, pipeline

    torch.set_num_threads(args.threads)
    overrides = {"rows": args.rows, "prompt_style": args.style}
    spec = load_spec(args.spec, **overrides)
    model_dir = hf_model_dir(resolve_model(spec.models[0].name, base_dir=spec.base_dir))
    tok = AutoTokenizer.from_pretrained(model_dir)

    def render(messages):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    builder = PromptBuilder(spec, detect_mode(tok.chat_template, render), render)
    gen = spec.generation
    kwargs = dict(max_new_tokens=gen.max_new_tokens, do_sample=True, temperature=gen.temperature, top_p=gen.top_p,
                  top_k=gen.top_k, repetition_penalty=gen.repetition_penalty, return_full_text=False)  # fmt: skip
    pipe = None
    tokens = parsed = 0
    t0 = time.perf_counter()
    for row in make_plan(spec):
        if pipe is None or not args.reuse_pipeline:
            pipe = pipeline("text-generation", model=str(model_dir), tokenizer=tok, device="cpu")
        torch.manual_seed(row.seed)
        text = pipe(builder.build(row), **kwargs)[0]["generated_text"]
        tokens += len(tok(text, add_special_tokens=False)["input_ids"])
        parsed += extract(builder.response_prefix + text, row, reasoning=spec.wants_reasoning) is not None
    wall = time.perf_counter() - t0
    print(json.dumps({
        "backend": "recipe" + ("-reuse" if args.reuse_pipeline else ""), "rows": args.rows, "style": spec.prompt_style,
        "generated_tokens": tokens, "wall_s": round(wall, 1), "tok_s": round(tokens / wall, 1),
        "rows_s": round(args.rows / wall, 3), "parsed": parsed, "torch": torch.__version__,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
