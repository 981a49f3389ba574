"""sdgen: large labelled synthetic text datasets from language models, fast, on CPUs."""

from sdgen.errors import EngineError, ModelError, OutputError, SdgenError, SpecError
from sdgen.generate import Summary, generate
from sdgen.plan import PlannedRow, make_plan
from sdgen.recipe import sdg
from sdgen.report import build_report
from sdgen.spec import Spec, build_spec, load_spec

__all__ = [
    "EngineError", "ModelError", "OutputError", "SdgenError", "SpecError",
    "PlannedRow", "Spec", "Summary",
    "build_report", "build_spec", "generate", "load_spec", "make_plan", "sdg",
]  # fmt: skip
__version__ = "0.1.0"
