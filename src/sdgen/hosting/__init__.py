"""Where an engine runs: in this process, in a worker process, or on Ray actors. Engines never know which."""

from __future__ import annotations

from sdgen.engines.base import Engine
from sdgen.engines.registry import create_engine, import_path
from sdgen.errors import EngineError
from sdgen.models.registry import ResolvedModel
from sdgen.spec import EngineOptions, RayOptions


def start_engine(backend: str, model: ResolvedModel, options: EngineOptions, *, ray: RayOptions | None = None) -> Engine:
    """The backend's engine for ``model``: on a Ray cluster's workers (``ray``), in a worker process
    (``options.process``, restarted every ``options.recycle_every`` requests), or in this process.

    A worker process or a Ray node imports the backend by its "module:attr"; a backend registered
    as a plain factory runs in this process only.
    """
    factory = import_path(backend)
    if ray is not None:
        if factory is None:
            raise EngineError(f"backend {backend!r} is registered in this process only; it cannot run on Ray")
        from sdgen.hosting.cluster import ray_pool

        return ray_pool(factory, model, options, ray, backend)
    if options.process and factory is not None:
        from sdgen.hosting.local import local_pool

        return local_pool(factory, model, options, backend)
    return create_engine(backend, model, options)
