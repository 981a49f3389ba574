"""The OpenVINO engine on a tiny model: batching, per-request seeds, limits, streaming."""

import pytest
from conftest import check_min_p_keeps_only_the_likeliest_token

from sdgen.engines import Request
from sdgen.hosting import start_engine
from sdgen.models import resolve_model
from sdgen.spec import EngineOptions, GenerationParams

SAMPLING = GenerationParams(max_new_tokens=12, temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0)


@pytest.fixture(scope="module")
def engine(tiny_models):
    # fp32: with bf16, CPUs with AMX pick kernels by batch shape, so a row's sampled tokens can depend on
    # which rows share its batch (see docs/resume.md); these tests check seeds, not kernels.
    options = EngineOptions(threads=2, max_num_seqs=4, max_num_batched_tokens=256, dtype="fp32")
    with start_engine("openvino", resolve_model(str(tiny_models["chat"])), options) as eng:
        yield eng


def run(engine, requests):
    return {r.id: r for r in engine.generate(requests)}


def test_identical_prompts_with_distinct_seeds_give_distinct_texts(engine):
    prompt = engine.render_chat([{"role": "user", "content": "Write a review."}])
    results = run(engine, [Request(i, prompt, SAMPLING, seed=100 + i) for i in range(16)])
    assert sorted(results) == list(range(16))
    assert len({r.text for r in results.values()}) == 16


def test_same_seed_same_text_across_batches(engine):
    prompt = engine.render_chat([{"role": "user", "content": "Write a review."}])
    first = run(engine, [Request(i, prompt, SAMPLING, seed=7) for i in range(4)])
    assert len({r.text for r in first.values()}) == 1  # one seed -> one sample, even in one batch
    again = run(engine, [Request(i, prompt, SAMPLING, seed=7) for i in range(10)])
    assert {r.text for r in again.values()} == {first[0].text}


def test_more_requests_than_window_all_finish_within_token_limit(engine):
    prompt = engine.render_chat([{"role": "user", "content": "Hello"}])
    params = SAMPLING.model_copy(update={"max_new_tokens": 5})
    results = run(engine, (Request(i, prompt, params, seed=i) for i in range(30)))  # a generator, not a list
    assert sorted(results) == list(range(30))
    assert all(1 <= r.generated_tokens <= 5 for r in results.values())
    assert all(r.finish_reason in {"length", "stop"} for r in results.values())


def test_greedy_is_deterministic(engine):
    prompt = engine.render_chat([{"role": "user", "content": "Tell me something."}])
    greedy = SAMPLING.model_copy(update={"temperature": 0.0})
    a = run(engine, [Request(0, prompt, greedy, seed=1)])
    b = run(engine, [Request(0, prompt, greedy, seed=999)])
    assert a[0].text == b[0].text and a[0].generated_tokens > 0


def test_a_choice_request_reports_how_likely_the_model_found_its_answer(engine):
    """The log-probability of a constrained answer comes from the model's own distribution, before the grammar
    masks the other tokens out: forced to one choice, the model still finds it less than certain."""
    prompt = engine.render_chat([{"role": "user", "content": "Pick a word."}])
    greedy = SAMPLING.model_copy(update={"temperature": 0.0, "max_new_tokens": 8})
    choices = ("alpha", "beta", "gamma")
    results = run(engine, [Request(0, prompt, greedy, 0, choices=choices), Request(1, prompt, SAMPLING, seed=1),
                           *(Request(2 + i, prompt, greedy, 0, choices=(c,)) for i, c in enumerate(choices))])  # fmt: skip
    assert results[0].text.strip() in choices and results[0].logprob is not None
    assert results[1].logprob is None  # only choice requests carry one
    forced = {c: results[2 + i].logprob for i, c in enumerate(choices)}
    assert all(results[2 + i].text.strip() == c for i, c in enumerate(choices))
    assert all(lp < -1e-3 for lp in forced.values())  # masked first, each would be log(1) = 0
    assert len(set(forced.values())) == 3


def test_a_choice_is_as_likely_whether_or_not_the_end_token_follows_it(engine):
    """A choice's log-probability is its own tokens': the end token the grammar forces after it is left out (in a
    completion prompt the model expects more text there, and that token's log-prob, about -16 on the 1.5B, drowned
    the label's). Stopped by the token limit right after the choice, it reads the same as ended by the end token."""
    prompt = "Label each text as one of: alpha, beta.\n\nText: a day out\nLabel:"
    greedy = SAMPLING.model_copy(update={"temperature": 0.0, "max_new_tokens": 8})
    for choice in ("alpha", "beta"):
        ended = run(engine, [Request(0, prompt, greedy, 0, choices=(choice,))])[0]
        assert ended.text.strip() == choice and ended.finish_reason == "stop"
        short = greedy.model_copy(update={"max_new_tokens": ended.generated_tokens - 1})  # no room for the end token
        cut = run(engine, [Request(0, prompt, short, 0, choices=(choice,))])[0]
        assert cut.text.strip() == choice and cut.finish_reason == "length"
        assert cut.logprob == pytest.approx(ended.logprob, abs=1e-4)


def test_a_request_stops_generating_at_its_stop_string(engine):
    """The text ends before the stop string, and the request stops there instead of running to its token limit
    (a base model in completion mode never ends on its own: it would write max_new_tokens for every row)."""
    prompt = engine.render_chat([{"role": "user", "content": "Write a long story."}])
    long = SAMPLING.model_copy(update={"max_new_tokens": 40})
    free = run(engine, [Request(0, prompt, long, seed=3)])[0]
    assert free.generated_tokens == 40 and len(free.text) > 30
    third = len(free.text) // 3
    stop = next(free.text[i : i + 3] for i in range(third, len(free.text)) if free.text[i : i + 3].isascii())
    cut = free.text[: free.text.index(stop)]
    stopped = run(engine, [Request(0, prompt, long, seed=3, stop_strings={stop})])[0]
    assert (stopped.text, stopped.finish_reason) == (cut, "stop")
    assert stopped.generated_tokens < 40 - 5  # stopped within a step of writing the stop string


def test_a_one_text_request_stops_once_its_text_holds_an_avoided_phrase(engine):
    """A request carrying its label's avoided phrases stops after the step that completes one (a whole word: the
    character after it is seen), and its text still holds the phrase, so the row is dropped and replaced as before;
    a phrase the text never holds changes nothing."""
    import re

    from sdgen.text import AvoidedPhrases

    prompt = engine.render_chat([{"role": "user", "content": "Write a long story."}])
    long = SAMPLING.model_copy(update={"max_new_tokens": 40})
    free = run(engine, [Request(0, prompt, long, seed=5)])[0]
    words = [m.group(0) for m in re.finditer(r"(?<!\w)[A-Za-z]{3,}(?=\W)", free.text[: len(free.text) // 2])]
    assert words, f"the tiny model wrote no whole word early in {free.text!r}"
    avoided = AvoidedPhrases({"x": [words[0]], "y": ["zzqqxx"]})
    stopped = run(engine, [Request(0, prompt, long, seed=5, avoid=avoided.pattern("x"))])[0]
    assert avoided.found(stopped.text, "x") is not None and free.text.startswith(stopped.text)
    assert stopped.generated_tokens < free.generated_tokens - 5
    untouched = run(engine, [Request(0, prompt, long, seed=5, avoid=avoided.pattern("y"))])[0]
    assert (untouched.text, untouched.generated_tokens) == (free.text, free.generated_tokens)


def test_the_engine_reports_where_its_time_and_prompt_tokens_went(engine):
    """Through the worker process: the last generate()'s priming, step and full-batch seconds, and its prompt tokens,
    of which those the later requests of one prefix share with the first are served from the prefix cache."""
    shared = "You write short product reviews for a shop that sells garden tools and kitchen knives. " * 6
    prompts = [engine.render_chat([{"role": "user", "content": f"{shared}Review item {i}."}]) for i in range(6)]
    expected = sum(engine.count_tokens(p) for p in prompts)
    results = run(engine, [Request(i, p, SAMPLING, seed=i, prefix="shop") for i, p in enumerate(prompts)])
    assert len(results) == 6
    stats = engine.stats()
    assert stats["prompt_tokens"] == expected
    assert 5 * 32 <= stats["cached_prompt_tokens"] < expected  # five requests found the shared prefix computed
    assert stats["priming_seconds"] > 0 and stats["step_seconds"] >= stats["full_batch_seconds"] >= 0
    run(engine, [Request(0, prompts[0], SAMPLING, seed=1)])
    assert engine.stats()["prompt_tokens"] == engine.count_tokens(prompts[0])  # the last generate() only


def test_min_p_keeps_only_tokens_near_the_likeliest(engine):
    check_min_p_keeps_only_the_likeliest_token(engine, SAMPLING)


def test_results_stream_before_all_requests_are_done(engine):
    prompt = engine.render_chat([{"role": "user", "content": "Hi"}])
    short = SAMPLING.model_copy(update={"max_new_tokens": 2})
    fed = []

    def requests():
        for i in range(20):
            fed.append(i)
            yield Request(i, prompt, short, seed=i)

    stream = engine.generate(requests())
    next(stream)
    assert len(fed) < 20  # the first result arrived while later requests were not even built


def test_a_run_left_early_leaves_no_request_in_flight(tiny_models):
    """A consumer that stops reading (an error, Ctrl-C, tune's deadline) closes the run: the requests it left in
    flight leave the pipeline (their handles go with the run, and a dropped handle drops its request), so the next
    run of an engine kept in this process does not step them with its own. (A worker process still running an
    abandoned run is replaced: `WorkerPool`.)"""
    options = EngineOptions(threads=2, max_num_seqs=4, max_num_batched_tokens=256, dtype="fp32", process=False)
    with start_engine("openvino", resolve_model(str(tiny_models["chat"])), options) as engine:
        prompt = engine.render_chat([{"role": "user", "content": "Write a review."}])
        stream = engine.generate(Request(i, prompt, SAMPLING, seed=i) for i in range(12))
        next(stream)
        assert engine._pipe.get_metrics().requests > 0  # the rest of the window still runs
        stream.close()
        for _ in range(2):  # a step frees what no longer runs; its metrics count what the step began with
            engine._pipe.step()
        assert engine._pipe.get_metrics().requests == 0  # left running, 8 would need 12 tokens each
        again = run(engine, [Request(i, prompt, SAMPLING, seed=i) for i in range(4)])
        assert sorted(again) == [0, 1, 2, 3]


def test_requests_stopped_at_their_stop_string_leave_the_pipeline_when_the_run_ends(tiny_models):
    """GenAI frees a stopped request's KV blocks in its next step: a run whose last requests stopped at their stop
    string held them, and closing the pipeline printed "[ERROR] BlockManager leaked sequence block tables"."""
    options = EngineOptions(threads=2, max_num_seqs=4, max_num_batched_tokens=256, dtype="fp32", process=False)
    with start_engine("openvino", resolve_model(str(tiny_models["chat"])), options) as engine:
        prompt = engine.render_chat([{"role": "user", "content": "Write a long story."}])
        long = SAMPLING.model_copy(update={"max_new_tokens": 40})
        free = run(engine, [Request(0, prompt, long, seed=3)])[0]
        stop = next(free.text[i : i + 3] for i in range(len(free.text) // 3, len(free.text))
                    if free.text[i : i + 3].isascii())  # fmt: skip
        stopped = run(engine, [Request(i, prompt, long, seed=3, stop_strings={stop}) for i in range(4)])
        assert {r.finish_reason for r in stopped.values()} == {"stop"}
        assert not engine._pipe.has_non_finished_requests()


def test_requests_sharing_a_prefix_wait_for_its_first_prefill_and_give_the_same_texts(engine):
    """Rows of a group (one draw of real examples) and judge requests name their shared prefix; the engine
    runs each prefix's first request before the others of that prefix join. Texts do not change."""
    heads = {g: f"Group {g}: " + " ".join(f"example {g}.{i} is a fine text." for i in range(40)) for g in range(3)}
    prompts = [engine.render_chat([{"role": "user", "content": heads[i % 3] + f" Write text {i}."}]) for i in range(18)]
    keyed = run(engine, (Request(i, p, SAMPLING, seed=i, prefix=f"g{i % 3}") for i, p in enumerate(prompts)))
    plain = run(engine, [Request(i, p, SAMPLING, seed=i) for i, p in enumerate(prompts)])
    assert sorted(keyed) == list(range(18))
    assert {i: r.text for i, r in keyed.items()} == {i: r.text for i, r in plain.items()}


def test_a_scheduler_that_runs_nothing_is_an_error_not_a_hang(tiny_models):
    """Requests the scheduler never places (a step that schedules nothing returns at once) end the run with an
    error naming the settings, after a count of such steps, instead of spinning for ever."""
    from types import SimpleNamespace

    from sdgen.engines.openvino import _STALLED_STEPS, OpenVINOEngine
    from sdgen.errors import EngineError

    class Stuck:  # the real pipeline, whose steps schedule nothing
        def __init__(self, pipe):
            self.pipe, self.steps = pipe, 0

        def add_request(self, *args):
            return self.pipe.add_request(*args)

        def step(self):
            self.steps += 1

        def get_metrics(self):
            return SimpleNamespace(scheduled_requests=0)

    engine = OpenVINOEngine(resolve_model(str(tiny_models["chat"])), EngineOptions(threads=1, max_num_seqs=4))
    engine._pipe = stuck = Stuck(engine._pipe)
    with pytest.raises(EngineError, match=r"scheduler ran none of 1 waiting requests .*max_num_batched_tokens 1024"):
        list(engine.generate([Request(0, "hello", SAMPLING, seed=0)]))
    assert stuck.steps == _STALLED_STEPS
    engine.close()


def test_chat_template_and_tokens(engine):
    assert "<|im_start|>" in engine.chat_template
    assert engine.count_tokens("hello world") == 2


def test_missing_and_corrupt_models_are_clear_errors(tmp_path):
    from sdgen.errors import ModelError

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelError, match=r"could not load model .*bad\.gguf"):
        start_engine("openvino", resolve_model(str(bad)), EngineOptions(threads=1))


def test_cpu_properties_map_precision_options():
    from sdgen.engines.openvino import cpu_properties
    from sdgen.errors import EngineError

    from sdgen.hardware import has_bf16

    # auto: the plugin's precision; an f32 KV cache under f32 inference (batch-invariant rows), else the plugin's
    expected = {"INFERENCE_NUM_THREADS": 3} | ({} if has_bf16() else {"KV_CACHE_PRECISION": "f32"})
    assert cpu_properties(EngineOptions(), 3) == expected
    assert cpu_properties(EngineOptions(dtype="fp32"), 2)["KV_CACHE_PRECISION"] == "f32"
    props = cpu_properties(EngineOptions(dtype="bf16", kv_cache_precision="bf16"), 2)
    assert props["INFERENCE_PRECISION_HINT"] == "bf16" and props["KV_CACHE_PRECISION"] == "bf16"
    assert cpu_properties(EngineOptions(dtype="fp32", kv_cache_precision="u4"), 2)["KV_CACHE_PRECISION"] == "u4"
    with pytest.raises(EngineError, match="needs bf16 inference"):
        cpu_properties(EngineOptions(dtype="fp32", kv_cache_precision="bf16"), 2)
    with pytest.raises(EngineError, match="ipex option"):
        cpu_properties(EngineOptions(dtype="int8"), 2)


def test_recycled_worker_gives_the_same_rows_and_takes_retries(tiny_models):
    """The engine in a worker process restarted every 7 requests gives the in-process engine's results,
    and requests queued while results are consumed (retries) still run."""
    model = resolve_model(str(tiny_models["chat"]))
    texts = {}
    for every in (0, 7):
        options = EngineOptions(threads=2, max_num_seqs=4, max_num_batched_tokens=256, recycle_every=every,
                                process=every > 0, dtype="fp32")  # fmt: skip  batch-invariant (see above)
        with start_engine("openvino", model, options) as eng:
            prompt = eng.render_chat([{"role": "user", "content": "Write a review."}])
            planned = iter([Request(i, prompt, SAMPLING, seed=300 + i) for i in range(30)])
            retries: list[Request] = []

            class Feed:  # like sdgen's RequestFeed: retries queued while results are consumed come first
                def __iter__(self):
                    return self

                def __next__(self):
                    return retries.pop(0) if retries else next(planned)

            results = {}
            for result in eng.generate(Feed()):
                results[result.id] = result.text
                if result.id % 10 == 0 and result.id < 100:
                    retries.append(Request(result.id + 100, prompt, SAMPLING, seed=900 + result.id))
            texts[every] = results
            assert type(eng).__name__ == ("WorkerPool" if every else "OpenVINOEngine")
            if every:  # 33 requests, a new worker process every 7: five processes, none serving more than 7
                assert len(eng.results_by) == 5 and max(eng.results_by.values()) <= 7, eng.results_by
    assert sorted(texts[0]) == sorted(texts[7]) == sorted([*range(30), 100, 110, 120])
    assert texts[0] == texts[7]


def test_stop_matcher_decodes_a_window_only_when_its_pieces_show_a_stop_string():
    """The check runs for every request after every step: cached one-token pieces first, a real decode (the
    word on whether the stop string is there) only when they show one."""
    from sdgen.engines.base import STOP_LOOKBACK_TOKENS, StopMatcher

    vocab = {1: "Hi", 2: " there", 3: "\n", 4: "5", 5: ".", 6: "5.", 7: "\xf0\x9f", 8: "\x98\x82"}  # 7+8: an emoji

    class Tokenizer:
        windows = 0

        def decode(self, ids, skip_special_tokens=True):
            self.windows += len(ids) > 1
            return "".join(vocab[i] for i in ids).encode("latin-1").decode("utf-8", errors="replace")

    tok = Tokenizer()
    match = StopMatcher(tok)
    stops = {"\n5."}
    assert not match.completes_stop([1, 2, 3], 1, stops)
    assert not match.completes_stop([1, 2, 3, 4], 1, stops) and tok.windows == 0
    assert match.completes_stop([1, 2, 3, 4, 5], 1, stops) and tok.windows == 1
    assert match.completes_stop([1, 2, 3, 6], 2, stops)  # split into other tokens
    assert not match.completes_stop([3, 4, 5] + [1] * STOP_LOOKBACK_TOKENS, 1, stops)  # out of the window
    windows = tok.windows
    assert match.completes_stop([1, 3, 7, 8, 4, 5], 2, {"\n😂5."})  # pieces of the emoji read as U+FFFD alone
    assert not match.completes_stop([1, 7, 8], 1, stops) and tok.windows == windows + 2


class _Words:
    """A tokenizer whose token i decodes to the word WORDS[i]."""

    WORDS = ["@user", "I", "love", "it", "so", "much", "#love", "today"]

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(self.WORDS[i] for i in ids)


class _Handle:
    """A GenAI generation handle that gives one token per step (`fresh`) until it is stopped."""

    def __init__(self, ids: list[int]) -> None:
        self.ids, self.stopped, self.fresh = list(ids), False, False

    def can_read(self) -> bool:
        return self.fresh and not self.stopped

    def read(self):
        from types import SimpleNamespace

        self.fresh = False
        token, self.ids = self.ids[:1], self.ids[1:]
        finish = SimpleNamespace(name="NONE")
        return {0: SimpleNamespace(generated_ids=token, generated_log_probs=[0.0], finish_reason=finish)}

    def stop(self) -> None:
        self.stopped = True


@pytest.mark.parametrize("choices", [None, ("a", "b")])
def test_a_request_stops_once_its_text_loops(choices):
    """A text that falls into a phrase loop ("@user @user @user ...") is rejected by the extractor whatever follows,
    and a model that loops keeps it up until max_new_tokens: the engine stops the request within a check of the
    loop's start. Real repeats go on ("@user @user @user @user I love it"), and a choice (the judge's) is never cut."""
    from sdgen.engines.base import AvoidWatch, LoopWatch, StopMatcher
    from sdgen.engines.openvino import _Flight

    def steps_to_stop(ids: list[int]) -> int | None:
        handle = _Handle(ids)
        flight = _Flight(handle, Request(0, "p", SAMPLING, seed=1, choices=choices), running_status=None)
        for step in range(1, len(ids) + 1):
            handle.fresh = True
            flight.pull(StopMatcher(_Words()), AvoidWatch(_Words()), LoopWatch(_Words()))
            if handle.stopped:
                return step
        return None

    assert steps_to_stop([0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 7, 6]) is None  # five handles, then words: no loop
    stopped = steps_to_stop([1, 2, 3, 7] + [0] * 60)  # "I love it today @user @user @user ..."
    if choices:
        assert stopped is None
    else:
        assert stopped is not None and stopped <= 4 + 10 + LoopWatch.EVERY
