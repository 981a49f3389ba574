"""Engines in worker processes, fed on demand by a pool in the driver.

A worker (`serve`) loads one engine and answers the driver over a connection. While it generates,
its engine pulls requests one at a time by asking the driver ("want"), so the driver's feed is
consumed exactly as an in-process engine would consume it (retries queued while a result is
handled join the same run), each worker takes work only when its batch has room, and a worker
that dies holds nothing but its in-flight requests, which go back to the front of the queue.

Why processes: OpenVINO GenAI's pipeline keeps a few MB per 1k requests that only process exit
returns (see README, "Long runs"), so the pool restarts a worker every ``recycle_every`` requests.
The same protocol runs over TCP for Ray workers (`sdgen.cluster`).

    driver -> worker: ("call", name, args) | ("generate",) | ("request", Request) | ("none",) | ("close",)
    worker -> driver: ("ready", chat_template) | ("reply", value) | ("want",) | ("result", Result) | ("done",)
                      | ("error", SdgenError)
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Iterator

from sdgen.engines.base import Engine, Request, Result, create_engine
from sdgen.errors import EngineError, SdgenError
from sdgen.models import ResolvedModel
from sdgen.spec import EngineOptions


def serve(conn: Connection, backend: str, model: ResolvedModel, options: EngineOptions) -> None:
    """A worker's whole life: load the engine, then answer the driver until it closes the connection."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the driver decides
    try:
        engine = create_engine(backend, model, options)
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, which raises it
        _send_error(conn, exc)
        return
    with engine:
        try:
            conn.send(("ready", engine.chat_template))
            _answer(conn, engine)
        except (EOFError, OSError, _Closed):  # the driver went away or closed us mid-run
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
                for result in engine.generate(_Pull(conn)):
                    conn.send(("result", result))
                conn.send(("done",))
        except (EOFError, OSError, _Closed):
            raise
        except BaseException as exc:  # noqa: BLE001
            _send_error(conn, exc)
            return


def _send_error(conn: Connection, exc: BaseException) -> None:
    if not isinstance(exc, SdgenError):
        traceback.print_exc()  # a bug: keep its traceback on the worker's stderr
        exc = EngineError(f"engine worker failed: {type(exc).__name__}: {exc}")
    try:
        conn.send(("error", exc))
    except (OSError, EOFError):
        pass


class _Closed(Exception):
    """The driver closed this worker in the middle of a run (Ctrl-C, or it stopped reading results)."""


class _Pull:
    """The worker engine's request iterator: each ``next()`` asks the driver; "none" means nothing now."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __iter__(self) -> _Pull:
        return self

    def __next__(self) -> Request:
        self.conn.send(("want",))
        kind, *args = self.conn.recv()
        if kind == "request":
            return args[0]
        if kind == "close":
            raise _Closed
        raise StopIteration


class WorkerHandle:
    """The driver's end of one worker: its connection, and how to stop it and describe its death."""

    conn: Connection
    pid: int

    def stop(self, kill: bool = False) -> None:
        """Close the worker (``kill``: at once, for a worker in the middle of a run)."""
        raise NotImplementedError

    def describe_exit(self) -> str:
        return "the worker exited"

    @property
    def label(self) -> str:
        """Where the worker runs, for per-worker counts."""
        return f"pid {self.pid}"


Launcher = Callable[[], WorkerHandle]


def _serve_child(conn: Connection, backend: str, model: ResolvedModel, options: EngineOptions) -> None:
    """`serve` in a child process that dies with its parent (a SIGKILLed driver leaves no engine behind)."""
    if sys.platform == "linux":
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    serve(conn, backend, model, options)


class LocalWorker(WorkerHandle):
    """A worker in a child process of this one (spawned: never fork a process that may hold OpenVINO threads)."""

    def __init__(self, backend: str, model: ResolvedModel, options: EngineOptions) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve_child, args=(child, backend, model, options), daemon=True,
                                   name=f"sdgen-{backend}")  # fmt: skip
        self.process.start()
        child.close()

    def stop(self, kill: bool = False) -> None:
        try:
            if not kill:
                self.conn.send(("close",))
        except OSError:
            pass
        self.process.join(timeout=0 if kill else 30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def describe_exit(self) -> str:
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"the engine worker process was killed by signal {-code}"
        return f"the engine worker process exited (code {code})"


@dataclass(eq=False)
class _Slot:
    handle: WorkerHandle
    chat_template: str | None = None
    running: bool = False
    served: int = 0  # requests taken since this worker started
    inflight: dict[int, Request] = field(default_factory=dict)


class WorkerPool(Engine):
    """Workers behind one `Engine`: a feed pulled on demand, results in completion order, restarts.

    ``recycle_every``: a worker that has taken that many requests finishes them and is replaced by
    a fresh one (0 = never). ``restarts``: how many dead workers may be replaced before the pool
    gives up (their in-flight requests are always re-queued first). ``inflight_cap``: requests one
    worker may hold at once (None: as many as its engine pulls), so that several workers share a
    short queue instead of the first one taking it all.
    """

    def __init__(self, launch: Launcher, *, workers: int = 1, recycle_every: int = 0, restarts: int = 2,
                 inflight_cap: int | None = None, backend: str = "?") -> None:  # fmt: skip
        self.backend = backend
        self._launch, self._recycle_every, self._restarts = launch, recycle_every, restarts
        self._cap = inflight_cap or float("inf")
        self.results_by: Counter[str] = Counter()  # results per worker (its label)
        self._slots: list[_Slot] = []
        handles: list[WorkerHandle] = []
        try:
            for _ in range(workers):  # every worker loads its model at the same time
                handles.append(self._launch())
            for handle in handles:
                self._slots.append(self._ready(handle))
        except BaseException:
            for handle in handles[len(self._slots):]:
                handle.stop(kill=True)
            self.close()
            raise

    def _start(self) -> _Slot:
        return self._ready(self._launch())

    def _ready(self, handle: WorkerHandle) -> _Slot:
        """Wait for a launched worker's "ready" (its model loaded) or its load error."""
        slot = _Slot(handle)
        try:
            kind, *args = slot.handle.conn.recv()
        except (EOFError, OSError):
            slot.handle.stop()
            raise EngineError(f"the engine worker failed to start: {slot.handle.describe_exit()}") from None
        if kind == "error":
            slot.handle.stop()
            raise args[0]
        slot.chat_template = args[0]
        return slot

    @property
    def chat_template(self) -> str | None:
        return self._slots[0].chat_template

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        return self._call("render_chat", messages)

    def count_tokens(self, text: str) -> int:
        return self._call("count_tokens", text)

    def _call(self, name: str, *args: Any) -> Any:
        self._restart_abandoned()
        conn = self._slots[0].handle.conn
        conn.send(("call", name, args))
        kind, *reply = conn.recv()
        if kind == "error":
            raise reply[0]
        return reply[0]

    def generate(self, requests: Iterable[Request]) -> Iterator[Result]:
        self._restart_abandoned()
        queue = _Queue(iter(requests))
        for slot in self._slots:
            self._run(slot)
        while True:
            running = {slot.handle.conn: slot for slot in self._slots if slot.running}
            if not running:
                return
            for conn in wait(list(running)):
                yield from self._handle(running[conn], queue)
            idle = [slot for slot in self._slots if not slot.running]
            if idle and queue.peek():  # work queued while results were handled: wake idle workers
                for slot in idle:
                    self._run(slot)

    def _restart_abandoned(self) -> None:
        """Workers still running a generate() whose caller stopped reading are replaced before reuse."""
        for slot in [slot for slot in self._slots if slot.running]:
            self._replace(slot)

    def _run(self, slot: _Slot) -> None:
        slot.handle.conn.send(("generate",))
        slot.running = True

    def _handle(self, slot: _Slot, queue: _Queue) -> Iterator[Result]:
        try:
            kind, *args = slot.handle.conn.recv()
        except (EOFError, OSError):
            self._replace_dead(slot, queue)
            return
        if kind == "want":
            due = self._recycle_every and slot.served >= self._recycle_every
            request = None if due or len(slot.inflight) >= self._cap else queue.pop()
            if request is not None:
                slot.inflight[request.id] = request  # before sending: if the worker is gone, it is re-queued
                slot.served += 1
            try:
                slot.handle.conn.send(("none",) if request is None else ("request", request))
            except OSError:
                self._replace_dead(slot, queue)
        elif kind == "result":
            result: Result = args[0]
            slot.inflight.pop(result.id, None)
            self.results_by[slot.handle.label] += 1
            yield result
        elif kind == "done":
            slot.running = False
            if self._recycle_every and slot.served >= self._recycle_every:
                self._replace(slot)
                if queue.peek():
                    self._run(self._slots[-1])
        elif kind == "error":
            raise args[0]

    def _replace(self, old: _Slot) -> None:
        """Stop ``old`` first (never two engines loaded at once), then start its successor."""
        old.handle.stop(kill=old.running)
        self._slots.remove(old)
        self._slots.append(self._start())

    def _replace_dead(self, slot: _Slot, queue: _Queue) -> None:
        """A worker died: its in-flight requests go back to the queue; a successor starts while restarts last."""
        queue.requeue(slot.inflight.values())
        why = slot.handle.describe_exit()
        slot.handle.stop(kill=True)
        self._slots.remove(slot)
        lost = f"{why}; re-queued its {len(slot.inflight)} in-flight rows"
        if self._restarts <= 0:
            if not self._slots:
                raise EngineError(f"{why}; no engine workers left")
            print(f"sdgen: {lost} for the other workers", file=sys.stderr)
            return
        self._restarts -= 1
        print(f"sdgen: {lost}, starting another", file=sys.stderr)
        try:
            successor = self._start()
        except EngineError as exc:
            if not self._slots:
                raise
            print(f"sdgen: no replacement worker ({exc}); the other workers take its rows", file=sys.stderr)
            return
        self._slots.append(successor)
        self._run(successor)

    @property
    def workers(self) -> list[WorkerHandle]:
        return [slot.handle for slot in self._slots]

    def close(self) -> None:
        for slot in self._slots:
            slot.handle.stop(kill=slot.running)
        self._slots.clear()


class _Queue:
    """The feed plus requests re-queued from dead workers (first), with a one-request look-ahead."""

    def __init__(self, feed: Iterator[Request]) -> None:
        self._feed = feed
        self._front: deque[Request] = deque()

    def pop(self) -> Request | None:
        if self._front:
            return self._front.popleft()
        return next(self._feed, None)

    def peek(self) -> bool:
        if not self._front and (request := next(self._feed, None)) is not None:
            self._front.append(request)
        return bool(self._front)

    def requeue(self, requests: Iterable[Request]) -> None:
        self._front.extendleft(reversed(list(requests)))


def local_pool(backend: str, model: ResolvedModel, options: EngineOptions) -> WorkerPool:
    """One engine in a child process, restarted every ``options.recycle_every`` requests."""
    return WorkerPool(lambda: LocalWorker(backend, model, options), recycle_every=options.recycle_every,
                      backend=backend)  # fmt: skip
