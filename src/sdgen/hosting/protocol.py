"""The conversation between the driver and an engine worker, and the worker's side of it.

A worker loads one engine and answers the driver over one connection. While it generates, its
engine pulls requests one at a time by asking the driver ("want"), so the driver's feed is consumed
exactly as an in-process engine consumes it (retries queued while a result is handled join the
same run), each worker takes work only when its batch has room, and a worker that dies holds
nothing but its in-flight requests.

    worker -> driver: ("hello", token, pid) first; then ("ready", chat_template) | ("error", SdgenError)
                      and later ("reply", value) | ("want",) | ("result", Result) | ("done", stats) | ("error", ...)
    driver -> worker: ("call", name, args) | ("generate",) | ("request", Request) | ("none",) | ("close",)
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from sdgen.engines.base import Engine, Request
from sdgen.errors import EngineError, SdgenError
from sdgen.models.registry import ResolvedModel
from sdgen.spec import EngineOptions


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker program needs: where to connect back, and which engine to load.

    ``factory`` is the backend's "module:attr"; ``sys_path`` lets it import modules the driver can
    (a backend registered from a test or a user's package).
    """

    address: Any
    authkey: bytes
    token: str
    factory: str
    model: ResolvedModel
    options: EngineOptions
    sys_path: list[str] = field(default_factory=list)
    parent_pid: int | None = None  # the worker dies with this process (see sdgen.hosting.worker)
    pin: tuple[int, ...] | None = None  # CPUs to run on (a NUMA node's cores)


def serve(conn: Connection, load: Any) -> None:
    """Load the engine (``load()``), say so, then answer the driver until it closes the connection."""
    try:
        engine = load()
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, which raises it
        send_error(conn, exc)
        return
    with engine:
        try:
            conn.send(("ready", engine.chat_template))
            _answer(conn, engine)
        except (EOFError, OSError, Closed):  # the driver went away or closed us mid-run
            return


def _answer(conn: Connection, engine: Engine) -> None:
    while True:
        kind, *args = conn.recv()
        if kind == "close":
            return
        try:
            if kind == "call":
                name, call_args = args
                conn.send(("reply", getattr(engine, name)(*call_args)))
            elif kind == "generate":
                for result in engine.generate(Pull(conn)):
                    conn.send(("result", result))
                conn.send(("done", engine.stats()))  # the engine's own figures of this generate()
        except (EOFError, OSError, Closed):
            raise
        except BaseException as exc:  # noqa: BLE001
            send_error(conn, exc)
            return


def send_error(conn: Connection, exc: BaseException) -> None:
    """A user-facing error crosses as itself; a bug keeps its traceback on the worker's stderr."""
    if not isinstance(exc, SdgenError):
        traceback.print_exc(file=sys.stderr)
        exc = EngineError(f"engine worker failed: {type(exc).__name__}: {exc}")
    try:
        conn.send(("error", exc))
    except (OSError, EOFError):
        pass


class Closed(Exception):
    """The driver closed this worker in the middle of a run (Ctrl-C, or it stopped reading results)."""


class Pull:
    """The worker engine's request iterator: each ``next()`` asks the driver; "none" means nothing now."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __iter__(self) -> Pull:
        return self

    def __next__(self) -> Request:
        self.conn.send(("want",))
        kind, *args = self.conn.recv()
        if kind == "request":
            return args[0]
        if kind == "close":
            raise Closed
        raise StopIteration
