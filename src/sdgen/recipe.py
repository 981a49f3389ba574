"""`sdg()`: a drop-in for the well-known tutorial recipe, running on sdgen's batched engine."""

from __future__ import annotations

from pathlib import Path

from sdgen.run.generate import generate
from sdgen.run.summary import Summary
from sdgen.spec import DEFAULT_MODEL, build_spec


def sdg(
    sample_size: int,
    labels: list[str] | dict[str, str],
    categories_types: dict[str, list[str]],
    batch_size: int = 20,
    output_path: str | Path = "./output.csv",
    model: str | list[str] = DEFAULT_MODEL,
    *,
    label_descriptions: dict[str, str] | str | None = None,
    use_case: str = "Generate short texts for a text classification dataset.",
    prompt_examples: list[dict] | None = None,
    max_new_tokens: int = 128,
    reasoning: bool = False,
    seed: int = 0,
    overwrite: bool = False,
) -> Summary:
    """Generate ``sample_size`` labelled rows into ``output_path`` the way the recipe does, only batched.

    ``label_descriptions`` may be a dict or, as in the recipe, free text (it then goes into the task line).
    ``prompt_examples`` are dicts with label, category, type, output and optional reasoning.
    """
    if isinstance(labels, list) and isinstance(label_descriptions, dict):
        labels = {label: label_descriptions.get(label, "") for label in labels}
    task = use_case if not isinstance(label_descriptions, str) else f"{use_case}\n{label_descriptions.strip()}"
    spec = build_spec(
        {
            "name": Path(output_path).stem,
            "task": task,
            "labels": labels,
            "categories": categories_types,
            "examples": prompt_examples or [],
            "prompt_style": "reasoning" if reasoning else "fewshot",
            "sample_size": sample_size,
            "batch_size": batch_size,
            "seed": seed,
            "models": [model] if isinstance(model, str) else model,
            "generation": {"max_new_tokens": max_new_tokens},
            "output": str(output_path),
        },
        source="sdg()",
    )
    return generate(spec, overwrite=overwrite)
