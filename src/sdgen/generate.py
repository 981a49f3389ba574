"""The generate pipeline: spec -> plan -> prompts -> engine -> extraction -> rows on disk."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from sdgen.engines.base import Engine, Request, check_backend, load_engine
from sdgen.curate import Curator, QualityCounts, RowBuffer
from sdgen.errors import Interrupted, OutputError
from sdgen.extract import extract
from sdgen.models import resolve_model
from sdgen.plan import Cell, PlannedRow, cell_of, make_plan, plan_row, quotas, retry_seed
from sdgen.progress import NullProgress, ProgressListener
from sdgen.prompts import PromptBuilder, detect_mode
from sdgen.runstate import (
    Journal, check_resumable, journal_path, manifest_path, read_journal, repair_tail, write_manifest,
)  # fmt: skip
from sdgen.sinks import (
    check_output, dataset_columns, dataset_exists, open_writer, read_dataset, replace_dataset, sidecar,
)  # fmt: skip
from sdgen.spec import Spec, apply_overrides, load_spec
from sdgen.verify import Verification, classify


@dataclass
class ModelStats:
    rows: int = 0  # parsed rows (before curation)
    unparseable: int = 0
    generated_tokens: int = 0
    attempts: int = 0
    extra_rows: int = 0  # replacement rows scheduled for quota cells (balance: exact)
    seconds: float = 0.0  # load + generation
    load_seconds: float = 0.0
    workers: dict[str, int] = field(default_factory=dict)  # results per engine worker, when there are several


@dataclass
class Summary:
    """What a run did; returned by `generate` and printed by the CLI."""

    output: Path
    planned: int
    written: int = 0  # rows in the final dataset
    unparseable: int = 0
    generated_tokens: int = 0
    wall_time: float = 0.0
    per_model: dict[str, ModelStats] = field(default_factory=dict)
    quality: dict[str, QualityCounts] = field(default_factory=dict)
    quotas: dict[Cell, int] = field(default_factory=dict)  # balance: exact only
    filled: dict[Cell, int] = field(default_factory=dict)  # rows per quota cell in the final dataset
    verification: Verification | None = None
    conflicts_file: Path | None = None
    rejected_file: Path | None = None
    report_file: Path | None = None
    finalize_seconds: float = 0.0  # moving conflicts out, rewriting the dataset (verification excluded)

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.wall_time if self.wall_time else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.written / self.wall_time if self.wall_time else 0.0

    @property
    def exact_duplicates(self) -> int:
        return sum(q.exact_duplicates for q in self.quality.values())

    @property
    def near_duplicates(self) -> int:
        return sum(q.near_duplicates for q in self.quality.values())

    @property
    def conflicts(self) -> int:
        return sum(q.conflicts for q in self.quality.values())

    @property
    def shortfall(self) -> dict[Cell, int]:
        return {cell: quota - self.filled.get(cell, 0) for cell, quota in self.quotas.items() if self.filled.get(cell, 0) < quota}


class RequestFeed:
    """The requests of one engine run: planned rows first-come, and retries queued while results come back.

    Retries join the running batch instead of a second pass, so the engine never idles on a tail
    of a few retried rows. Engines pull with ``next()`` and try again after each result they hand
    out, so StopIteration here means "nothing now", not "never".
    """

    def __init__(self, spec: Spec, builder: PromptBuilder, rows: Iterable[PlannedRow]) -> None:
        self.spec, self.builder = spec, builder
        self._planned = iter(rows)
        self._extra: deque[PlannedRow] = deque()
        self._retries: deque[Request] = deque()
        self.attempt: dict[int, int] = {}
        self.rows: dict[int, PlannedRow] = {}

    def __iter__(self) -> RequestFeed:
        return self

    def __next__(self) -> Request:
        if self._retries:
            return self._retries.popleft()
        row = self._extra.popleft() if self._extra else next(self._planned)
        self.rows[row.row] = row
        self.attempt[row.row] = 0
        return self._request(row, row.seed)

    def add(self, row: PlannedRow) -> None:
        """Queue a row that was not in the plan given at the start (a quota replacement)."""
        self._extra.append(row)

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


class Refill:
    """Schedules replacement rows for quota cells that lost rows (``balance: exact``), within a budget per model."""

    def __init__(self, spec: Spec, plan: list[PlannedRow]) -> None:
        self.spec = spec
        planned = Counter(row.model for row in plan)
        exact = spec.balance.mode == "exact"
        self.budgets = {m: math.ceil(spec.balance.extra_budget * n) if exact else 0 for m, n in planned.items()}
        self.used: dict[str, int] = {}
        self._next = spec.sample_size  # replacement ids follow the plan's

    def skip_to(self, next_id: int) -> None:
        """Continue numbering after the ids an interrupted run already used."""
        self._next = max(self._next, next_id)

    def take(self, cell: Cell, model: str) -> PlannedRow | None:
        """A new row for ``cell`` on ``model``, or None when the model's budget is spent."""
        if self.used.get(model, 0) >= self.budgets.get(model, 0):
            return None
        self.used[model] = self.used.get(model, 0) + 1
        self._next += 1
        return plan_row(self.spec, self._next - 1, cell, model)


def _run_model(
    spec: Spec,
    engine: Engine,
    rows: list[PlannedRow],
    curator: Curator,
    refill: Refill,
    stats: ModelStats,
    progress: ProgressListener,
    stop: StopRequest | None = None,
) -> None:
    """Generate every row of one model; an unparseable row is retried with a fresh seed in the same run.

    Progress counts settled plan slots: a lost row that gets a replacement does not advance it.
    """
    mode = detect_mode(engine.chat_template, engine.render_chat)
    builder = PromptBuilder(spec, mode, engine.render_chat)
    feed = RequestFeed(spec, builder, rows)

    def replace(cells: list[Cell], model: str) -> int:
        """Queue a replacement per lost cell while the budget lasts; return how many were queued."""
        queued = 0
        for cell in cells:
            if (extra := refill.take(cell, model)) is not None:
                curator.replacement(extra.row, cell, model)
                feed.add(extra)
                queued += 1
        stats.extra_rows += queued
        return queued

    for result in engine.generate(feed):
        if stop is not None:
            stop.check()  # between rows: nothing half-written
        row = feed.rows[result.id]
        stats.generated_tokens += result.generated_tokens
        stats.attempts += 1
        parsed = extract(builder.response_prefix + result.text, row, reasoning=spec.wants_reasoning)
        if parsed is None:
            if feed.retry(row.row):
                progress.update(0, result.generated_tokens)
            else:
                feed.done(row.row)
                stats.unparseable += 1
                curator.unparseable(row.row, row.model)
                replaced = replace([cell_of(spec, row.label, row.category)], row.model)
                progress.update(1 - replaced, result.generated_tokens)
            continue
        record = {
            "text": parsed.text, "label": row.label, "category": row.category, "type": row.type,
            "model": row.model, "reasoning": parsed.reasoning, "row": row.row, "seed": feed.seed(row.row),
        }  # fmt: skip
        feed.done(row.row)
        stats.rows += 1
        replaced = replace(curator.offer(record), row.model)
        # +1 for this row's slot, -1 per replacement queued (its own slot, or an earlier row's that was pulled out)
        progress.update(1 - replaced, result.generated_tokens)


def generate(
    spec_or_path: Spec | str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    backend: str = "openvino",
    progress: ProgressListener | None = None,
    report: bool = True,
    **overrides: Any,
) -> Summary:
    """Run a spec end to end and return its summary.

    ``overrides`` replace spec fields (``rows``, ``model``, ``seed``, ``output``, ``keep_duplicates`` or any
    field name). ``resume`` finishes an interrupted run of the same spec (see `sdgen.runstate`). Besides
    the dataset: ``<stem>.conflicts<ext>`` when texts conflicted across labels, ``<stem>.rejected<ext>``
    when verification dropped rows, ``<stem>.stats.json``, ``<stem>.report.md``, and the run state
    (``<stem>.manifest.json``, ``<stem>.journal.jsonl``).
    """
    if isinstance(spec_or_path, Spec):
        spec = apply_overrides(spec_or_path, **overrides)
    else:
        spec = load_spec(spec_or_path, **overrides)
    if resume and overwrite:
        raise OutputError("--resume and --overwrite contradict each other: pick one")
    check_backend(backend)
    progress = progress or NullProgress()
    plan = make_plan(spec)
    output = spec.output_path
    summary = Summary(output=output, planned=len(plan), quotas=quotas(spec) if spec.balance.mode == "exact" else {})
    names = list(dict.fromkeys(row.model for row in plan))
    models = {name: resolve_model(name, base_dir=spec.base_dir) for name in names}  # fail before writing
    verifier = resolve_model(spec.verify.model, base_dir=spec.base_dir) if spec.verify else None
    sidecars = {kind: sidecar(output, kind) for kind in ("conflicts", "rejected")}
    sidecars |= {"stats": sidecar(output, "stats", ".json"), "report": sidecar(output, "report", ".md")}
    columns = dataset_columns(spec.wants_reasoning, spec.dedup.keep_duplicates)
    if resume:
        state = _resume_state(spec, models, backend, sidecars, columns)
    else:
        _start_fresh(spec, models, backend, sidecars, overwrite)
        state = None
    t0 = time.perf_counter()
    writer = open_writer(output, columns, overwrite=overwrite, append=resume)
    conflicts_path = sidecars["conflicts"]
    curator = Curator(
        spec,
        RowBuffer(lambda: writer),
        RowBuffer(lambda: open_writer(conflicts_path, [*columns, "conflict_with"], append=dataset_exists(conflicts_path))),
        Journal(journal_path(output)),
    )
    summary.quality = curator.per_model
    refill = Refill(spec, plan)
    pending = plan
    if state is not None:
        curator.restore(state.dataset, state.conflicts, state.journal)
        pending = _pending_rows(spec, plan, state, refill, summary)
    by_model: dict[str, list[PlannedRow]] = {name: [] for name in names}
    for row in pending:
        by_model[row.model].append(row)
    with StopRequest() as stop:
        try:
            try:
                for name, rows in by_model.items():
                    stop.check()
                    _run_model_rows(spec, backend, models[name], name, rows, curator, refill, summary, progress, len(pending), stop)
            finally:
                curator.close()  # completed rows are never lost, whatever stopped the run
                writer.close()
                summary.written = writer.rows_written + (len(state.dataset) if state is not None else 0)
                summary.wall_time = time.perf_counter() - t0
                if conflicts_path.exists():
                    summary.conflicts_file = conflicts_path
            stop.check()
            df = _finish_dataset(spec, summary, curator, verifier, backend, sidecars, progress, stop)
        except KeyboardInterrupt:  # the dataset is intact: its one rewrite is an atomic rename
            raise Interrupted(summary) from None
        finally:
            progress.stop()
    write_manifest(output, spec, models, backend, status="finished")
    summary.wall_time = time.perf_counter() - t0
    if report:
        from sdgen.report import write_report

        summary.report_file = write_report(output, df, summary, spec)
    return summary


def _run_model_rows(
    spec: Spec, backend: str, model, name: str, rows: list[PlannedRow], curator: Curator, refill: Refill,
    summary: Summary, progress: ProgressListener, total: int, stop: StopRequest,
) -> None:  # fmt: skip
    stats = summary.per_model.setdefault(name, ModelStats())
    if not rows:
        return
    t_model = time.perf_counter()
    with load_engine(backend, model, spec.engine, spec.ray) as engine:  # one engine at a time
        stats.load_seconds = time.perf_counter() - t_model
        progress.start(total, f"{spec.name} · {name}")  # rates count from here, not from loading
        _run_model(spec, engine, rows, curator, refill, stats, progress, stop)
        by_worker = getattr(engine, "results_by", {})
        if len(by_worker) > 1 or spec.ray is not None:
            stats.workers = dict(by_worker)
    stats.seconds = time.perf_counter() - t_model
    summary.unparseable += stats.unparseable
    summary.generated_tokens += stats.generated_tokens


def _start_fresh(spec: Spec, models: dict, backend: str, sidecars: dict[str, Path], overwrite: bool) -> None:
    """Refuse to clobber an earlier run's files unless told to; then record this run's manifest."""
    output = spec.output_path
    check_output(output, overwrite=overwrite)
    state_files = [manifest_path(output), journal_path(output)]
    for path in [*sidecars.values(), *state_files]:
        if path.exists() and not overwrite:
            raise OutputError(
                f"{path} (from an earlier run to {output.name}) exists; pass --resume to finish that run, "
                "--overwrite to start over, or choose another --output"
            )
        path.unlink(missing_ok=True)  # a stale sidecar of an earlier run must not pass for this run's
    write_manifest(output, spec, models, backend, status="running")


@dataclass
class _ResumeState:
    dataset: Any  # DataFrame
    conflicts: Any | None
    journal: list[dict[str, Any]]


def _resume_state(spec: Spec, models: dict, backend: str, sidecars: dict[str, Path], columns: list[str]) -> _ResumeState:
    output = spec.output_path
    check_resumable(output, spec, models, backend)
    for path in (output, sidecars["conflicts"]):
        repair_tail(path)
    if not dataset_exists(output):
        raise OutputError(f"nothing to resume: {output} does not exist (only its manifest); pass --overwrite")
    dataset = read_dataset(output, columns)
    conflicts_path = sidecars["conflicts"]
    conflicts = read_dataset(conflicts_path, [*columns, "conflict_with"]) if dataset_exists(conflicts_path) else None
    return _ResumeState(dataset, conflicts, read_journal(journal_path(output)))


def _pending_rows(spec: Spec, plan: list[PlannedRow], state: _ResumeState, refill: Refill, summary: Summary):
    """The planned and replacement rows that no file says are done, in plan order."""
    settled = {int(r) for r in state.dataset["row"]}
    if state.conflicts is not None:
        settled |= {int(r) for r in state.conflicts["row"]}
    replacements: dict[int, PlannedRow] = {}
    for entry in state.journal:
        if entry["event"] == "replacement":
            replacements[entry["row"]] = plan_row(spec, entry["row"], tuple(entry["cell"]), entry["model"])
            refill.used[entry["model"]] = refill.used.get(entry["model"], 0) + 1
        else:
            settled.add(entry["row"])
            if entry["event"] == "unparseable":
                summary.per_model.setdefault(entry["model"], ModelStats()).unparseable += 1
                summary.unparseable += 1
    refill.skip_to(max([spec.sample_size - 1, *settled, *replacements]) + 1)
    return [r for r in plan if r.row not in settled] + [r for i, r in sorted(replacements.items()) if i not in settled]


class StopRequest:
    """Ctrl-C and SIGTERM ask the run to stop at the next row boundary, never in the middle of a write.

    A second signal stops at once (the files are still consistent: each flush is appended whole or
    cut off as a torn tail that ``--resume`` repairs).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt


def _finish_dataset(
    spec: Spec, summary: Summary, curator: Curator, verifier, backend: str, sidecars: dict[str, Path],
    progress: ProgressListener, stop: StopRequest,
):  # fmt: skip
    """Move the earlier sides of conflicts out, verify labels, and rewrite the dataset once (atomically).

    Returns the final dataset as a DataFrame (the report reads it), or None when nothing needed a rewrite.
    """
    t0 = time.perf_counter()
    if not curator.pulled and verifier is None:
        return None
    df = read_dataset(summary.output, dataset_columns(spec.wants_reasoning, spec.dedup.keep_duplicates))
    if curator.pulled:
        pulled = df["row"].isin(list(curator.pulled))
        earlier = df[pulled].assign(conflict_with=df.loc[pulled, "row"].map(curator.pulled).astype("Int64"))
        _append(sidecars["conflicts"], earlier)
        if spec.dedup.conflicts == "separate":
            df = df[~pulled].reset_index(drop=True)
    if verifier is not None:
        df = _verify(spec, summary, df, verifier, backend, sidecars["rejected"], progress, stop)
    replace_dataset(df, summary.output)
    summary.written = len(df)
    verifying = summary.verification.seconds + summary.verification.load_seconds if summary.verification else 0.0
    summary.finalize_seconds = time.perf_counter() - t0 - verifying
    return df


def _verify(
    spec: Spec, summary: Summary, df, verifier, backend: str, rejected_path: Path, progress: ProgressListener,
    stop: StopRequest,
):  # fmt: skip
    verification = Verification(model=spec.verify.model, action=spec.verify.action)
    summary.verification = verification
    t0 = time.perf_counter()
    with load_engine(backend, verifier, spec.engine, spec.ray) as engine:
        verification.load_seconds = time.perf_counter() - t0
        progress.start(len(df), f"verify · {spec.verify.model}", new=True)
        verified = classify(spec, engine, df["text"].tolist(), verification, progress, stop.check)
    df = df.assign(verified_label=verified, agrees=[v == label for v, label in zip(verified, df["label"])])
    counted = df["duplicate"].eq("") if "duplicate" in df.columns else df["label"].notna()  # flagged duplicates aside
    for label, model, answer in df.loc[counted, ["label", "model", "verified_label"]].itertuples(index=False):
        verification.record(label, model, answer)
    if spec.verify.action == "drop":
        rejected = df[~df["agrees"]]
        if len(rejected):
            _append(rejected_path, rejected)
            summary.rejected_file = rejected_path
        df = df[df["agrees"]].reset_index(drop=True)
    return df


def _append(path: Path, df) -> None:
    """Append DataFrame rows to a sidecar file (created on first use); rows already there are not repeated."""
    import pandas as pd

    if path.exists():
        existing = read_dataset(path)
        df = pd.concat([existing, df[~df["row"].isin(existing["row"])]], ignore_index=True)
    replace_dataset(df, path)
