"""Generation backends behind one small protocol (see `base.Engine`)."""

from sdgen.engines.base import Engine, Request, Result, load_engine, register_engine

__all__ = ["Engine", "Request", "Result", "load_engine", "register_engine"]
