"""Deterministic sample plan: every row's label, category, type, model and rng seed from one run seed.

With ``balance: random`` each row is derived from ``(run seed, row id)`` alone, so row ``i`` is
the same whatever the sample size. With ``balance: exact`` the quota cells (label, or label x
category) are dealt out exactly and shuffled by the run seed. Either way any subset of rows can be
rebuilt without the others.

A row that is lost (unparseable after its attempts, a duplicate, a conflict, rejected by the judge)
is replaced by row ``id + sample_size``: the same label, category, type and model with a seed of its
own (and a lost replacement by ``id + 2 x sample_size``, ...), while the run's budget of
``balance.replacements x sample_size`` extra rows lasts (`sdgen.run.replacements`). Which row replaces
a lost one is thus a function of the lost row alone, not of the order losses happened in, which is what
lets ``--resume`` rebuild them from the files.
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
    # a replacement of a row lost as a copy of an example: its request says not to repeat the examples, so it does
    # not copy the same one again (a new seed alone did: one row copied the same example three times)
    unlike_examples: bool = False


def derive_seed(run_seed: int, *parts: object) -> int:
    """A stable 31-bit seed from the run seed and any parts (row id, attempt, purpose)."""
    key = ":".join(str(p) for p in (run_seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") & _SEED_MASK


Cell = tuple[str, ...]
"""A quota cell: ``(label,)`` or ``(label, category)``."""


def plan_row(spec: Spec, row: int, cell: Cell | None = None, model: str | None = None) -> PlannedRow:
    """The plan entry for one row id (label uniform or by ``balance.shares``, uniform category then type, weighted
    model).

    ``cell`` fixes the label (and category), ``model`` the model; the other draws are unchanged.
    """
    rng = random.Random(derive_seed(spec.seed, "plan", row))
    labels = list(spec.labels)
    categories = list(spec.categories)
    shares = spec.balance.shares
    if shares is None:
        label = labels[rng.randrange(len(labels))]
    else:
        label = rng.choices(labels, [shares[name] for name in labels])[0]
    category = categories[rng.randrange(len(categories))]
    if cell is not None:
        label = cell[0]
        category = cell[1] if len(cell) > 1 else category
    types = spec.categories[category]
    type_ = types[rng.randrange(len(types))]
    names = [m.name for m in spec.models]
    drawn = names[0] if len(names) == 1 else rng.choices(names, weights=[m.weight for m in spec.models])[0]
    return PlannedRow(row, label, category, type_, model or drawn, derive_seed(spec.seed, "sample", row, 0))


def cell_of(spec: Spec, label: str, category: str) -> Cell:
    return (label, category) if spec.balance.by == "label_category" else (label,)


def quotas(spec: Spec) -> dict[Cell, int]:
    """Rows per cell under ``balance: exact``: an even split, the remainder to the first cells in spec order; with
    ``balance.shares``, each label's share (split evenly over its categories), the remainder to the largest
    fractions."""
    if spec.balance.by == "label_category":
        cells = [(label, category) for label in spec.labels for category in spec.categories]
    else:
        cells = [(label,) for label in spec.labels]
    shares = spec.balance.shares
    if shares is None:
        base, extra = divmod(spec.sample_size, len(cells))
        return {cell: base + (i < extra) for i, cell in enumerate(cells)}
    total = sum(shares[cell[0]] for cell in cells)
    exact = {cell: spec.sample_size * shares[cell[0]] / total for cell in cells}
    counts = {cell: int(value) for cell, value in exact.items()}
    by_fraction = sorted(cells, key=lambda c: (-(exact[c] - counts[c]), cells.index(c)))
    for cell in by_fraction[: spec.sample_size - sum(counts.values())]:
        counts[cell] += 1
    return counts


def make_plan(spec: Spec) -> list[PlannedRow]:
    """The plan for rows ``0 .. sample_size-1``."""
    if spec.balance.mode != "exact":
        return [plan_row(spec, row) for row in range(spec.sample_size)]
    deal = [cell for cell, count in quotas(spec).items() for _ in range(count)]
    random.Random(derive_seed(spec.seed, "balance")).shuffle(deal)
    return [plan_row(spec, row, cell) for row, cell in enumerate(deal)]


def replacement(spec: Spec, lost: PlannedRow) -> PlannedRow:
    """The row that takes a lost row's place (whether it gets one is the run's budget: `sdgen.run.replacements`)."""
    new = lost.row + spec.sample_size
    return PlannedRow(new, lost.label, lost.category, lost.type, lost.model, derive_seed(spec.seed, "sample", new, 0),
                      unlike_examples=lost.unlike_examples)


def generation(spec: Spec, row: int) -> int:
    """0 for a planned row, n for its n-th replacement."""
    return row // spec.sample_size


# The first rows of every plan are asked narrow, so the engine's first wave finishes after one text's worth of
# tokens (first rows early) and a small run has enough requests to fill the batch; wider requests, which share
# their prompt over more rows, follow once the plan has rows to spare. A function of plan positions only (not of
# the run's size, the machine or timing), so that resume and `-n` prefixes ask the same requests.
# A run of up to 64 rows asks exactly what `rows_per_request: 1` asks: it cannot fill the engine (32-128
# sequences in flight) with wider requests, and pairs there were no faster than singles (docs/benchmarks.md).
SINGLE_ROWS = 64  # plan positions 0..63: one text per request
PAIRED_ROWS = 128  # positions 64..127: two texts per request; later ones the full width


def width_at(position: int, full: int) -> int:
    """Texts asked for by a request whose first row sits at plan position ``position``, for a full width ``full``."""
    if position < SINGLE_ROWS:
        return 1
    if position < PAIRED_ROWS:
        return min(2, full)
    return full


def request_groups(plan: list[PlannedRow], k: int) -> list[tuple[tuple[PlannedRow, ...], int]]:
    """The plan cut into requests that share label, category, type and model, each with its width: up to ``k``
    rows (``rows_per_request``), narrower at the start of the plan (`width_at`).

    Rows are bucketed by that key in plan order; a bucket's next group takes the width of its first row's
    position, and closes when it has that many rows. A group is thus a function of the plan prefix up to it: a
    shorter run asks its groups with the same width and seed as a longer one (a group it leaves short stops
    after its last row's text), and a resumed run asks the same groups again and takes only the items of the
    rows no file settles yet.
    """
    if k == 1:
        return [((row,), 1) for row in plan]
    open_: dict[tuple[str, str, str, str], tuple[list[PlannedRow], int]] = {}
    groups: list[tuple[tuple[PlannedRow, ...], int]] = []
    for row in plan:
        key = (row.label, row.category, row.type, row.model)
        if key not in open_:
            open_[key] = ([], width_at(row.row, k))
        rows, width = open_[key]
        rows.append(row)
        if len(rows) == width:
            groups.append((tuple(rows), width))
            del open_[key]
    groups += [(tuple(rows), width) for rows, width in open_.values()]
    return sorted(groups, key=lambda g: g[0][0].row)


def group_seed(spec: Spec, group: tuple[PlannedRow, ...]) -> int:
    """A planned group request's seed, from its first row only: a group the plan leaves short (a run of fewer rows)
    gets the same seed as the full group of a longer run, and so the same texts for the rows it has."""
    return derive_seed(spec.seed, "group", group[0].row)


def retry_seed(spec: Spec, row: int, attempt: int) -> int:
    """Seed for a row's n-th attempt (attempt 0 is the planned seed)."""
    return derive_seed(spec.seed, "sample", row, attempt)
