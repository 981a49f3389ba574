"""The spec's field reference as Markdown, from the pydantic models themselves (``python -m sdgen.specdoc``).

docs/spec.md is this module's output; a test fails when they differ, so the reference cannot drift.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sdgen.spec import (
    BalanceOptions, DedupOptions, EngineOptions, Example, GenerationParams, JudgeOptions, JudgeReal, ModelChoice,
    RayOptions, LabelCheckOptions, MixReal, RealExamples, RealismCheckOptions, Spec,
)  # fmt: skip

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("spec", Spec), ("examples[]", Example), ("examples_from", RealExamples), ("mix_real", MixReal), ("label_check", LabelCheckOptions),
    ("realism_check", RealismCheckOptions), ("models[]", ModelChoice),
    ("generation", GenerationParams), ("engine", EngineOptions), ("dedup", DedupOptions), ("balance", BalanceOptions),
    ("judge", JudgeOptions), ("judge.real", JudgeReal), ("ray", RayOptions),
]  # fmt: skip

INTRO = """# Spec reference

A spec is a YAML (or TOML) file, or a dict passed to `sdgen.build_spec`. Every field is validated;
an error names the file and the field path (`spec.yaml: categories: category 'travel' must list at
least one type`). Unknown fields are errors. This page is generated from the pydantic models
(`python -m sdgen.specdoc > docs/spec.md`; a test checks it is current).
"""


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    for model in (m for _, m in SECTIONS):
        text = text.replace(f"{model.__module__}.{model.__name__}", model.__name__)
    text = text.replace("pathlib.Path", "path").replace("<class '", "").replace("'>", "")
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in typing.get_args(annotation))
    return text.replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "its section's defaults"
    if isinstance(value, list) and value and isinstance(value[0], ModelChoice):
        return ", ".join(f"`{m.name}`" for m in value)
    return f"`{json.dumps(value, default=str)}`"


def reference() -> str:
    parts = [INTRO]
    for name, model in SECTIONS:
        doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
        parts += [f"## `{name}`", "", doc, "", "| field | type | default | meaning |", "|---|---|---|---|"]
        for field_name, field in model.model_fields.items():
            if field.exclude:
                continue
            description = (field.description or "").replace("|", "\\|").replace("\n", " ")
            parts.append(f"| `{field_name}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference(), end="")
