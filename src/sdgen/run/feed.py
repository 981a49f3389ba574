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
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from sdgen.engines.base import Request
from sdgen.plan import PlannedRow, retry_seed
from sdgen.prompts import PromptBuilder
from sdgen.quality.judge import JUDGE_PARAMS, JudgePrompt
from sdgen.spec import Spec


@dataclass(frozen=True, slots=True)
class Job:
    """A row to write, at its n-th attempt (each attempt has its own seed)."""

    row: PlannedRow
    attempt: int = 0

    def seed(self, spec: Spec) -> int:
        return self.row.seed if self.attempt == 0 else retry_seed(spec, self.row.row, self.attempt)


@dataclass(frozen=True, slots=True)
class JudgeJob:
    """A parsed row waiting for the judge's label."""

    row: PlannedRow
    record: dict[str, Any]


class RequestFeed:
    """Jobs in, `Request`s out: judge jobs first (short, and they unblock writing), then retries, then replacement
    rows, then the plan in its order."""

    def __init__(self, spec: Spec, builder: PromptBuilder, rows: Iterable[PlannedRow], judge: JudgePrompt | None = None) -> None:
        self.spec, self.builder, self.judge = spec, builder, judge
        self._planned: Iterator[PlannedRow] = iter(rows)
        self._judging: deque[JudgeJob] = deque()
        self._retries: deque[Job] = deque()
        self._extra: deque[Job] = deque()
        self._ids = itertools.count()
        self._jobs: dict[int, Job | JudgeJob] = {}

    def __iter__(self) -> RequestFeed:
        return self

    def __next__(self) -> Request:
        if self._judging:
            return self._request(self._judging.popleft())
        if self._retries:
            job = self._retries.popleft()
        elif self._extra:
            job = self._extra.popleft()
        else:
            job = Job(next(self._planned))
        return self._request(job)

    def _request(self, job: Job | JudgeJob) -> Request:
        request_id = next(self._ids)
        self._jobs[request_id] = job
        if isinstance(job, JudgeJob):
            return Request(request_id, self.judge.build(job.record["text"]), JUDGE_PARAMS, 0, set(),
                           self.judge.choices, rows=(job.row.row,))  # fmt: skip
        return Request(request_id, self.builder.build(job.row), self.spec.generation, job.seed(self.spec),
                       self.builder.stop_strings, rows=(job.row.row,))  # fmt: skip

    def job(self, request_id: int) -> Job | JudgeJob:
        """The job of a finished request (each is handed out once)."""
        return self._jobs.pop(request_id)

    def add(self, row: PlannedRow) -> None:
        """Queue a row that was not in the rows given at the start (a replacement)."""
        self._extra.append(Job(row))

    def judge_later(self, row: PlannedRow, record: dict[str, Any]) -> None:
        self._judging.append(JudgeJob(row, record))

    def retry(self, job: Job) -> bool:
        """Queue the job's next attempt; False when its attempts are spent."""
        if job.attempt + 1 >= self.spec.engine.max_attempts:
            return False
        self._retries.append(Job(job.row, job.attempt + 1))
        return True
