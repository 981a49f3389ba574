"""The tutorial recipe's way of generating, measured on the same rows and prompts as sdgen.

One transformers `pipeline()` call per row, batch 1, as the recipe does (by default a new
pipeline per row, exactly as written; `--reuse-pipeline` builds it once). Needs the `[convert]`
extra. The same runner is the `recipe` backend of `sdgen bench`.

    python benchmarks/recipe_baseline.py --rows 16
"""

from __future__ import annotations

import argparse
import json

from sdgen.bench import EXAMPLE_SPEC
from sdgen.bench.runners import count_distinct, run_recipe
from sdgen.models import resolve_model
from sdgen.spec import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(EXAMPLE_SPEC))
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--style", default=None, help="override prompt_style")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse-pipeline", action="store_true", help="build the pipeline once (fairer baseline)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    spec = load_spec(args.spec, rows=args.rows, prompt_style=args.style, threads=args.threads)
    m = run_recipe(spec, resolve_model(spec.models[0].name, base_dir=spec.base_dir), reuse_pipeline=args.reuse_pipeline)
    wall = m.clock.end_at - m.clock.loaded_at
    print(json.dumps({
        "backend": "recipe" + ("-reuse" if args.reuse_pipeline else ""), "rows": m.rows, "style": spec.prompt_style,
        "weights": m.weights, "generated_tokens": m.generated_tokens, "wall_s": round(wall, 1),
        "tok_s": round(m.generated_tokens / wall, 1), "rows_s": round(m.rows / wall, 3), "parsed": len(m.texts),
        "distinct": count_distinct(m.texts), "torch": torch.__version__,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
