"""Settling one finished request: extract -> screen -> judge -> curate -> store; retry or replace what is lost.

A parsed row whose text holds a phrase its label avoids is lost at once. Any other waits for the
judge (when the spec has one): its judge request joins the same engine run, and only a row the
judge gives its own label goes on to curation (dedup, conflicts) and the file. Progress counts
settled plan slots: a row lost to parsing, an avoided phrase, the judge, dedup or a conflict that
gets a replacement row does not advance it (the replacement will).
"""

from __future__ import annotations

import dataclasses
import math
import time

from sdgen.engines.base import Result
from sdgen.errors import EngineError
from sdgen.extract import Extracted, extract, extract_items
from sdgen.plan import PlannedRow
from sdgen.progress import ProgressListener
from sdgen.quality.curate import Curator
from sdgen.quality.judge import JudgeStats
from sdgen.run.feed import Job, JudgeJob, LabelScore, RequestFeed
from sdgen.run.replacements import ReplacementBudget
from sdgen.run.summary import ModelStats
from sdgen.spec import Spec


def token_shares(texts: list[Extracted | None], tokens: int) -> list[float]:
    """A request's generated tokens split over its texts by length (a text that did not parse counts as a mean one)."""
    lengths = [len(t.text) for t in texts if t is not None]
    mean = sum(lengths) / len(lengths) if lengths else 1.0
    weights = [len(t.text) if t is not None else mean for t in texts]
    total = sum(weights) or 1.0
    return [tokens * w / total for w in weights]


class Settle:
    """Called with each result of one model's engine run, in the order results finish."""

    def __init__(self, spec: Spec, feed: RequestFeed, curator: Curator, stats: ModelStats, progress: ProgressListener,
                 judged: JudgeStats | None = None, started: float | None = None, *,
                 budget: ReplacementBudget) -> None:  # fmt: skip
        self.spec, self.feed, self.curator = spec, feed, curator
        self.budget = budget  # the run's, shared by every model's engine run
        self.stats, self.progress, self.judged = stats, progress, judged
        self._tokens: dict[int, float] = {}  # row -> generated tokens its text cost, until it is kept or lost
        self._lost = 0.0
        self.started = time.perf_counter() if started is None else started  # the engine run's start (before its load)

    def __call__(self, result: Result) -> None:
        job = self.feed.job(result.id)
        if isinstance(job, (JudgeJob, LabelScore)):
            self.progress.update(self._judged(job, result), 0)
            return
        self.stats.generated_tokens += result.generated_tokens
        self.stats.attempts += 1
        advanced = 0
        texts = self._texts(job, result.text)
        for row, parsed, tokens in zip(job.rows, texts, token_shares(texts, result.generated_tokens)):
            if not job.takes(row) or parsed is None:  # a text no row takes, or one that did not parse: spent
                self._lose(tokens)
            else:
                self._tokens[row.row] = tokens
            if job.takes(row):
                advanced += self._unparseable(job, row) if parsed is None else self._parsed(job, row, parsed)
        if advanced and self.stats.first_row_seconds is None:
            self.stats.first_row_seconds = round(time.perf_counter() - self.started, 3)
        self.progress.update(advanced, result.generated_tokens)

    def _texts(self, job: Job, text: str) -> list[Extracted | None]:
        builder = self.feed.builder
        raw = builder.group_prefix() + text
        if builder.numbered:
            return extract_items(raw, job.rows)
        return [extract(raw, job.rows[0], reasoning=self.spec.wants_reasoning)]

    def _parsed(self, job: Job, row: PlannedRow, parsed: Extracted) -> int:
        record = {
            "text": parsed.text, "label": row.label, "category": row.category, "type": row.type,
            "model": row.model, "reasoning": parsed.reasoning, "row": row.row, "seed": job.seed(self.spec),
            "source": "generated",  # written only with mix_real (the writers drop columns a run does not have)
        }  # fmt: skip
        self.stats.rows += 1
        lost = self.curator.screen(record)
        if lost is not None:
            return 1 - self._replace(lost)
        if self.judged is not None:
            self.feed.judge_later(row, record)
            return 0
        return self._curate(record)

    def _curate(self, record: dict) -> int:
        return 1 - self._replace(self.curator.offer(record))

    def _judged(self, job: JudgeJob | LabelScore, result: Result) -> int:
        """A judge request's answer: the row's verdict, or 0 while a judge that scores each label awaits the rest."""
        self.judged.requests += 1
        self.judged.generated_tokens += result.generated_tokens
        if isinstance(job, JudgeJob):
            return self._verdict(job, result.text.strip(), self._confidence(result))
        if result.logprob is None:
            raise EngineError("judge.prior needs the judge's log-probs, which only the openvino backend reports; "
                              "leave judge.prior out with this backend")  # fmt: skip
        scores = job.job.logprobs
        scores[job.choice] = result.logprob
        if len(scores) < len(self.feed.judge.choices):
            return 0
        return self._verdict(job.job, *self.feed.judge.read(scores))

    def _verdict(self, job: JudgeJob, judged: str, confidence: float | None) -> int:
        """The judge's label for a parsed row: it goes on to curation with the verdict (`steps.judge_verdict`)."""
        record = job.record
        sure = confidence is None or confidence >= self.spec.judge.min_confidence
        agrees = self.judged.record(record["label"], record["model"], judged, sure)
        verdict = {"judged_label": judged, "judge_confidence": None if confidence is None else round(confidence, 4)}
        return self._curate({**record, **verdict, "agrees": agrees})  # flagged, or dropped by the judge step

    def _confidence(self, result: Result) -> float | None:
        """How sure the judge was of its label (None from an engine that gives no log-probs)."""
        if result.logprob is None:
            if self.spec.judge.min_confidence:  # an engine that does not declare its capabilities
                raise EngineError("judge.min_confidence needs the judge's log-probs, which only the openvino "
                                  "backend reports; leave min_confidence out with this backend")  # fmt: skip
            return None
        return math.exp(result.logprob)

    def _unparseable(self, job: Job, row: PlannedRow) -> int:
        """Retry the row alone with a fresh seed in the same engine run; after its last attempt it is lost."""
        if self.feed.retry(job, row):
            return 0
        self.stats.unparseable += 1
        self.curator.unparseable(row.row, row.model)
        return 1 - self._replace([dataclasses.replace(row, unlike_examples=False)])  # lost for no copy (as on resume)

    def _lose(self, tokens: float) -> None:
        self._lost += tokens
        self.stats.lost_tokens = round(self._lost)

    def _replace(self, lost: list[PlannedRow]) -> int:
        """Queue the replacement of each lost row that has one left; return how many were queued."""
        queued = 0
        for row in lost:
            self._lose(self._tokens.pop(row.row, 0.0))
            extra = self.budget.take(row)
            if extra is None:
                self.stats.unreplaced += 1
                continue
            self.feed.add(extra)
            queued += 1
        self.stats.extra_rows += queued
        return queued
