"""The generate pipeline: spec -> plan -> prompts -> engine -> extraction -> rows on disk."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from sdgen.engines.base import Engine, Request, check_backend, load_engine
from sdgen.errors import Interrupted
from sdgen.extract import extract
from sdgen.models import resolve_model
from sdgen.plan import PlannedRow, make_plan, retry_seed
from sdgen.progress import NullProgress, ProgressListener
from sdgen.prompts import PromptBuilder, detect_mode
from sdgen.quality import text_digest
from sdgen.sinks import Writer, dataset_columns, open_writer
from sdgen.spec import Spec, apply_overrides, load_spec


@dataclass
class ModelStats:
    rows: int = 0
    unparseable: int = 0
    exact_duplicates: int = 0
    generated_tokens: int = 0
    attempts: int = 0
    seconds: float = 0.0  # load + generation
    load_seconds: float = 0.0


@dataclass
class Summary:
    """What a run did; returned by `generate` and printed by the CLI."""

    output: Path
    planned: int
    written: int = 0
    unparseable: int = 0
    exact_duplicates: int = 0
    generated_tokens: int = 0
    wall_time: float = 0.0
    per_model: dict[str, ModelStats] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.wall_time if self.wall_time else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.written / self.wall_time if self.wall_time else 0.0


class _RowSink:
    """Buffers parsed rows, flushes every batch_size rows, and keeps the counts."""

    def __init__(self, writer: Writer, batch_size: int, summary: Summary) -> None:
        self.writer = writer
        self.batch_size = batch_size
        self.summary = summary
        self._buffer: list[dict[str, Any]] = []
        self._seen: set[bytes] = set()

    def add(self, record: dict[str, Any], stats: ModelStats) -> None:
        key = text_digest(record["text"])  # 16 bytes, not the text: a 1M-row index stays ~100 MB
        if key in self._seen:
            stats.exact_duplicates += 1
            self.summary.exact_duplicates += 1
        self._seen.add(key)
        self._buffer.append(record)
        stats.rows += 1
        self.summary.written += 1
        if len(self._buffer) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        self.writer.write(self._buffer)
        self._buffer = []


class RequestFeed:
    """The requests of one engine run: planned rows first-come, and retries queued while results come back.

    Retries join the running batch instead of a second pass, so the engine never idles on a tail
    of a few retried rows. Engines pull with ``next()`` and try again after each result they hand
    out, so StopIteration here means "nothing now", not "never".
    """

    def __init__(self, spec: Spec, builder: PromptBuilder, rows: Iterable[PlannedRow]) -> None:
        self.spec, self.builder = spec, builder
        self._planned = iter(rows)
        self._retries: deque[Request] = deque()
        self.attempt: dict[int, int] = {}
        self.rows: dict[int, PlannedRow] = {}

    def __iter__(self) -> RequestFeed:
        return self

    def __next__(self) -> Request:
        if self._retries:
            return self._retries.popleft()
        row = next(self._planned)
        self.rows[row.row] = row
        self.attempt[row.row] = 0
        return self._request(row, row.seed)

    def seed(self, row_id: int) -> int:
        attempt = self.attempt[row_id]
        return self.rows[row_id].seed if attempt == 0 else retry_seed(self.spec, row_id, attempt)

    def retry(self, row_id: int) -> bool:
        """Queue the row's next attempt; False when its attempts are spent."""
        if self.attempt[row_id] + 1 >= self.spec.engine.max_attempts:
            return False
        self.attempt[row_id] += 1
        self._retries.append(self._request(self.rows[row_id], self.seed(row_id)))
        return True

    def done(self, row_id: int) -> PlannedRow:
        del self.attempt[row_id]
        return self.rows.pop(row_id)

    def _request(self, row: PlannedRow, seed: int) -> Request:
        return Request(row.row, self.builder.build(row), self.spec.generation, seed, self.builder.stop_strings)


def _run_model(
    spec: Spec, engine: Engine, rows: list[PlannedRow], sink: _RowSink, stats: ModelStats, progress: ProgressListener
) -> None:
    """Generate every row of one model; an unparseable row is retried with a fresh seed in the same run."""
    mode = detect_mode(engine.chat_template, engine.render_chat)
    builder = PromptBuilder(spec, mode, engine.render_chat)
    feed = RequestFeed(spec, builder, rows)
    for result in engine.generate(feed):
        row = feed.rows[result.id]
        stats.generated_tokens += result.generated_tokens
        stats.attempts += 1
        parsed = extract(builder.response_prefix + result.text, row, reasoning=spec.wants_reasoning)
        if parsed is None:
            if not feed.retry(row.row):
                feed.done(row.row)
                stats.unparseable += 1
                progress.update(1, result.generated_tokens)
            else:
                progress.update(0, result.generated_tokens)
            continue
        record = {
            "text": parsed.text, "label": row.label, "category": row.category, "type": row.type,
            "model": row.model, "reasoning": parsed.reasoning, "row": row.row, "seed": feed.seed(row.row),
        }  # fmt: skip
        feed.done(row.row)
        sink.add(record, stats)
        progress.update(1, result.generated_tokens)


def generate(
    spec_or_path: Spec | str | Path,
    *,
    overwrite: bool = False,
    backend: str = "openvino",
    progress: ProgressListener | None = None,
    **overrides: Any,
) -> Summary:
    """Run a spec end to end and return its summary.

    ``overrides`` replace spec fields (``rows``, ``model``, ``seed``, ``output`` or any field name).
    """
    if isinstance(spec_or_path, Spec):
        spec = apply_overrides(spec_or_path, **overrides)
    else:
        spec = load_spec(spec_or_path, **overrides)
    check_backend(backend)
    progress = progress or NullProgress()
    plan = make_plan(spec)
    summary = Summary(output=spec.output_path, planned=len(plan))
    by_model: dict[str, list[PlannedRow]] = defaultdict(list)
    for row in plan:
        by_model[row.model].append(row)
    models = {name: resolve_model(name, base_dir=spec.base_dir) for name in by_model}  # fail before writing
    t0 = time.perf_counter()
    writer = open_writer(spec.output_path, dataset_columns(spec.wants_reasoning), overwrite=overwrite)
    sink = _RowSink(writer, spec.batch_size, summary)
    try:
        for name, rows in by_model.items():
            stats = summary.per_model.setdefault(name, ModelStats())
            t_model = time.perf_counter()
            with load_engine(backend, models[name], spec.engine) as engine:  # one engine at a time
                stats.load_seconds = time.perf_counter() - t_model
                progress.start(len(plan), f"{spec.name} · {name}")  # rates count from here, not from loading
                _run_model(spec, engine, rows, sink, stats, progress)
            stats.seconds = time.perf_counter() - t_model
            summary.unparseable += stats.unparseable
            summary.generated_tokens += stats.generated_tokens
    except KeyboardInterrupt:
        raise Interrupted(summary) from None
    finally:
        sink.flush()  # completed rows are never lost, whatever stopped the run
        writer.close()
        progress.stop()
        summary.wall_time = time.perf_counter() - t0
    return summary
