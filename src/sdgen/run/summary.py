"""What a run did: counts per model, quality counts, quotas; returned by `generate` and saved as stats.json."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdgen.plan import Cell
from sdgen.quality.curate import QualityCounts
from sdgen.quality.evaluate import EvalReport
from sdgen.quality.judge import JudgeStats
from sdgen.spec import Spec
from sdgen.timing import timing_text


@dataclass
class ModelStats:
    rows: int = 0  # parsed rows (before curation)
    unparseable: int = 0
    generated_tokens: int = 0
    lost_tokens: int = 0  # generated tokens spent on texts that never reached the dataset (by text length share)
    attempts: int = 0
    extra_rows: int = 0  # replacement rows scheduled for lost rows
    unreplaced: int = 0  # lost rows whose planned row had used its replacements
    seconds: float = 0.0  # load + generation
    load_seconds: float = 0.0
    first_row_seconds: float | None = None  # from the engine's start (load included) to the first row settled
    tail_seconds: float = 0.0  # after the last request went in: the engine ran a shrinking batch
    # from the engine (OpenVINO; 0 from engines that do not report steps)
    priming_seconds: float = 0.0  # the first request's prefill, alone, so the others find the shared prefix cached
    step_seconds: float = 0.0  # all scheduler steps
    full_batch_seconds: float = 0.0  # steps that ran at least 90% of the sequences in flight
    prompt_tokens: int = 0  # of every request the engine ran
    cached_prompt_tokens: int = 0  # of those, served from the prefix cache (estimated in whole KV blocks)
    workers: dict[str, int] = field(default_factory=dict)  # results per engine worker, when there are several


@dataclass
class Summary:
    """What a run did; returned by `generate` and printed by the CLI."""

    output: Path
    planned: int
    written: int = 0  # generated rows in the final dataset
    real_rows: int = 0  # real rows written beside them (mix_real)
    unparseable: int = 0
    generated_tokens: int = 0
    wall_time: float = 0.0
    per_model: dict[str, ModelStats] = field(default_factory=dict)
    quality: dict[str, QualityCounts] = field(default_factory=dict)
    quotas: dict[Cell, int] = field(default_factory=dict)  # balance: exact only
    filled: dict[Cell, int] = field(default_factory=dict)  # rows per quota cell in the final dataset
    judge: JudgeStats | None = None
    missing_note: str | None = None  # one line: why the dataset has fewer rows than planned
    conflicts_file: Path | None = None
    rejected_file: Path | None = None
    report_file: Path | None = None
    finalize_seconds: float = 0.0  # moving conflicts out, rewriting the dataset
    evaluation: EvalReport | None = None  # `generate(..., evaluate=REAL)`: the dataset scored against real data

    def model(self, name: str) -> ModelStats:
        return self.per_model.setdefault(name, ModelStats())

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.wall_time if self.wall_time else 0.0

    def timing_line(self) -> str:
        """Where the time and tokens went (`sdgen.timing.timing_text`)."""
        return timing_text(dataclasses.asdict(m) for m in self.per_model.values())

    @property
    def lost_tokens(self) -> int:
        """Generated tokens spent on texts that did not reach the dataset (unparseable or dropped)."""
        return sum(m.lost_tokens for m in self.per_model.values())

    @property
    def lost_share(self) -> float:
        return self.lost_tokens / self.generated_tokens if self.generated_tokens else 0.0

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

    def screened(self, step: str) -> Counter:
        """Rows a quality step dropped, per reason (`sdgen.quality.steps`; "avoided": per phrase)."""
        found: Counter = Counter()
        for q in self.quality.values():
            found.update(q.screened.get(step, {}))
        return found

    @property
    def avoided(self) -> Counter:
        """Rows dropped for a phrase their label avoids, per phrase."""
        return self.screened("avoided")

    @property
    def missing(self) -> int:
        """Rows the dataset lacks against the spec's sample_size (flagged duplicates aside)."""
        return max(self.planned - self.written, 0)

    @property
    def shortfall(self) -> dict[Cell, int]:
        return {cell: quota - self.filled.get(cell, 0) for cell, quota in self.quotas.items() if self.filled.get(cell, 0) < quota}

    def stats(self, spec: Spec) -> dict[str, Any]:
        """The run's figures as JSON-ready data (``<stem>.stats.json``, read back by `sdgen report`)."""
        per_model = {}
        for name, stats in self.per_model.items():
            quality = self.quality.get(name)
            per_model[name] = {**dataclasses.asdict(stats), **({"quality": quality.to_json()} if quality else {})}
        return {
            "name": spec.name,
            "output": str(self.output),
            "planned": self.planned,
            "written": self.written,
            "unparseable": self.unparseable,
            "generated_tokens": self.generated_tokens,
            "lost_tokens": self.lost_tokens,
            "wall_time": round(self.wall_time, 3),
            "finalize_seconds": round(self.finalize_seconds, 3),
            "balance": spec.balance.model_dump(),
            "dedup": spec.dedup.model_dump(),
            "quotas": [{"cell": list(cell), "quota": q, "filled": self.filled.get(cell, 0)} for cell, q in self.quotas.items()],
            "per_model": per_model,
            "judge": self.judge.stats(spec) if self.judge is not None else None,
            "missing": self.missing,
            "missing_note": self.missing_note,
            "conflicts_file": str(self.conflicts_file) if self.conflicts_file else None,
            "rejected_file": str(self.rejected_file) if self.rejected_file else None,
        }
