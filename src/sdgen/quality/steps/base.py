"""The interface of a quality step: one decision on one parsed row, before the judge and the dedup index.

A step looks at a `Candidate` and either lets it pass (None) or drops it (`Drop`, with the reason: the
phrase it held, the label it reads as). The curator does the rest the same way for every step: it counts
the drop per model and reason, writes the step's journal event (its ``name``), and a resumed run counts
those events again. A dropped row is replaced like any other lost row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
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

    @classmethod
    def of(cls, record: dict[str, Any]) -> Candidate:
        return cls(int(record["row"]), record["text"], record["label"], record["category"], record["type"], record["model"])


@dataclass(frozen=True, slots=True)
class Drop:
    """A step's verdict against a row: why it goes (a short phrase, counted per reason)."""

    reason: str


class Step(ABC):
    """One quality check. ``from_spec`` gives None when the spec does not ask for it."""

    name: ClassVar[str]  # its journal event and its key in the quality counts
    title: ClassVar[str]  # completes "rows dropped and replaced ..." in the summary and the report
    unlike_examples: ClassVar[bool] = False  # the replacement of a row it drops is asked not to repeat the examples

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: Spec) -> Step | None: ...

    @abstractmethod
    def decide(self, row: Candidate) -> Drop | None:
        """None: the row passes this step."""

    def reserve(self, texts: list[tuple[str, str]], kind: str) -> None:
        """Texts (text, label) no generated row may repeat: the spec's examples ("spec example"), the real rows
        the prompts show ("real example") or the dataset mixes in ("real row"). Most steps ignore them."""
