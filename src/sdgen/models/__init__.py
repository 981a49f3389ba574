"""Models: the built-in registry, provisioning from PyPI, resolution of names and paths, and conversion."""

from sdgen.models.provision import builtin_path, provision
from sdgen.models.registry import BUILTINS, CACHE_DIR, BuiltinModel, ResolvedModel
from sdgen.models.resolve import ModelInfo, inspect_path, list_models, resolve_model

__all__ = [
    "BUILTINS", "CACHE_DIR", "BuiltinModel", "ModelInfo", "ResolvedModel",
    "builtin_path", "inspect_path", "list_models", "provision", "resolve_model",
]  # fmt: skip
