"""The engine contract: what each backend declares it can do, checked against the spec before a run, and static
batches that never mix sampling parameters."""

from __future__ import annotations

import pytest

import sdgen
from sdgen.engines import Engine, Request, register_engine
from sdgen.engines.base import CHOICES, COUNT_TOKENS, LOGPROBS, PER_REQUEST_SAMPLING, batches_of_equal_sampling
from sdgen.engines.registry import capabilities_of
from sdgen.errors import SpecError
from sdgen.spec import GenerationParams

from conftest import cli_error, shop_spec


class Declared(Engine):
    """Declares per-request sampling only, like the torch backend; fails if it is ever loaded."""

    capabilities = frozenset({PER_REQUEST_SAMPLING})
    chat_template = None

    def __init__(self, model, options) -> None:
        raise AssertionError("the spec check must come before any model is loaded")

    def render_chat(self, messages):
        raise AssertionError

    def generate(self, requests):
        raise AssertionError


register_engine("declared", Declared)


def test_the_backends_declare_what_they_can_do():
    assert capabilities_of("openvino") == {PER_REQUEST_SAMPLING, CHOICES, LOGPROBS, COUNT_TOKENS}
    assert capabilities_of("torch") == {PER_REQUEST_SAMPLING} == capabilities_of("ipex")


@pytest.mark.parametrize(("judge", "expected"), [
    (True, "judge needs constrained choices; the declared backend has none: use --backend openvino, or leave judge out"),
    ({"min_confidence": 0.7}, "judge needs constrained choices"),
])  # fmt: skip
def test_a_spec_the_backend_cannot_serve_fails_before_the_run(tmp_path, judge, expected):
    spec = sdgen.build_spec(shop_spec(tmp_path, judge=judge), base_dir=tmp_path)
    with pytest.raises(SpecError, match=expected):
        sdgen.generate(spec, backend="declared")
    assert not (tmp_path / "out.csv").exists()


def test_min_confidence_needs_log_probs(tmp_path, capsys, monkeypatch):
    register_engine("choices-only", type("ChoicesOnly", (Declared,), {"capabilities": frozenset({CHOICES})}))
    import yaml

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(shop_spec(tmp_path, judge={"min_confidence": 0.7})))
    line = cli_error(capsys, monkeypatch, "generate", spec, "--backend", "choices-only")
    assert "judge.min_confidence needs log-probs; the choices-only backend has none" in line


def test_static_batches_never_mix_sampling_parameters():
    four, one = GenerationParams(max_new_tokens=512), GenerationParams(max_new_tokens=128)
    requests = [Request(i, "p", p, i) for i, p in enumerate([four, four, one, four, four, four, one, one])]
    batches = [[r.id for r in b] for b in batches_of_equal_sampling(requests, 2)]
    assert batches == [[0, 1], [2], [3, 4], [5], [6, 7]]
    assert all(all(requests[i].params == requests[b[0]].params for i in b) for b in batches)


def test_static_batches_pull_a_growing_feed():
    params = GenerationParams()
    queue = [Request(0, "p", params, 0)]

    class Feed:
        def __iter__(self):
            return self

        def __next__(self):
            if not queue:
                raise StopIteration
            return queue.pop(0)

    seen = []
    for batch in batches_of_equal_sampling(Feed(), 4):
        seen.append([r.id for r in batch])
        if len(seen) == 1:
            queue.append(Request(1, "p", params, 1))  # a retry queued while the first batch was out
    assert seen == [[0], [1]]
