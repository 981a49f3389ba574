"""Backends by name: a factory, or "module:attr" imported on first use (so optional packages load only when used)."""

from __future__ import annotations

import importlib
from typing import Callable

from sdgen.engines.base import CHOICES, LOGPROBS, Engine
from sdgen.errors import EngineError, SpecError
from sdgen.models.registry import ResolvedModel
from sdgen.spec import EngineOptions, Spec

EngineFactory = Callable[[ResolvedModel, EngineOptions], Engine]
_REGISTRY: dict[str, str | EngineFactory] = {
    "openvino": "sdgen.engines.openvino:OpenVINOEngine",
    "torch": "sdgen.engines.torch:TorchEngine",
    "ipex": "sdgen.engines.ipex:IpexEngine",
}


def register_engine(name: str, factory: str | EngineFactory) -> None:
    """Register a backend: a factory (usable in this process only), or "module:attr", which a worker process
    or a Ray node can import too (tests register fakes either way)."""
    _REGISTRY[name] = factory


def backends() -> list[str]:
    return sorted(_REGISTRY)


def check_backend(backend: str) -> None:
    if backend not in _REGISTRY:
        raise EngineError(f"unknown backend {backend!r}; available: {', '.join(backends())}")


def import_path(backend: str) -> str | None:
    """The backend's "module:attr", or None for a factory registered in this process only."""
    check_backend(backend)
    factory = _REGISTRY[backend]
    return factory if isinstance(factory, str) else None


def load_factory(path: str) -> EngineFactory:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def create_engine(backend: str, model: ResolvedModel, options: EngineOptions) -> Engine:
    """The backend's engine, loaded in this process."""
    check_backend(backend)
    factory = _REGISTRY[backend]
    return (load_factory(factory) if isinstance(factory, str) else factory)(model, options)


def capabilities_of(backend: str) -> frozenset[str] | None:
    """What the backend's engine class declares it can do (None: not declared), without loading a model."""
    check_backend(backend)
    factory = _REGISTRY[backend]
    factory = load_factory(factory) if isinstance(factory, str) else factory
    return getattr(factory, "capabilities", None)


def needed_capabilities(spec: Spec) -> dict[str, str]:
    """Capability -> the spec field that needs it."""
    needs = {}
    if spec.judge.enabled:
        needs[CHOICES] = "judge"
        if spec.judge.min_confidence:
            needs[LOGPROBS] = "judge.min_confidence"
        if spec.judge.prior is not None:
            needs[LOGPROBS] = "judge.prior"
    return needs


def check_capabilities(spec: Spec, backend: str) -> None:
    """Fail before the run, in one line, when the spec asks for something the backend cannot do."""
    declared = capabilities_of(backend)
    if declared is None:
        return
    for capability, field in needed_capabilities(spec).items():
        if capability not in declared:
            raise SpecError(f"{field} needs {capability}; the {backend} backend has none: use --backend openvino, or "
                            f"leave {field} out")  # fmt: skip
