"""The driver's side of engine workers: a pool that feeds them on demand and behaves as one `Engine`.

Workers pull requests as their batches have room (see `sdgen.hosting.protocol`); results come
back in completion order; a worker that dies loses only its in-flight requests, which go back to
the front of the queue, and a successor starts while restarts last. How a worker is started (a
local process, a Ray actor) is the launcher's business.

Why processes at all: OpenVINO GenAI's pipeline keeps a few MB per 1k requests that only process
exit returns (docs/benchmarks.md, "Long runs"), so the pool restarts a worker every ``recycle_every``
requests.
"""

from __future__ import annotations

import sys
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Iterator

from sdgen.engines.base import Engine, Request, Result
from sdgen.errors import EngineError


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
    short queue instead of the first one taking it all. ``on_close`` runs once the workers are stopped.
    """

    def __init__(self, launch: Launcher, *, workers: int = 1, recycle_every: int = 0, restarts: int = 2,
                 inflight_cap: int | None = None, backend: str = "?",
                 on_close: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.backend = backend
        self._on_close = on_close
        self._generating = False
        self._launch, self._recycle_every, self._restarts = launch, recycle_every, restarts
        self._cap = inflight_cap or float("inf")
        self.results_by: Counter[str] = Counter()  # results per worker (its label)
        self._engine_stats: Counter[str] = Counter()  # the workers' own figures (`Engine.stats`), summed
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

    def stats(self) -> dict[str, object]:
        """Results per worker, and the workers' own figures of the last generate() summed."""
        return {**self._engine_stats, "results_by": dict(self.results_by)}

    def _call(self, name: str, *args: Any) -> Any:
        if self._generating:
            raise RuntimeError(f"{name}() was called while this pool generates: call it before generate()")
        self._restart_abandoned()
        conn = self._slots[0].handle.conn
        conn.send(("call", name, args))
        kind, *reply = conn.recv()
        if kind == "error":
            raise reply[0]
        return reply[0]

    def generate(self, requests: Iterable[Request]) -> Iterator[Result]:
        self._restart_abandoned()
        self._generating = True
        self._engine_stats = Counter()
        try:
            yield from self._generate(_Queue(iter(requests)))
        finally:
            self._generating = False

    def _generate(self, queue: _Queue) -> Iterator[Result]:
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
            self._engine_stats.update({k: v for k, v in args[0].items() if isinstance(v, (int, float))})
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
        if self._on_close is not None:
            self._on_close()


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
