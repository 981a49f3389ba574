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


class KeptEngines:
    """Engines kept loaded across several runs (``generate(..., engines=kept)``), one per backend, model and
    engine options: `sdgen tune` runs a dozen short pilots, and loading the 1.5B model costs ~20 s each time.

        with KeptEngines() as kept:
            generate(spec_a, engines=kept); generate(spec_b, engines=kept)   # one model load
    """

    def __init__(self) -> None:
        self._engines: dict[tuple, Engine] = {}

    def start(self, backend: str, model: ResolvedModel, options: EngineOptions, *, ray: RayOptions | None = None):
        """A context manager over the kept engine (loaded on first use) that leaves it open on exit."""
        key = (backend, model.path, options.model_dump_json(), ray.model_dump_json() if ray else None)
        if key not in self._engines:
            self._engines[key] = start_engine(backend, model, options, ray=ray)
        return _Borrowed(self._engines[key])

    def close(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()

    def __enter__(self) -> KeptEngines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Borrowed:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> Engine:
        return self.engine

    def __exit__(self, *exc: object) -> None:
        pass
