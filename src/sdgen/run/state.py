"""Where a run starts: fresh (refusing to clobber an earlier run's files), or from what an interrupted run left."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdgen.errors import OutputError
from sdgen.models.registry import ResolvedModel
from sdgen.plan import PlannedRow, plan_row
from sdgen.run.feed import Refill
from sdgen.run.summary import Summary
from sdgen.spec import Spec
from sdgen.store.files import check_output, dataset_exists, read_dataset, sidecar
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

    @classmethod
    def load(cls, spec: Spec, models: dict[str, ResolvedModel], backend: str, columns: list[str]) -> Resumed:
        output = spec.output_path
        check_resumable(output, spec, models, backend)
        conflicts_path = Sidecars.of(output).conflicts
        for path in (output, conflicts_path):
            repair_tail(path)
        if not dataset_exists(output):
            raise OutputError(f"nothing to resume: {output} does not exist (only its manifest); pass --overwrite")
        conflicts = read_dataset(conflicts_path, [*columns, "conflict_with"]) if dataset_exists(conflicts_path) else None
        return cls(read_dataset(output, columns), conflicts, read_journal(journal_path(output)))

    def pending(self, spec: Spec, plan: list[PlannedRow], refill: Refill, summary: Summary) -> list[PlannedRow]:
        """The planned and replacement rows that no file says are done, in plan order; counts what is done."""
        settled = {int(r) for r in self.dataset["row"]}
        if self.conflicts is not None:
            settled |= {int(r) for r in self.conflicts["row"]}
        replacements: dict[int, PlannedRow] = {}
        for entry in self.journal:
            if entry["event"] == "replacement":
                replacements[entry["row"]] = plan_row(spec, entry["row"], tuple(entry["cell"]), entry["model"])
                refill.used[entry["model"]] += 1
            else:
                settled.add(entry["row"])
                if entry["event"] == "unparseable":
                    summary.model(entry["model"]).unparseable += 1
                    summary.unparseable += 1
        refill.skip_to(max([spec.sample_size - 1, *settled, *replacements]) + 1)
        todo = [r for r in plan if r.row not in settled]
        return todo + [r for i, r in sorted(replacements.items()) if i not in settled]
