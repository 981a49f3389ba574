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
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from sdgen.engines.base import Request
from sdgen.plan import PlannedRow, group_seed, request_groups, retry_seed
from sdgen.prompts import PromptBuilder
from sdgen.quality.judge import JUDGE_PARAMS, JudgePrompt
from sdgen.spec import GenerationParams, Spec


@dataclass(frozen=True, slots=True)
class Job:
    """A request for one text per row of ``rows`` (a group sharing label, category and type, or one row), at its
    n-th attempt. ``todo``: the rows whose texts are taken (a resumed run re-asks a group some of whose rows a
    file already settles); None takes them all."""

    rows: tuple[PlannedRow, ...]
    attempt: int = 0
    todo: frozenset[int] | None = None
    width: int = 1  # texts the prompt asks for (`width_at`), even when the plan leaves the group short

    @property
    def last_item(self) -> int:
        """How many of the answer's items are needed: up to the last row taken (later items are never read)."""
        return max(i for i, row in enumerate(self.rows, 1) if self.takes(row))

    def seed(self, spec: Spec) -> int:
        if self.width > 1:
            return group_seed(spec, self.rows)
        row = self.rows[0]
        return row.seed if self.attempt == 0 else retry_seed(spec, row.row, self.attempt)

    def takes(self, row: PlannedRow) -> bool:
        return self.todo is None or row.row in self.todo


def jobs_for(plan: list[PlannedRow], pending: list[PlannedRow], k: int) -> list[Job]:
    """The requests for the pending rows of one model: groups of the model's full plan (`request_groups`) that
    still have pending rows, then each pending replacement row on its own."""
    todo = {row.row for row in pending}
    jobs = [Job(group, todo=frozenset(r.row for r in group if r.row in todo), width=width) if k > 1 else Job(group)
            for group, width in request_groups(plan, k) if any(r.row in todo for r in group)]  # fmt: skip
    planned = {row.row for row in plan}
    return jobs + [Job((row,)) for row in pending if row.row not in planned]


@dataclass(slots=True)
class JudgeJob:
    """A parsed row waiting for the judge's label."""

    row: PlannedRow
    record: dict[str, Any]
    logprobs: dict[str, float] = field(default_factory=dict)  # a judge that scores each label: those answered so far


@dataclass(frozen=True, slots=True)
class LabelScore:
    """One request of a judge that scores each label: the model's log-probability of ``choice`` for the job's text."""

    job: JudgeJob
    choice: str


class RequestFeed:
    """Jobs in, `Request`s out: judge jobs first (short, and they unblock writing), then retries, then replacement
    rows, then the plan in its order."""

    def __init__(self, spec: Spec, builder: PromptBuilder, jobs: Iterable[Job], judge: JudgePrompt | None = None) -> None:
        self.spec, self.builder, self.judge = spec, builder, judge
        self._avoided = spec.avoided
        self._planned: Iterator[Job] = iter(jobs)
        self._params: dict[int, GenerationParams] = {}
        self._judging: deque[JudgeJob | LabelScore] = deque()
        self._retries: deque[Job] = deque()
        self._extra: deque[Job] = deque()
        self._ids = itertools.count()
        self._jobs: dict[int, Job | JudgeJob | LabelScore] = {}
        self.last_handout: float | None = None  # perf_counter of the last request handed out: the tail starts there

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
            job = next(self._planned)
        return self._request(job)

    def _request(self, job: Job | JudgeJob | LabelScore) -> Request:
        self.last_handout = time.perf_counter()
        request_id = next(self._ids)
        self._jobs[request_id] = job
        if isinstance(job, (JudgeJob, LabelScore)):
            judged, choices = (job, self.judge.choices) if isinstance(job, JudgeJob) else (job.job, (job.choice,))
            return Request(request_id, self.judge.build(judged.record["text"]), JUDGE_PARAMS, 0, set(), choices,
                           rows=(judged.row.row,), label=judged.row.label, prefix="judge")  # fmt: skip
        k = job.width
        # The answer stops after the last item a row takes: the items before it are the same tokens as in the full
        # answer (a group the run leaves short, a resumed group), and no tokens are spent on items nobody reads.
        return Request(request_id, self.builder.build_group(job.rows, k), self._params_for(k), job.seed(self.spec),
                       self.builder.group_stop_strings(job.last_item), rows=tuple(r.row for r in job.rows if job.takes(r)),
                       label=job.rows[0].label, asked=k, prefix=self.builder.prefix_of(job.rows[0].row, job.rows[0].label), avoid=self._avoid_of(job))  # fmt: skip

    def _avoid_of(self, job: Job) -> str | None:
        """The avoided phrases of the request's label: it may stop once its answer holds one. A one-text request's row
        is lost anyway; in a list, the item holding it is, and the items after it, which then never come, are asked
        again one row at a time (as any missing item): the later items of a list whose item was dropped for an
        avoided phrase were dropped 63% of the time, against 11% after kept ones (politeness.yaml, 300 rows)."""
        return self._avoided.pattern(job.rows[0].label)

    def _params_for(self, k: int) -> GenerationParams:
        """The spec's sampling, with room for k texts."""
        if k not in self._params:
            gen = self.spec.generation
            self._params[k] = gen.model_copy(update={"max_new_tokens": min(gen.max_new_tokens * k, 8192)})
        return self._params[k]

    def job(self, request_id: int) -> Job | JudgeJob | LabelScore:
        """The job of a finished request (each is handed out once)."""
        return self._jobs.pop(request_id)

    def add(self, row: PlannedRow) -> None:
        """Queue a row that was not in the rows given at the start (a replacement)."""
        self._extra.append(Job((row,)))

    def judge_later(self, row: PlannedRow, record: dict[str, Any]) -> None:
        job = JudgeJob(row, record)
        self._judging.extend([LabelScore(job, c) for c in self.judge.choices] if self.judge.scores_each else [job])

    def retry(self, job: Job, row: PlannedRow) -> bool:
        """Queue the row's next attempt, on its own; False when its attempts are spent."""
        if job.attempt + 1 >= self.spec.engine.max_attempts:
            return False
        self._retries.append(Job((row,), job.attempt + 1))
        return True
