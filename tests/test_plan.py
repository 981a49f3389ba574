from collections import Counter

from sdgen.plan import derive_seed, make_plan, plan_row, retry_seed
from sdgen.spec import build_spec

from conftest import base_spec


def spec(**changes):
    return build_spec(base_spec(**changes))


def test_same_spec_and_seed_give_same_plan():
    assert make_plan(spec(sample_size=50)) == make_plan(spec(sample_size=50))


def test_different_seed_gives_different_plan():
    assert make_plan(spec(sample_size=50, seed=1)) != make_plan(spec(sample_size=50, seed=2))


def test_rows_do_not_depend_on_sample_size():
    short, long = make_plan(spec(sample_size=10)), make_plan(spec(sample_size=37))
    assert long[:10] == short
    assert plan_row(spec(sample_size=37), 23) == long[23]


def test_every_row_has_its_own_seed_and_valid_fields():
    s = spec(sample_size=500)
    plan = make_plan(s)
    assert [r.row for r in plan] == list(range(500))
    assert len({r.seed for r in plan}) == 500
    for r in plan:
        assert r.label in s.labels and r.type in s.categories[r.category]
        assert 0 <= r.seed < 2**31


def test_labels_and_types_are_all_used_roughly_uniformly():
    plan = make_plan(spec(sample_size=4000))
    labels = Counter(r.label for r in plan)
    assert set(labels) == {"polite", "somewhat polite", "neutral", "impolite"}
    assert min(labels.values()) > 850  # 1000 expected each
    assert len({(r.category, r.type) for r in plan}) == 4


def test_model_weights():
    plan = make_plan(spec(sample_size=3000, models=[{"name": "a", "weight": 3}, {"name": "b", "weight": 1}]))
    share = Counter(r.model for r in plan)["a"] / 3000
    assert 0.71 < share < 0.79


def test_retry_seeds_differ_from_planned_seed():
    s = spec(sample_size=5)
    row = make_plan(s)[3]
    assert retry_seed(s, 3, 0) == row.seed
    assert len({retry_seed(s, 3, a) for a in range(5)}) == 5
    assert derive_seed(1, "x") != derive_seed(2, "x")


def _jobs(n: int, k: int = 4, **fields):
    from sdgen.run.feed import jobs_for

    plan = make_plan(spec(sample_size=n, prompt_style="fewshot", rows_per_request=k, **fields))
    return {job.rows[0].row: job for job in jobs_for(plan, plan, k)}


def test_a_shorter_run_asks_its_groups_with_the_requests_of_a_longer_one():
    """With several texts per request, a run of n rows makes the same requests (width, seed, first rows) as the
    first groups of a longer run, so `-n 100` gives the texts of the first 100 rows of `-n 300`: at every run size
    the width of a group follows its plan position only."""
    for n, longer in [(70, 80), (100, 300), (150, 1024)]:
        short, long = _jobs(n), _jobs(longer)
        assert any(len(job.rows) < job.width for job in short.values())  # the shorter plan leaves groups short
        for first, job in short.items():
            full = long[first]
            assert job.width == full.width and job.seed(spec(sample_size=n)) == full.seed(spec(sample_size=longer))
            assert full.rows[: len(job.rows)] == job.rows


def test_request_width_ramps_up_with_plan_position():
    """The first plan positions are asked one text per request, then two, then the full width: the first wave of
    requests finishes early and a small run still has requests enough to fill the batch."""
    from sdgen.plan import PAIRED_ROWS, SINGLE_ROWS

    jobs = _jobs(1024, categories={"a": ["x"]}, examples=[], labels={"p": "", "q": ""})  # two buckets: groups fill up
    widths = {first: job.width for first, job in jobs.items()}
    assert all(w == 1 for first, w in widths.items() if first < SINGLE_ROWS)
    assert {w for first, w in widths.items() if SINGLE_ROWS <= first < PAIRED_ROWS} == {2}
    assert {w for first, w in widths.items() if first >= PAIRED_ROWS + 8} == {4}
    assert sorted(r.row for job in jobs.values() for r in job.rows) == list(range(1024))  # each row once
    assert all(len(job.rows) == job.width for first, job in jobs.items() if first < 1000)
    assert len(_jobs(64)) > 64 // 4  # a 64-row run is not cut into 16 wide requests
    assert {job.width for job in _jobs(300, k=1).values()} == {1}  # rows_per_request 1 stays 1


def test_a_request_stops_after_the_last_item_a_row_takes():
    """A group the run leaves short (or a resumed group) asks for its full width, so its items read as in the longer
    run, but stops where the item after its last taken row would start: no tokens on items nobody reads."""
    from sdgen.run.feed import Job

    rows = tuple(make_plan(spec(sample_size=4))[:2])
    short = Job(rows, width=4)
    assert short.last_item == 2
    assert Job(rows, width=4, todo=frozenset({rows[0].row})).last_item == 1
    assert Job(rows, width=4, todo=frozenset({rows[1].row})).last_item == 2


def test_the_replacement_budget_goes_where_rows_are_lost_in_any_order():
    """One budget of replacements x sample_size extra rows for the run: a cell that keeps losing rows draws on it
    (a lost replacement is replaced again) until it is spent; while it lasts, the replacements do not depend on the
    order rows were lost in; a planned row gives up after 12 replacements in a row, or twice the budget's
    replacements per planned row where that is more (a hard cell's streaks, where screens pass few rows)."""
    import dataclasses

    from sdgen.run.replacements import ReplacementBudget

    spec = build_spec({"task": "t", "labels": ["a", "b"], "categories": {"c": ["x"]}, "sample_size": 10,
                       "balance": {"mode": "exact", "replacements": 1}})  # fmt: skip
    plan = {r.row: r for r in make_plan(spec)}
    a_rows = [r for r in plan.values() if r.label == "a"]
    budget, lost, chain = ReplacementBudget(spec), a_rows[0], []
    while (lost := budget.take(lost)) is not None:  # the same cell loses every row: it takes the whole budget
        chain.append(lost.row)
    assert chain == [a_rows[0].row + 10 * g for g in range(1, 11)] and budget.exhausted
    assert budget.missing_line(1, 10, Counter({("a",): 4, ("b",): 5}), 2.0).startswith(
        "1 of 10 rows missing: a lost 11 of 15 rows (73%); the replacement budget ran out (balance.replacements 1 x 10 "
        "rows = 10 extra rows, all used); filling them would take about 4 more rows, about 2 s")  # fmt: skip

    losses = [plan[0], plan[3], plan[7], dataclasses.replace(plan[3], row=13), dataclasses.replace(plan[3], row=23)]
    forward, backward = ReplacementBudget(spec), ReplacementBudget(spec)
    assert {forward.take(r).row for r in losses} == {backward.take(r).row for r in reversed(losses)}

    for replacements, streak in ((4, 12), (20, 40)):
        deep = build_spec({**spec.model_dump(exclude={"base_dir"}), "balance": {"replacements": replacements}})
        budget, lost, depth = ReplacementBudget(deep), plan[0], 0
        while (lost := budget.take(lost)) is not None:
            depth += 1
        assert depth == streak and not budget.exhausted  # 4 x 10 and 20 x 10 extra rows: the streak ends first
        line = budget.missing_line(1, 10, Counter(), 1.0)
        assert f"their planned rows were lost {streak + 1} times in a row" in line
