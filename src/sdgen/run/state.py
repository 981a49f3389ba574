"""Where a run starts: fresh (refusing to clobber an earlier run's files), or from what an interrupted run left."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdgen.errors import OutputError
from sdgen.models.registry import ResolvedModel
from sdgen.plan import PlannedRow, cell_of
from sdgen.quality.curate import Lost
from sdgen.run.replacements import ReplacementBudget
from sdgen.run.summary import Summary
from sdgen.spec import Spec
from sdgen.store.files import JUDGE_COLUMNS, check_output, dataset_exists, read_dataset, sidecar
from sdgen.store.runstate import check_resumable, journal_path, manifest_path, read_journal, repair_tail, write_manifest


@dataclass(frozen=True)
class Sidecars:
    """The files a run writes beside its dataset."""

    conflicts: Path
    rejected: Path
    stats: Path
    report: Path

    @classmethod
    def of(cls, output: Path) -> Sidecars:
        return cls(sidecar(output, "conflicts"), sidecar(output, "rejected"), sidecar(output, "stats", ".json"),
                   sidecar(output, "report", ".md"))  # fmt: skip

    def all(self) -> list[Path]:
        return [self.conflicts, self.rejected, self.stats, self.report]


def start_fresh(spec: Spec, models: dict[str, ResolvedModel], backend: str, overwrite: bool) -> None:
    """Refuse to clobber an earlier run's files unless told to; then record this run's manifest."""
    output = spec.output_path
    check_output(output, overwrite=overwrite)
    for path in [*Sidecars.of(output).all(), manifest_path(output), journal_path(output)]:
        if path.exists() and not overwrite:
            raise OutputError(
                f"{path} (from an earlier run to {output.name}) exists; pass --resume to finish that run, "
                "--overwrite to start over, or choose another --output"
            )
        path.unlink(missing_ok=True)  # a stale sidecar of an earlier run must not pass for this run's
    write_manifest(output, spec, models, backend, status="running")


@dataclass
class Resumed:
    """What an interrupted run left: its dataset, its conflicts file and its journal."""

    dataset: Any  # DataFrame
    conflicts: Any | None
    journal: list[dict[str, Any]]
    rejected: Any | None = None

    @classmethod
    def load(cls, spec: Spec, models: dict[str, ResolvedModel], backend: str, columns: list[str]) -> Resumed:
        output = spec.output_path
        check_resumable(output, spec, models, backend)
        sidecars = Sidecars.of(output)
        for path in (output, sidecars.conflicts, sidecars.rejected):
            repair_tail(path)
        if not dataset_exists(output):
            raise OutputError(f"nothing to resume: {output} does not exist (only its manifest); pass --overwrite")
        conflicts = read_dataset(sidecars.conflicts, [*columns, "conflict_with"]) if dataset_exists(sidecars.conflicts) else None
        rejected = read_dataset(sidecars.rejected, [*columns, *JUDGE_COLUMNS]) if dataset_exists(sidecars.rejected) else None
        return cls(read_dataset(output, columns), conflicts, read_journal(journal_path(output)), rejected)

    def pending(self, spec: Spec, plan: list[PlannedRow], summary: Summary, budget: ReplacementBudget,
                lost: Lost) -> list[PlannedRow]:  # fmt: skip
        """The planned rows that no file settles, then the replacements of the ``lost`` rows (what the curator's
        steps found in the files, `Curator.restore`) that no file settles.

        A row is settled once a file holds it: the dataset, the conflicts or rejected file, or the journal.
        Each lost row has its replacement (`sdgen.plan.replacement`) while replacements last.
        """
        for model in lost.unparseable:
            summary.model(model).unparseable += 1
            summary.unparseable += 1
        settled = {int(r) for r in self.dataset["row"]} | lost.rows
        for side in (self.conflicts, self.rejected):
            if side is not None:
                settled |= {int(r) for r in side["row"]}
        settled |= {entry["row"] for entry in self.journal if entry["event"] != "replacement"}  # older sdgens noted those
        planned = {r.row: r for r in plan}
        todo = [r for r in plan if r.row not in settled]
        budget.spent = sum(1 for row in settled if row >= spec.sample_size)
        for row_id in sorted(lost.rows):
            source = planned[row_id % spec.sample_size]  # a replacement keeps its planned row's cell and model
            lost_row = PlannedRow(row_id, source.label, source.category, source.type, source.model, 0,
                                  unlike_examples=row_id in lost.copies)  # fmt: skip
            if row_id + spec.sample_size in settled:  # replaced already: the loss counts, the budget was spent
                budget.lost[cell_of(spec, source.label, source.category)] += 1
                continue
            nxt = budget.take(lost_row)
            if nxt is not None:
                todo.append(nxt)
        return todo
