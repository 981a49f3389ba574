"""Which requests enter a continuous-batching engine, and when; no backend in it.

A bounded window (so 100k prompts are never tokenized up front, and retries queued while results are taken join
the same run), and prefix warming: the first request of a shared prompt prefix (`Request.prefix`: a group's real
examples, the judge's shots) runs until it has produced a token, and the others of that prefix join only then, so
they find the prefix in the cache instead of each prefilling it; so with a whole prompt that repeats (a cell's
requests). A first wave runs alone until a request finishes. An engine supplies how to start a request and how to
step; `Admission` decides the rest.
"""

from __future__ import annotations

import itertools
from typing import Callable, Generic, Hashable, Iterable, Iterator, Protocol, Sequence, TypeVar

from sdgen.engines.base import Request


class Flight(Protocol):
    """A request in an engine: whether it still runs, and whether it has produced a token yet."""

    req: Request

    @property
    def running(self) -> bool: ...

    @property
    def started(self) -> bool: ...


F = TypeVar("F", bound=Flight)


class PrefixWarmer(Generic[F]):
    """Holds back requests whose shared prefix, or whose whole prompt, another request is still prefilling.

    The prefix (`Request.prefix`) is what a run's requests share (the task, labels and examples: hundreds of tokens);
    the whole prompt is what a cell's requests share (a label x category x type asks the same way each time, only
    the seed differs). Requests that start in the same step each compute the blocks none of them finds cached: held
    a step, a cell's second request finds all of its prompt but the last partial block. Requests of prefixes and
    prompts already computed, or of others, are not held.
    """

    def __init__(self) -> None:
        self._warming: dict[Hashable, F] = {}  # prefix name or prompt hash -> its first request
        self._waiting: dict[Hashable, list[Request]] = {}
        self._done: set[Hashable] = set()

    @staticmethod
    def _keys(req: Request) -> tuple[Hashable, Hashable]:
        return ("prefix", req.prefix), ("prompt", hash(req.prompt))

    @property
    def held(self) -> int:
        return sum(map(len, self._waiting.values()))

    def admit(self, req: Request) -> bool:
        """True when the request may start now; else it waits for its prefix or its prompt."""
        for key in self._keys(req):
            if key not in self._done and key in self._warming:
                self._waiting.setdefault(key, []).append(req)
                return False
        return True

    def warming(self, flight: F) -> None:
        for key in self._keys(flight.req):
            if key not in self._done and key not in self._warming:
                self._warming[key] = flight

    def ready(self) -> list[Request]:
        """Held requests whose prefix or prompt is now computed (its first request has a token, or has ended); each
        is asked again with `admit` (one released for its prefix may still wait for its prompt)."""
        released: list[Request] = []
        for key, flight in list(self._warming.items()):
            if flight.running and not flight.started:
                continue
            del self._warming[key]
            self._done.add(key)
            released += self._waiting.pop(key, [])
        return released


class Admission(Generic[F]):
    """The requests in flight, topped up from ``requests`` up to ``window`` (held ones count), prefix-warmed.

    Until the first request finishes, only ``first_wave`` are in flight: every running request advances one token
    per step and a step's time grows with the batch, so a run that admitted its whole window at once wrote its
    first row only after ~30 steps at full batch (70-120 s at 128 sequences on a 2-core AMX Xeon). A small first wave
    writes rows within seconds of priming, and then the window opens (docs/benchmarks.md: what it costs).

    ``start`` hands a request to the engine and returns its flight; ``computed`` (optional) hears of each flight
    once its prompt is in the cache (it has a token, or has ended). The engine's loop: `first` (prime it), then
    per step `release`, `finished`, `refill`.
    """

    def __init__(self, requests: Iterable[Request], window: int, start: Callable[[Request], F],
                 computed: Callable[[F], None] | None = None, first_wave: int | None = None) -> None:  # fmt: skip
        self._pending = iter(requests)
        self._full_window = window
        self._window = min(window, first_wave) if first_wave else window
        self._start = start
        self._computed = computed
        self._prefilling: list[F] = []  # started flights whose prompt is not computed yet (with ``computed``)
        self._warmer: PrefixWarmer[F] = PrefixWarmer()
        self.inflight: list[F] = []

    @property
    def held(self) -> int:
        """Requests taken from ``requests`` that wait for their prefix."""
        return self._warmer.held

    def first(self) -> F | None:
        """Start the first request alone (None: there are none), so that a loop can prime the shared prefix."""
        req = next(self._pending, None)
        return None if req is None else self._add(req)

    def refill(self) -> None:
        """Start or hold pending requests while the window has room."""
        room = self._window - len(self.inflight) - self.held
        for req in itertools.islice(self._pending, max(room, 0)):
            if self._warmer.admit(req):
                self._add(req)

    def release(self) -> None:
        """Report the prompts computed since the last call, and start the held requests whose prefix is one of them
        (call after each step)."""
        if self._prefilling:
            still = []
            for flight in self._prefilling:
                if flight.running and not flight.started:
                    still.append(flight)
                else:
                    self._computed(flight)
            self._prefilling[:] = still
        for req in self._warmer.ready():
            if self._warmer.admit(req):
                self._add(req)

    def finished(self) -> list[F]:
        """The flights that no longer run, taken out of flight."""
        done: list[F] = []
        still: list[F] = []
        for flight in self.inflight:
            (still if flight.running else done).append(flight)
        if done:
            self.inflight[:] = still
            self._window = self._full_window  # the first wave has written its first row
        return done

    def _add(self, req: Request) -> F:
        flight = self._start(req)
        self.inflight.append(flight)
        if self._computed is not None:
            self._prefilling.append(flight)
        self._warmer.warming(flight)
        return flight


class CachedBlocks:
    """Estimates the prompt tokens a request finds in the prefix cache, block by block as the cache finds them: the
    prompt's whole KV blocks whose tokens, and every token before them, match a prompt that had been computed when
    the request started (GenAI hashes each block with its full prefix). Eviction is not modelled (the cache holds
    a run's few distinct prompts many times over), nor is GenAI's restore of a partial last block (it needs a
    cached block holding exactly that content, and a block's hash follows its sequence as it generates into it);
    the last token is always computed.

    Requests that repeat a prompt (the rows of one label x category x type) find all of it but its last partial
    block: with ~25 tokens computed per request against ~26 generated per text, a one-text request costs about
    twice a text of a four-text one (docs/benchmarks.md)."""

    BLOCK = 32  # tokens per KV-cache block of OpenVINO's CPU plugin

    def __init__(self) -> None:
        self._computed: set[int] = set()

    @classmethod
    def _chain(cls, ids: Sequence[int]) -> Iterator[int]:
        """A hash per whole block of ``ids``, each covering the block and everything before it."""
        digest = 0
        for start in range(0, len(ids) - cls.BLOCK + 1, cls.BLOCK):
            digest = hash((digest, tuple(ids[start : start + cls.BLOCK])))
            yield digest

    def cached(self, ids: Sequence[int]) -> int:
        """Tokens of a prompt that starts now that the cache serves."""
        blocks = 0
        for digest in self._chain(ids):
            if digest not in self._computed:
                break
            blocks += 1
        return min(blocks * self.BLOCK, len(ids) - 1)

    def computed(self, ids: Sequence[int]) -> None:
        """A prompt has been computed (its request produced a token): later ones find its blocks."""
        self._computed.update(self._chain(ids))
