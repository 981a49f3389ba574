"""The generate pipeline: spec -> plan -> prompts -> engine -> extraction -> rows on disk."""

from __future__ import annotations

import re
import time
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from sdgen.engines.base import Engine, Request, check_backend, load_engine
from sdgen.errors import Interrupted
from sdgen.extract import extract
from sdgen.models import resolve_model
from sdgen.plan import PlannedRow, make_plan, retry_seed
from sdgen.progress import NullProgress, ProgressListener
from sdgen.prompts import PromptBuilder, detect_mode
from sdgen.sinks import Writer, dataset_columns, open_writer
from sdgen.spec import Spec, apply_overrides, load_spec


@dataclass
class ModelStats:
    rows: int = 0
    unparseable: int = 0
    exact_duplicates: int = 0
    generated_tokens: int = 0
    attempts: int = 0
    seconds: float = 0.0


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


def normalize_text(text: str) -> str:
    """The key for exact-duplicate detection: case, accents' composition, spacing and punctuation folded."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


class _RowSink:
    """Buffers parsed rows, flushes every batch_size rows, and keeps the counts."""

    def __init__(self, writer: Writer, batch_size: int, summary: Summary) -> None:
        self.writer = writer
        self.batch_size = batch_size
        self.summary = summary
        self._buffer: list[dict[str, Any]] = []
        self._seen: set[str] = set()

    def add(self, record: dict[str, Any], stats: ModelStats) -> None:
        key = normalize_text(record["text"])
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


def _requests(spec: Spec, builder: PromptBuilder, rows: list[PlannedRow], attempt: int) -> Iterator[Request]:
    stops = builder.stop_strings
    for row in rows:
        seed = row.seed if attempt == 0 else retry_seed(spec, row.row, attempt)
        yield Request(row.row, builder.build(row), spec.generation, seed, stops)


def _run_model(
    spec: Spec, engine: Engine, rows: list[PlannedRow], sink: _RowSink, stats: ModelStats, progress: ProgressListener
) -> None:
    """Generate every row of one model, retrying unparseable rows with fresh seeds."""
    mode = detect_mode(engine.chat_template, engine.render_chat)
    builder = PromptBuilder(spec, mode, engine.render_chat)
    by_id = {row.row: row for row in rows}
    todo = rows
    for attempt in range(spec.engine.max_attempts):
        failed: list[PlannedRow] = []
        last = attempt == spec.engine.max_attempts - 1
        for result in engine.generate(_requests(spec, builder, todo, attempt)):
            row = by_id[result.id]
            stats.generated_tokens += result.generated_tokens
            stats.attempts += 1
            parsed = extract(builder.response_prefix + result.text, row, reasoning=spec.wants_reasoning)
            if parsed is None:
                failed.append(row)
                progress.update(1 if last else 0, result.generated_tokens)
                continue
            record = {
                "text": parsed.text, "label": row.label, "category": row.category, "type": row.type,
                "model": row.model, "reasoning": parsed.reasoning, "row": row.row,
                "seed": row.seed if attempt == 0 else retry_seed(spec, row.row, attempt),
            }  # fmt: skip
            sink.add(record, stats)
            progress.update(1, result.generated_tokens)
        todo = failed
        if not todo:
            break
    stats.unparseable = len(todo)


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
            progress.start(len(plan), f"{spec.name} · {name}")
            t_model = time.perf_counter()
            with load_engine(backend, models[name], spec.engine) as engine:  # one engine at a time
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
