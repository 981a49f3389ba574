"""Generation backends behind one small protocol (`base.Engine`), looked up by name (`registry`)."""

from sdgen.engines.base import Engine, Request, Result
from sdgen.engines.registry import backends, check_backend, create_engine, register_engine

__all__ = ["Engine", "Request", "Result", "backends", "check_backend", "create_engine", "register_engine"]
