"""Settling one finished request: extract the text, curate it (dedup, conflicts), store it; retry or replace what is lost.

Progress counts settled plan slots: a row lost to parsing, dedup or a conflict that gets a
replacement row does not advance it (the replacement will).
"""

from __future__ import annotations

from sdgen.engines.base import Result
from sdgen.extract import extract
from sdgen.plan import Cell, cell_of
from sdgen.progress import ProgressListener
from sdgen.quality.curate import Curator
from sdgen.run.feed import Job, Refill, RequestFeed
from sdgen.run.summary import ModelStats
from sdgen.spec import Spec


class Settle:
    """Called with each result of one model's engine run, in the order results finish."""

    def __init__(self, spec: Spec, feed: RequestFeed, curator: Curator, refill: Refill, stats: ModelStats,
                 progress: ProgressListener) -> None:  # fmt: skip
        self.spec, self.feed, self.curator, self.refill = spec, feed, curator, refill
        self.stats, self.progress = stats, progress

    def __call__(self, result: Result) -> None:
        job = self.feed.job(result.id)
        self.stats.generated_tokens += result.generated_tokens
        self.stats.attempts += 1
        row = job.row
        parsed = extract(self.feed.builder.response_prefix + result.text, row, reasoning=self.spec.wants_reasoning)
        if parsed is None:
            self._unparseable(job, result.generated_tokens)
            return
        record = {
            "text": parsed.text, "label": row.label, "category": row.category, "type": row.type,
            "model": row.model, "reasoning": parsed.reasoning, "row": row.row, "seed": job.seed(self.spec),
        }  # fmt: skip
        self.stats.rows += 1
        lost = self.curator.offer(record)
        self.progress.update(1 - self._replace(lost, row.model), result.generated_tokens)

    def _unparseable(self, job: Job, tokens: int) -> None:
        """Retry with a fresh seed in the same engine run; after the last attempt, count it lost."""
        if self.feed.retry(job):
            self.progress.update(0, tokens)
            return
        row = job.row
        self.stats.unparseable += 1
        self.curator.unparseable(row.row, row.model)
        replaced = self._replace([cell_of(self.spec, row.label, row.category)], row.model)
        self.progress.update(1 - replaced, tokens)

    def _replace(self, cells: list[Cell], model: str) -> int:
        """Queue a replacement row per lost cell while the model's budget lasts; return how many were queued."""
        queued = 0
        for cell in cells:
            if (extra := self.refill.take(cell, model)) is not None:
                self.curator.replacement(extra.row, cell, model)
                self.feed.add(extra)
                queued += 1
        self.stats.extra_rows += queued
        return queued
