"""The interface of a quality step: one decision on one parsed row.

A step looks at a `Candidate` and either lets it pass (None) or drops it (`Drop`, with the reason: the
phrase it held, the label it reads as, the kind of duplicate). The curator does the rest the same way for
every step: it counts the drop per model and reason, writes the row where the drop says (by default
nowhere but the journal, under the step's ``name``), and a resumed run counts the drops again from what
the files hold (`Step.restore`). A dropped row is replaced like any other lost row.

Steps run in chain order (`sdgen.quality.steps.CHAIN`); those with ``after_judge`` see only rows the judge
(when the spec has one) passed, and are told of every row the dataset keeps (`Step.kept`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from sdgen.plan import PlannedRow
    from sdgen.spec import Spec


@dataclass(frozen=True, slots=True)
class Candidate:
    """A parsed row as a step sees it."""

    row: int
    text: str
    label: str
    category: str
    type: str
    model: str
    agrees: bool | None = None  # the judge's verdict, once it has judged the row (None: not judged)
    judged: str | None = None  # the label the judge gave it

    @classmethod
    def of(cls, record: dict[str, Any]) -> Candidate:
        return cls(int(record["row"]), record["text"], record["label"], record["category"], record["type"],
                   record["model"], record.get("agrees"), record.get("judged_label"))  # fmt: skip

    def planned(self) -> PlannedRow:
        """The plan entry it was written for (its seed aside: a replacement draws its own)."""
        from sdgen.plan import PlannedRow

        return PlannedRow(self.row, self.label, self.category, self.type, self.model, 0)


@dataclass(frozen=True, slots=True)
class Drop:
    """A step's verdict against a row: why it goes (a short phrase, counted per reason) and what becomes of it."""

    reason: str
    to: Literal["dataset", "conflicts", "rejected"] | None = None  # the file that holds it (None: only the journal)
    columns: Mapping[str, Any] = field(default_factory=dict)  # written with it there (duplicate_of, conflict_with)
    stays: bool = False  # it is kept in the dataset too and not replaced (a conflict under ``conflicts: keep``)
    # earlier kept rows it makes drops too (the other side of a conflict): counted, and unless it stays, they leave
    # the dataset with it and are replaced
    others: tuple[PlannedRow, ...] = ()


@dataclass(frozen=True, slots=True)
class Restored:
    """A drop an interrupted run's files hold: counted again on resume."""

    row: int
    model: str
    reason: str
    leaves: bool = False  # a dataset row that leaves it when the run ends (the earlier side of a conflict)


@dataclass(frozen=True)
class Written:
    """What an interrupted run's files hold, for `Step.restore`."""

    kept: list[dict[str, Any]]  # dataset rows that count (not flagged duplicates)
    flagged: list[dict[str, Any]]  # dataset rows flagged by ``keep_duplicates``
    conflicts: list[dict[str, Any]]
    journal: list[dict[str, Any]]
    rejected: list[dict[str, Any]]


class Step(ABC):
    """One quality check. ``from_spec`` gives None when the spec does not ask for it."""

    name: ClassVar[str]  # its journal event and its key in the quality counts
    title: ClassVar[str]  # completes "rows dropped and replaced ..." (or "and not replaced") in the summary and report
    unlike_examples: ClassVar[bool] = False  # the replacement of a row it drops is asked not to repeat the examples
    after_judge: ClassVar[bool] = False  # decides on the judge's verdict or against the rows kept so far
    reported_apart: ClassVar[bool] = False  # the summary and the report show its counts in lines of their own
    replaces_drops: ClassVar[bool] = True  # a row it drops is lost and replaced (False: it is only counted)

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: Spec) -> Step | None: ...

    @abstractmethod
    def decide(self, row: Candidate) -> Drop | None:
        """None: the row passes this step."""

    def reserve(self, texts: list[tuple[str, str]], kind: str) -> None:
        """Texts (text, label) no generated row may repeat: the spec's examples ("spec example"), the real rows
        the prompts show ("real example") or the dataset mixes in ("real row"). Most steps ignore them."""

    def kept(self, row: Candidate) -> None:
        """The row passed every step and is in the dataset (steps that compare with kept rows remember it)."""

    def left(self, row: PlannedRow) -> None:
        """A row the dataset kept leaves it (the earlier side of a conflict under ``conflicts: separate``)."""

    def restore(self, written: Written) -> Iterator[Restored]:
        """Rebuild this step's state from an interrupted run's files; yield each drop they hold.
        By default: the journal entries under the step's name."""
        for entry in written.journal:
            if entry["event"] == self.name:
                yield Restored(entry["row"], entry["model"], entry.get("reason", entry.get("phrase", "?")))  # older: phrase
