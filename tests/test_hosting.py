"""Engines in worker processes: same results as in-process, restarts, a killed worker, errors."""

import os
import signal

import pytest

from sdgen.engines import Request
from sdgen.hosting import start_engine
from sdgen.hosting.pool import WorkerPool
from sdgen.errors import ModelError
from sdgen.models import resolve_model
from sdgen.spec import EngineOptions, GenerationParams

SAMPLING = GenerationParams(max_new_tokens=10, temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0)
OPTIONS = EngineOptions(threads=2, max_num_seqs=4, max_num_batched_tokens=256, dtype="fp32")  # batch-invariant


def texts(engine, n: int, on_result=None) -> dict[int, str]:
    prompt = engine.render_chat([{"role": "user", "content": "Write a review."}])
    out: dict[int, str] = {}
    for result in engine.generate(Request(i, prompt, SAMPLING, seed=500 + i) for i in range(n)):
        assert result.id not in out, f"request {result.id} answered twice"
        out[result.id] = result.text
        if on_result:
            on_result(engine, len(out))
    return out


@pytest.fixture(scope="module")
def reference(tiny_models):
    with start_engine("openvino", resolve_model(str(tiny_models["chat"])), OPTIONS.model_copy(update={"process": False})) as eng:
        return texts(eng, 40)


def test_engines_run_in_a_worker_process_by_default(tiny_models, reference):
    with start_engine("openvino", resolve_model(str(tiny_models["chat"])), OPTIONS) as eng:
        assert isinstance(eng, WorkerPool)
        (worker,) = eng.workers
        assert worker.pid != os.getpid() and "<|im_start|>" in eng.chat_template
        assert texts(eng, 40) == reference


def test_a_killed_worker_loses_nothing_and_its_rows_are_redone(tiny_models, reference, capfd):
    killed = []

    def kill_once(engine, done):
        if done == 12 and not killed:
            killed.append(engine.workers[0].pid)
            os.kill(killed[0], signal.SIGKILL)

    with start_engine("openvino", resolve_model(str(tiny_models["chat"])), OPTIONS) as eng:
        got = texts(eng, 40, kill_once)  # asserts that no request is answered twice
        assert eng.workers[0].pid != killed[0]
    assert sorted(got) == list(range(40))  # every request answered, in-flight ones by the new worker
    assert got == reference  # fp32 rows do not depend on which rows share their batch
    assert "killed by signal 9; re-queued its" in capfd.readouterr().err


def test_a_worker_that_keeps_dying_is_an_engine_error(tiny_models):
    from sdgen.errors import EngineError

    def kill(engine, done):
        if done % 5 == 0:
            os.kill(engine.workers[0].pid, signal.SIGKILL)

    with start_engine("openvino", resolve_model(str(tiny_models["chat"])), OPTIONS) as eng:
        with pytest.raises(EngineError, match="killed by signal 9; no engine workers left"):
            texts(eng, 40, kill)


def test_load_errors_cross_the_process_boundary_as_one_line(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelError, match=r"could not load model .*bad\.gguf") as info:
        start_engine("openvino", resolve_model(str(bad)), OPTIONS)
    assert "\n" not in str(info.value)
