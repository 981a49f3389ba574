"""A generate run: spec -> plan -> (per model) engine <-> feed -> settle -> files; then finish and report.

    run = Run(spec, backend="openvino")   # resolve models, check or resume the output, open the files
    run.execute()                         # every model in turn: feed its rows, settle each result; then finish

``generate()`` is the library entry point; the CLI and ``sdg()`` call it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sdgen.engines.registry import check_backend, check_capabilities
from sdgen.errors import Interrupted, OutputError, SpecError
from sdgen.hosting import KeptEngines, start_engine
from sdgen.models.resolve import resolve_model
from sdgen.plan import PlannedRow, make_plan, quotas
from sdgen.progress import NullProgress, ProgressListener
from sdgen.prompts import PromptBuilder, detect_mode
from sdgen.quality.curate import Curator, RowBuffer
from sdgen.quality.judge import JudgePrompt, JudgeStats
from sdgen.quality.steps import steps_for
from sdgen.quality.evaluate import check_real_labels, render_eval
from sdgen.quality.evaluate import evaluate as evaluate_dataset
from sdgen.run.feed import RequestFeed, jobs_for
from sdgen.run.finish import count_filled, finish_dataset, mix_in_real, write_report
from sdgen.run.replacements import ReplacementBudget
from sdgen.run.settle import Settle
from sdgen.run.state import Resumed, Sidecars, start_fresh
from sdgen.run.stop import StopRequest
from sdgen.run.summary import Summary
from sdgen.realdata import ExamplePool, SeedSet, read_labelled
from sdgen.spec import Spec, apply_overrides, load_spec
from sdgen.store.files import JUDGE_COLUMNS, columns_for, dataset_exists, open_writer
from sdgen.store.lock import OutputLock
from sdgen.store.runstate import Journal, journal_path, write_manifest


def generate(
    spec_or_path: Spec | str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    backend: str = "openvino",
    progress: ProgressListener | None = None,
    report: bool = True,
    evaluate: str | Path | None = None,
    eval_columns: tuple[str, str] = ("text", "label"),
    engines: KeptEngines | None = None,
    **overrides: Any,
) -> Summary:
    """Run a spec end to end and return its summary.

    ``overrides`` replace spec fields (``rows``, ``model``, ``seed``, ``output``, ``keep_duplicates`` or any
    field name). ``resume`` finishes an interrupted run of the same spec (see docs/resume.md). Besides
    the dataset: ``<stem>.conflicts<ext>`` when texts conflicted across labels, ``<stem>.rejected<ext>``
    for rows the judge gave another label, ``<stem>.stats.json``, ``<stem>.report.md``, and the run state
    (``<stem>.manifest.json``, ``<stem>.journal.jsonl``). ``evaluate``: a real labelled file (columns
    ``eval_columns``) to score the finished dataset against (`sdgen.evaluate`); checked before any row is made.
    ``engines``: keep the engines loaded for the next run (see `KeptEngines`).
    """
    spec = apply_overrides(spec_or_path, **overrides) if isinstance(spec_or_path, Spec) else load_spec(spec_or_path, **overrides)
    if evaluate is not None:
        check_real_labels(Path(evaluate), *eval_columns, list(spec.labels))
    run = Run(spec, backend=backend, progress=progress, overwrite=overwrite, resume=resume, engines=engines)
    summary = run.execute(report=report)
    if evaluate is not None:
        summary.evaluation = evaluate_dataset(summary.output, evaluate, text_col=eval_columns[0], label_col=eval_columns[1])
        if summary.report_file is not None:
            with summary.report_file.open("a", encoding="utf-8") as f:
                f.write("\n" + render_eval(summary.evaluation, heading="##"))
    return summary


class Run:
    """One run of a spec: its plan, its files, and the per-model engine runs that fill them."""

    def __init__(self, spec: Spec, *, backend: str = "openvino", progress: ProgressListener | None = None,
                 overwrite: bool = False, resume: bool = False, engines: KeptEngines | None = None) -> None:  # fmt: skip
        if resume and overwrite:
            raise OutputError("--resume and --overwrite contradict each other: pick one")
        check_backend(backend)
        check_capabilities(spec, backend)  # before any file or model: the judge on a backend without choices, ...
        self.spec, self.backend = spec, backend
        self._start_engine = engines.start if engines is not None else start_engine
        self.progress = progress or NullProgress()
        self.plan = make_plan(spec)
        self.output = spec.output_path
        self.summary = Summary(self.output, len(self.plan), quotas=quotas(spec) if spec.balance.mode == "exact" else {})
        names = list(dict.fromkeys(row.model for row in self.plan))
        self.models = {name: resolve_model(name, base_dir=spec.base_dir) for name in names}  # fail before writing
        if spec.judge.enabled and spec.judge.model is not None:
            raise SpecError("judge.model: the online judge runs on the generating engine for now; "
                            "leave judge.model out (docs/quality.md)")  # fmt: skip
        self.pool = (ExamplePool(spec.real_examples_path, spec.examples_from.text_col, spec.examples_from.label_col,
                                 list(spec.labels), spec.examples_from.per_label, spec.seed, spec.avoided,
                                 spec.examples_from.same_label, spec.examples_from.anchor)
                     if spec.examples_from is not None else None)  # fmt: skip
        source = spec.judge_real_source  # the judge's examples: read before any file is written
        self.judge_real = read_labelled(*source, list(spec.labels)) if source is not None else None
        self.mixed = None
        if spec.mixed_real is not None:  # written at the end, beside the generated rows; never copied by them
            path, text_col, label_col = spec.mixed_real
            self.mixed = SeedSet.load(path, list(spec.labels), text_col, label_col, min_per_label=1).rows
        self.steps = steps_for(spec)  # a label_check file that cannot be read fails here, before any file is written
        self.columns = columns_for(spec)
        self.lock = OutputLock(self.output).acquire()  # one writer per output, until execute() ends
        try:
            self._open(resume, overwrite)
        except BaseException:
            self.lock.release()
            raise

    def _open(self, resume: bool, overwrite: bool) -> None:
        """Start fresh or pick up an interrupted run; open the files and rebuild what the curator knows."""
        spec, backend = self.spec, self.backend
        self.resumed = Resumed.load(spec, self.models, backend, self.columns) if resume else None
        if not resume:
            start_fresh(spec, self.models, backend, overwrite)
        self.curator = self._open_files(overwrite)
        self.summary.quality = self.curator.per_model
        self.curator.reserve([(ex.output, ex.label) for ex in spec.examples], "spec example")  # never copied into the data
        if self.pool is not None:
            self.curator.reserve(self.pool.reserved(), "real example")  # real rows never enter the output
        if self.mixed is not None:
            self.curator.reserve(list(zip(self.mixed["text"], self.mixed["label"])), "real row")
        self.summary.judge = JudgeStats(spec.judge.action) if spec.judge.enabled else None
        self.pending = self.plan
        self.budget = ReplacementBudget(spec)
        if self.resumed is not None:
            lost = self.curator.restore(self.resumed.dataset, self.resumed.conflicts, self.resumed.journal,
                                        self.resumed.rejected)  # fmt: skip
            if self.summary.judge is not None:
                self.summary.judge.restore(self.resumed.dataset, self.resumed.rejected)
            self.pending = self.resumed.pending(spec, self.plan, self.summary, self.budget, lost)

    def _open_files(self, overwrite: bool) -> Curator:
        self.writer = open_writer(self.output, self.columns, overwrite=overwrite, append=self.resumed is not None)
        sidecars = Sidecars.of(self.output)

        def sidecar_writer(path: Path, *extra: str) -> RowBuffer:
            return RowBuffer(lambda: open_writer(path, [*self.columns, *extra], append=dataset_exists(path)))

        return Curator(
            self.spec,
            RowBuffer(lambda: self.writer),
            sidecar_writer(sidecars.conflicts, "conflict_with"),
            Journal(journal_path(self.output)),
            rejected=sidecar_writer(sidecars.rejected, *JUDGE_COLUMNS),
            steps=self.steps,
        )

    def execute(self, *, report: bool = True) -> Summary:
        """Generate every pending row, model by model (one engine at a time), then finish the dataset."""
        try:
            return self._execute(report)
        finally:
            self.lock.release()

    def _execute(self, report: bool) -> Summary:
        t0 = time.perf_counter()
        with StopRequest() as stop:
            try:
                try:
                    for name, rows in self._rows_by_model().items():
                        stop.check()
                        self._generate_with(name, rows, stop)
                finally:
                    self._close_files(t0)  # completed rows are never lost, whatever stopped the run
                stop.check()
                df = finish_dataset(self.spec, self.summary, self.curator)
                if self.mixed is not None:
                    df = mix_in_real(self.spec, self.summary, df, self.mixed)
            except KeyboardInterrupt:  # the dataset is intact: its one rewrite is an atomic rename
                raise Interrupted(self.summary) from None
            finally:
                self.progress.stop()
        write_manifest(self.output, self.spec, self.models, self.backend, status="finished")
        count_filled(self.spec, self.summary, df)
        self.summary.missing_note = self._missing_line()
        self.summary.wall_time = time.perf_counter() - t0
        if report:
            self.summary.report_file = write_report(self.spec, self.summary, df)
        return self.summary

    def _missing_line(self) -> str | None:
        """Why rows are missing, per cell, and what filling them would cost at the pace rows were tried."""
        seconds = sum(m.seconds - m.load_seconds for m in self.summary.per_model.values())
        tried = self.summary.written + sum(self.budget.lost.values())
        return self.budget.missing_line(self.summary.missing, self.summary.planned, self.curator.cells,
                                        tried / seconds if seconds > 0 else 0.0)  # fmt: skip

    def _rows_by_model(self) -> dict[str, list[PlannedRow]]:
        by_model: dict[str, list[PlannedRow]] = {name: [] for name in self.models}
        for row in self.pending:
            by_model[row.model].append(row)
        return by_model

    def _generate_with(self, name: str, rows: list[PlannedRow], stop: StopRequest) -> None:
        """One model's engine run: its rows and their retries and replacements through one engine."""
        stats = self.summary.model(name)
        if not rows:
            return
        t0 = time.perf_counter()
        with self._start_engine(self.backend, self.models[name], self.spec.engine, ray=self.spec.ray) as engine:
            stats.load_seconds = time.perf_counter() - t0
            self.progress.start(len(self.pending), f"{self.spec.name} · {name}")  # rates count from here
            mode = detect_mode(engine.chat_template, engine.render_chat)
            judge = JudgePrompt(self.spec, mode, engine.render_chat, self.judge_real) if self.spec.judge.enabled else None
            builder = PromptBuilder(self.spec, mode, engine.render_chat, self.pool)
            k = self.spec.texts_per_request if builder.numbered else 1  # a base model answers one text at a time
            jobs = jobs_for([r for r in self.plan if r.model == name], rows, k)
            feed = RequestFeed(self.spec, builder, jobs, judge)
            settle = Settle(self.spec, feed, self.curator, stats, self.progress, self.summary.judge,
                            started=t0, budget=self.budget)  # time to first row counts the model load
            results = engine.generate(feed)
            try:
                for result in results:
                    stop.check()  # between rows: nothing half-written
                    settle(result)
            finally:  # at once on an early exit too: the run's requests leave the engine (a pool's workers stop)
                getattr(results, "close", lambda: None)()
            if feed.last_handout is not None:
                stats.tail_seconds = round(time.perf_counter() - feed.last_handout, 3)
            reported = engine.stats()
            for key in ("priming_seconds", "step_seconds", "full_batch_seconds", "prompt_tokens", "cached_prompt_tokens"):
                setattr(stats, key, reported.get(key, 0))
            workers = reported.get("results_by", {})
            if len(workers) > 1 or self.spec.ray is not None:
                stats.workers = dict(workers)
        stats.seconds = time.perf_counter() - t0
        self.summary.unparseable += stats.unparseable
        self.summary.generated_tokens += stats.generated_tokens

    def _close_files(self, t0: float) -> None:
        self.curator.close()
        self.writer.close()
        self.summary.written = self.writer.rows_written + (len(self.resumed.dataset) if self.resumed is not None else 0)
        self.summary.wall_time = time.perf_counter() - t0
        sidecars = Sidecars.of(self.output)
        if sidecars.conflicts.exists():
            self.summary.conflicts_file = sidecars.conflicts
        if dataset_exists(sidecars.rejected):
            self.summary.rejected_file = sidecars.rejected
