"""The engine protocol: requests in, results out as they finish, and a registry of backends."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from sdgen.errors import EngineError
from sdgen.models import ResolvedModel
from sdgen.spec import EngineOptions, GenerationParams, RayOptions


@dataclass(slots=True)
class Request:
    id: int
    prompt: str
    params: GenerationParams
    seed: int
    stop_strings: set[str] = field(default_factory=set)
    choices: tuple[str, ...] | None = None  # constrain the output to exactly one of these (greedy)


@dataclass(slots=True)
class Result:
    id: int
    text: str
    generated_tokens: int
    finish_reason: str  # "stop" | "length" | other backend reasons, lower-case


class Engine(ABC):
    """A loaded model that generates text for many requests at once."""

    backend: str = "?"

    @property
    @abstractmethod
    def chat_template(self) -> str | None:
        """The model's chat template, or None/"" for a base model."""

    @abstractmethod
    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """Render messages with the model's chat template, ending with the assistant turn."""

    @abstractmethod
    def generate(self, requests: Iterable[Request]) -> Iterator[Result]:
        """Generate every request; yield each result as soon as it is finished (any order).

        `requests` may grow while results are consumed (sdgen queues retries of unparseable rows):
        pull it with ``next()`` again after handing out results, and stop only when it is empty
        and nothing is in flight.
        """

    def close(self) -> None:
        """Release the model (engines hold GBs; callers close one before loading the next)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


EngineFactory = Callable[[ResolvedModel, EngineOptions], Engine]
_REGISTRY: dict[str, str | EngineFactory] = {
    # Backends are imported lazily so that an optional backend's packages are needed only when used.
    "openvino": "sdgen.engines.openvino:OpenVINOEngine",
    "torch": "sdgen.engines.torch:TorchEngine",
    "ipex": "sdgen.engines.ipex:IpexEngine",
}


def register_engine(name: str, factory: str | EngineFactory) -> None:
    """Register a backend: a factory, or "module:attr" to import on first use (tests register fakes)."""
    _REGISTRY[name] = factory


def backends() -> list[str]:
    return sorted(_REGISTRY)


def check_backend(backend: str) -> None:
    if backend not in _REGISTRY:
        raise EngineError(f"unknown backend {backend!r}; available: {', '.join(backends())}")


def load_engine(backend: str, model: ResolvedModel, options: EngineOptions, ray: RayOptions | None = None) -> Engine:
    """The backend's engine: on a Ray cluster's workers (``ray``), in a worker process (``options.process``,
    backends registered by import path) so that a long run's memory is returned every
    ``options.recycle_every`` requests, or in this process."""
    check_backend(backend)
    if ray is not None:
        if not isinstance(_REGISTRY[backend], str):
            raise EngineError(f"backend {backend!r} is registered in this process only; it cannot run on Ray")
        from sdgen.cluster import ray_pool

        return ray_pool(backend, model, options, ray)
    if options.process and isinstance(_REGISTRY[backend], str):
        from sdgen.engines.worker import local_pool

        return local_pool(backend, model, options)
    return create_engine(backend, model, options)


def create_engine(backend: str, model: ResolvedModel, options: EngineOptions) -> Engine:
    """The backend's engine, loaded in this process."""
    check_backend(backend)
    factory = _REGISTRY[backend]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(model, options)
