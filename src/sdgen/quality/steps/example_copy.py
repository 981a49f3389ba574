"""A row that repeats a text the run must never write is dropped: a spec example, a real example the prompts show,
a real row mixed into the dataset. Repeats means equal after normalising case, spacing and punctuation, nearly
equal (MinHash, the dedup threshold), or holding one of five words or more whole, whatever the labels. Its
replacement is asked not to repeat the examples (`Step.unlike_examples`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdgen.quality.index import TextIndex, Verdict
from sdgen.quality.steps.base import Candidate, Drop, Step

if TYPE_CHECKING:
    from sdgen.spec import DedupOptions, Spec


class ExampleCopy(Step):
    name = "example"
    title = "as copies of a spec or real example"
    unlike_examples = True

    def __init__(self, options: DedupOptions) -> None:
        self.index = TextIndex(near=options.near, threshold=options.threshold, shingle_size=options.shingle_size,
                               num_perm=options.num_perm)  # fmt: skip
        self.kinds: list[str] = []  # what each reserved text is; it takes row id -(its position + 1)

    @classmethod
    def from_spec(cls, spec: Spec) -> ExampleCopy | None:
        return cls(spec.dedup) if spec.dedup.enabled else None  # dedup: false checks nothing against anything

    def reserve(self, texts: list[tuple[str, str]], kind: str) -> None:
        for text, label in texts:
            self.kinds.append(kind)
            self.index.reserve(-len(self.kinds), text, label)

    def decide(self, row: Candidate) -> Drop | None:
        check = self.index.check(row.row, row.text, row.label)
        self.index.discard(row.row)
        if check.verdict is Verdict.UNIQUE:
            return None
        return Drop(self.kinds[-check.match - 1])
