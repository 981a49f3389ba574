"""Deterministic sample plan: every row's label, category, type, model and rng seed from one run seed.

Each row is derived from ``(run seed, row id)`` alone, so row ``i`` is the same whatever the
sample size, and any subset of rows (a resumed run, a shard) can be rebuilt without the others.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from sdgen.spec import Spec

_SEED_MASK = (1 << 31) - 1  # GenAI takes rng_seed as a size_t; keep it positive and portable.


@dataclass(frozen=True, slots=True)
class PlannedRow:
    row: int
    label: str
    category: str
    type: str
    model: str
    seed: int


def derive_seed(run_seed: int, *parts: object) -> int:
    """A stable 31-bit seed from the run seed and any parts (row id, attempt, purpose)."""
    key = ":".join(str(p) for p in (run_seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") & _SEED_MASK


def plan_row(spec: Spec, row: int) -> PlannedRow:
    """The plan entry for one row id (uniform label, uniform category then type, weighted model)."""
    rng = random.Random(derive_seed(spec.seed, "plan", row))
    labels = list(spec.labels)
    categories = list(spec.categories)
    label = labels[rng.randrange(len(labels))]
    category = categories[rng.randrange(len(categories))]
    types = spec.categories[category]
    type_ = types[rng.randrange(len(types))]
    names = [m.name for m in spec.models]
    model = names[0] if len(names) == 1 else rng.choices(names, weights=[m.weight for m in spec.models])[0]
    return PlannedRow(row, label, category, type_, model, derive_seed(spec.seed, "sample", row, 0))


def make_plan(spec: Spec) -> list[PlannedRow]:
    """The plan for rows ``0 .. sample_size-1``."""
    return [plan_row(spec, row) for row in range(spec.sample_size)]


def retry_seed(spec: Spec, row: int, attempt: int) -> int:
    """Seed for a row's n-th attempt (attempt 0 is the planned seed)."""
    return derive_seed(spec.seed, "sample", row, attempt)
