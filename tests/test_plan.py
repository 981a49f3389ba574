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


def test_a_shorter_run_asks_its_groups_with_the_requests_of_a_longer_one():
    """With several texts per request, a run of 10 rows makes the same requests (width, seed, first rows) as the
    first groups of a run of 60, so `-n 10` gives the texts of the first 10 rows of `-n 60`."""
    from sdgen.run.feed import jobs_for

    def jobs(n):
        plan = make_plan(spec(sample_size=n, prompt_style="fewshot", rows_per_request=4))
        return {job.rows[0].row: job for job in jobs_for(plan, plan, 4)}

    short, long = jobs(10), jobs(60)
    assert any(len(job.rows) < 4 for job in short.values())  # the 10-row plan leaves some groups short
    for first, job in short.items():
        full = long[first]
        assert job.width == full.width == 4 and job.seed(spec(sample_size=10)) == full.seed(spec(sample_size=60))
        assert full.rows[: len(job.rows)] == job.rows
