"""The requests of one engine run: planned rows first-come, retries and replacement rows queued while results come back.

Retries join the running batch instead of a second pass, so the engine never idles on a tail
of a few retried rows. Engines pull with ``next()`` and try again after each result they hand
out, so StopIteration here means "nothing now", not "never".

Each request carries a `Job`: what the request is for. A request's id is the feed's own counter,
not a row id, so one row may be asked for several times (retries) and other kinds of jobs can
share the engine's batch.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Iterable, Iterator

from sdgen.engines.base import Request
from sdgen.plan import Cell, PlannedRow, plan_row, retry_seed
from sdgen.prompts import PromptBuilder
from sdgen.spec import Spec


@dataclass(frozen=True, slots=True)
class Job:
    """A row to write, at its n-th attempt (each attempt has its own seed)."""

    row: PlannedRow
    attempt: int = 0

    def seed(self, spec: Spec) -> int:
        return self.row.seed if self.attempt == 0 else retry_seed(spec, self.row.row, self.attempt)


class RequestFeed:
    """Jobs in, `Request`s out: retries first, then replacement rows, then the plan in its order."""

    def __init__(self, spec: Spec, builder: PromptBuilder, rows: Iterable[PlannedRow]) -> None:
        self.spec, self.builder = spec, builder
        self._planned: Iterator[PlannedRow] = iter(rows)
        self._retries: deque[Job] = deque()
        self._extra: deque[Job] = deque()
        self._ids = itertools.count()
        self._jobs: dict[int, Job] = {}

    def __iter__(self) -> RequestFeed:
        return self

    def __next__(self) -> Request:
        if self._retries:
            job = self._retries.popleft()
        elif self._extra:
            job = self._extra.popleft()
        else:
            job = Job(next(self._planned))
        request_id = next(self._ids)
        self._jobs[request_id] = job
        return Request(request_id, self.builder.build(job.row), self.spec.generation, job.seed(self.spec),
                       self.builder.stop_strings, rows=(job.row.row,))  # fmt: skip

    def job(self, request_id: int) -> Job:
        """The job of a finished request (each is handed out once)."""
        return self._jobs.pop(request_id)

    def add(self, row: PlannedRow) -> None:
        """Queue a row that was not in the plan given at the start (a quota replacement)."""
        self._extra.append(Job(row))

    def retry(self, job: Job) -> bool:
        """Queue the job's next attempt; False when its attempts are spent."""
        if job.attempt + 1 >= self.spec.engine.max_attempts:
            return False
        self._retries.append(Job(job.row, job.attempt + 1))
        return True


class Refill:
    """Schedules replacement rows for quota cells that lost rows (``balance: exact``), within a budget per model."""

    def __init__(self, spec: Spec, plan: list[PlannedRow]) -> None:
        self.spec = spec
        planned = Counter(row.model for row in plan)
        exact = spec.balance.mode == "exact"
        self.budgets = {m: math.ceil(spec.balance.extra_budget * n) if exact else 0 for m, n in planned.items()}
        self.used: Counter[str] = Counter()
        self._next = spec.sample_size  # replacement ids follow the plan's

    def skip_to(self, next_id: int) -> None:
        """Continue numbering after the ids an interrupted run already used."""
        self._next = max(self._next, next_id)

    def take(self, cell: Cell, model: str) -> PlannedRow | None:
        """A new row for ``cell`` on ``model``, or None when the model's budget is spent."""
        if self.used[model] >= self.budgets.get(model, 0):
            return None
        self.used[model] += 1
        self._next += 1
        return plan_row(self.spec, self._next - 1, cell, model)
