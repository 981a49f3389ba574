"""sdgen: large labelled synthetic text datasets from language models, fast, on CPUs.

The public API is loaded on first use (PEP 562), so that an engine worker or a Ray node that
imports one `sdgen` module does not load the whole pipeline.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "generate": "sdgen.run.generate", "Run": "sdgen.run.generate", "Summary": "sdgen.run.summary",
    "sdg": "sdgen.recipe", "evaluate": "sdgen.quality.evaluate", "tune": "sdgen.tuning.loop",
    "Spec": "sdgen.spec", "build_spec": "sdgen.spec", "load_spec": "sdgen.spec",
    "PlannedRow": "sdgen.plan", "make_plan": "sdgen.plan",
    "build_report": "sdgen.quality.report",
    "SdgenError": "sdgen.errors", "SpecError": "sdgen.errors", "ModelError": "sdgen.errors",
    "OutputError": "sdgen.errors", "EngineError": "sdgen.errors",
}  # fmt: skip
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'sdgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
