"""OpenVINO GenAI continuous-batching engine (the default backend).

Requests enter through `sdgen.engines.admission` (a bounded window, prefix warming), the scheduler is
stepped, and each request is handed back the moment it finishes, so the writer works while the engine
keeps generating.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections import Counter
from typing import Iterable, Iterator

from sdgen.engines.admission import Admission, CachedBlocks
from sdgen.engines.base import (CHOICES, COUNT_TOKENS, LOGPROBS, PER_REQUEST_SAMPLING, AvoidWatch, Engine, LoopWatch,
                                Request, Result, StopMatcher, cut_at_stop)
from sdgen.errors import EngineError, ModelError
from sdgen.models.registry import ResolvedModel
from sdgen.spec import EngineOptions, GenerationParams


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # OpenVINO prefixes messages with "Exception from <source path>:<line>:"; the cause follows.
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    return (useful or lines or [type(exc).__name__])[0]


# Consecutive engine steps that schedule nothing while requests wait: the scheduler cannot place them (a step
# that schedules nothing returns at once, so a stuck run would spin here silently).
_STALLED_STEPS = 1000
_FREEING_STEPS = 3  # steps at the end of a generate() that free stopped requests (one does it)
# Requests in flight until the first one finishes (`Admission`): small enough that a step takes a fraction of a full
# batch's, large enough that the first rows come as a handful.
FIRST_WAVE = 16


def scheduler_config(options: EngineOptions):
    import openvino_genai as ov_genai

    config = ov_genai.SchedulerConfig()
    config.max_num_seqs = options.seqs_in_flight
    config.max_num_batched_tokens = options.max_num_batched_tokens
    config.cache_size = max(1, round(options.cache_size_gb))
    config.enable_prefix_caching = options.enable_prefix_caching
    config.dynamic_split_fuse = options.dynamic_split_fuse
    return config


def cpu_properties(options: EngineOptions, threads: int) -> dict[str, object]:
    """CPU plugin properties: threads, inference precision and KV-cache precision.

    With f32 inference the KV cache is f32 too: a quantized cache (the plugin's u8, or f16) made a row's
    text depend on which rows shared its batch (measured on an AVX2 EPYC: 41 of 64 rows differed between
    a 64-row and a 300-row run with u8, 6 with f16, none with f32, which was not slower). See docs/resume.md.
    """
    import openvino as ov

    props: dict[str, object] = {"INFERENCE_NUM_THREADS": threads}
    if options.cpu_pinning is not None:
        props["ENABLE_CPU_PINNING"] = options.cpu_pinning
    if options.dtype == "int8":
        raise EngineError("dtype int8 is an ipex option; an OpenVINO model's weight format is set by `sdgen convert`")
    if options.dtype != "auto":
        props["INFERENCE_PRECISION_HINT"] = {"bf16": "bf16", "fp32": "f32"}[options.dtype]
        precision = props["INFERENCE_PRECISION_HINT"]
    else:
        precision = str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))
    bf16 = "bf16" in precision or "bfloat16" in precision
    kv = options.kv_cache_precision
    if kv == "bf16" and not bf16:
        raise EngineError(f"kv_cache_precision bf16 needs bf16 inference; this run infers in {precision}")
    if kv == "auto" and not bf16:
        kv = "f32"
    if kv != "auto":
        props["KV_CACHE_PRECISION"] = kv
    return props


def _regex_literal(text: str) -> str:
    """Escape regex operators only; everything else (spaces, quotes, commas) stays a literal character."""
    return re.sub(r"([\\.^$*+?()\[\]{}|])", r"\\\1", text)


def generation_config(
    params: GenerationParams, seed: int, choices: tuple[str, ...] | None = None
):
    import openvino_genai as ov_genai

    config = ov_genai.GenerationConfig()
    config.max_new_tokens = params.max_new_tokens
    config.repetition_penalty = params.repetition_penalty
    if choices:  # greedy, and the grammar admits nothing but one of the choices (after an optional space)
        pattern = " ?(" + "|".join(_regex_literal(c) for c in choices) + ")"
        config.structured_output_config = ov_genai.StructuredOutputConfig(regex=pattern)
        config.logprobs = 1  # the chosen tokens' log-probs, from the logits before the grammar's mask
        return config
    if params.temperature > 0:
        config.do_sample = True
        config.temperature = params.temperature
        config.top_p = params.top_p
        if params.top_k:
            config.top_k = params.top_k
        if params.min_p:
            config.min_p = params.min_p
        config.rng_seed = seed
    # No stop strings: `_Flight` watches for them (GenAI's own matching deadlocked, see there).
    return config


class OpenVINOEngine(Engine):
    backend = "openvino"
    capabilities = frozenset({PER_REQUEST_SAMPLING, CHOICES, LOGPROBS, COUNT_TOKENS})

    def __init__(self, model: ResolvedModel, options: EngineOptions) -> None:

        if model.format == "hf":
            raise ModelError(
                f"{model.path} is a Hugging Face model dir; convert it first: sdgen convert {model.path} --out DIR"
            )
        self.model = model
        self.options = options
        self.threads = options.threads or len(os.sched_getaffinity(0))
        properties = cpu_properties(options, self.threads)
        self._properties = properties
        try:
            self._pipe = self._load()
        except (RuntimeError, IndexError, ValueError, OSError) as exc:  # raised by the native loader on bad files
            detail = _first_line(exc) if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {exc}"
            raise ModelError(
                f"could not load model {model.name!r} from {model.path} (corrupt or unsupported file?): {detail}"
            ) from None
        self._tokenizer = self._pipe.get_tokenizer()
        config = self._pipe.get_config()
        # a choice ends on one of these once the grammar is done; the model's odds of ending there are no part of how
        # likely it finds the choice (after "Label: anger" a completion prompt's model expects "\nText:", and the
        # end token's log-prob, about -16, drowned the label's: forced-choice readings of emotion fell 3-7 points)
        self._ends = {int(config.eos_token_id), int(self._tokenizer.get_eos_token_id()),
                      *map(int, config.stop_token_ids)}
        self._stops = StopMatcher(self._tokenizer)
        self._avoid = AvoidWatch(self._tokenizer)
        self._loop = LoopWatch(self._tokenizer)
        self._window = max(2 * options.seqs_in_flight, 8)
        self._idle_steps = 0
        # GenAI request ids are unique over the pipeline's life, not per generate() call: its sampler keeps state
        # by request id, and a request stopped early (a stop string) left it behind, so the next request given the
        # same id sampled other tokens from the same seed (measured: GenAI 2026.4, tiny model, fp32)
        self._ids = itertools.count()
        self._counts: Counter[str] = Counter()  # of the last generate(): `stats()`

    def _load(self):
        import openvino_genai as ov_genai

        return ov_genai.ContinuousBatchingPipeline(
            str(self.model.path), scheduler_config(self.options), "CPU", self._properties
        )

    @property
    def chat_template(self) -> str | None:
        return self._tokenizer.chat_template or None

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        return self._tokenizer.apply_chat_template(messages, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return int(self._tokenizer.encode([text]).input_ids.get_shape()[1])

    def generate(self, requests: Iterable[Request]) -> Iterator[Result]:
        import openvino_genai.py_openvino_genai as pg

        running = pg.GenerationStatus.RUNNING
        ids = self._ids
        self._counts = Counter()
        blocks = CachedBlocks()

        def start(req: Request) -> _Flight:
            config = generation_config(req.params, req.seed, req.choices)
            flight = _Flight(self._pipe.add_request(next(ids), req.prompt, config), req, running)
            flight.prompt_ids = self._tokenizer.encode([req.prompt]).input_ids.data[0].tolist()
            self._counts["prompt_tokens"] += len(flight.prompt_ids)
            self._counts["cached_prompt_tokens"] += blocks.cached(flight.prompt_ids)
            return flight

        admission = Admission(requests, self._window, start, computed=lambda flight: blocks.computed(flight.prompt_ids),
                              first_wave=FIRST_WAVE)
        first = admission.first()
        if first is None:
            return
        t0 = time.perf_counter()
        self._prime(first)
        self._counts["priming_seconds"] += time.perf_counter() - t0
        admission.release()
        admission.refill()
        while admission.inflight:
            self._step(len(admission.inflight))
            for flight in admission.inflight:
                flight.pull(self._stops, self._avoid, self._loop)
            admission.release()
            finished = admission.finished()
            if not finished:
                continue
            admission.refill()  # top up before handing results out, so the engine never starves
            for flight in finished:
                yield self._result(flight)
            admission.refill()  # requests the consumer queued while taking these results (retries) join this run
        self._free_stopped()

    def _free_stopped(self) -> None:
        """Step the scheduler until it holds no request (a few steps at most): GenAI frees a stopped request's KV
        blocks in its next step, so a request stopped at its stop string after the last one kept them, and closing
        the pipeline printed "[ERROR] BlockManager leaked sequence block tables" at the end of a run (GenAI 2026.4).
        Nothing is running by then: these steps compute nothing."""
        for _ in range(_FREEING_STEPS):
            if not self._pipe.has_non_finished_requests():
                return
            self._pipe.step()

    def stats(self) -> dict[str, object]:
        """The last generate()'s priming, step and full-batch seconds and prompt tokens (computed or cached)."""
        return {key: round(value, 3) if isinstance(value, float) else value for key, value in self._counts.items()}

    def _step(self, waiting: int) -> None:
        """One scheduler step; an error once steps have scheduled nothing ``_STALLED_STEPS`` times in a row."""
        t0 = time.perf_counter()
        self._pipe.step()
        seconds = time.perf_counter() - t0
        scheduled = self._pipe.get_metrics().scheduled_requests
        self._counts["step_seconds"] += seconds
        if scheduled >= max(1, 0.9 * self.options.seqs_in_flight):
            self._counts["full_batch_seconds"] += seconds
        self._idle_steps = self._idle_steps + 1 if scheduled == 0 else 0
        if self._idle_steps < _STALLED_STEPS:
            return
        o = self.options
        raise EngineError(
            f"the OpenVINO scheduler ran none of {waiting} waiting requests for {_STALLED_STEPS} steps "
            f"(max_num_seqs {o.seqs_in_flight}, max_num_batched_tokens {o.max_num_batched_tokens}, cache_size_gb "
            f"{o.cache_size_gb}, dynamic_split_fuse {o.dynamic_split_fuse}): a prompt too long for these settings?"
        )

    def _prime(self, flight: _Flight) -> None:
        """Run the first request's prefill alone, so every later request finds the shared prompt prefix cached.

        The prefix cache only holds blocks that have been computed; requests added together
        before the first step would each prefill the whole prompt. Measured on the example spec
        (~500 shared prompt tokens, ~55 generated): see README.
        """
        while flight.running and not flight.started:
            self._step(1)
            flight.pull(self._stops, self._avoid, self._loop)

    def _result(self, flight: _Flight) -> Result:
        """The request's text; its tokens were all read right after the step that finished it."""
        req = flight.req
        if flight.reason is None:
            return Result(req.id, "", 0, str(flight.handle.get_status().name).lower())
        text = self._tokenizer.decode(flight.ids, skip_special_tokens=True)
        cut = cut_at_stop(text, req.stop_strings)
        logprob = None
        if req.choices:
            logprob = sum(lp for token, lp in zip(flight.ids, flight.logprobs) if token not in self._ends)
        return Result(req.id, cut, len(flight.ids), "stop" if len(cut) < len(text) else flight.reason, logprob)

    def close(self) -> None:
        self._pipe = None
        self._tokenizer = None
        self._stops = self._avoid = self._loop = None


class _Flight:
    """One request in the pipeline: its handle and the tokens read from it so far.

    Stop strings are watched here rather than given to GenAI: its sampler matches them by detokenizing in
    parallel threads, and a run with them hung inside step() with every thread waiting on the tokenizer (gdb on
    a stuck worker, GenAI 2026.4). A request is stopped after the step that wrote its stop string, so it does
    not run on to max_new_tokens (a base model in completion mode never ends by itself).
    """

    def __init__(self, handle, req: Request, running_status) -> None:
        self.handle, self.req = handle, req
        self._running_status = running_status
        self.ids: list[int] = []
        self.prompt_ids: list[int] = []
        self.logprobs: list[float] = []  # filled for choice requests only (GenAI computes them when asked)
        self.reason: str | None = None  # the finish reason of the last output read; None before any output

    @property
    def running(self) -> bool:
        return self.handle.get_status() == self._running_status

    @property
    def started(self) -> bool:
        """The request has produced a token (its prompt is computed and cached)."""
        return bool(self.ids)

    def pull(self, stops: StopMatcher, avoid: AvoidWatch, loop: LoopWatch) -> None:
        """Read the tokens generated since the last read; stop the request once they complete a stop string, or
        once its text holds a phrase its label avoids or loops (the row is dropped anyway; its later tokens would be
        spent)."""
        fresh = 0
        while self.handle.can_read():
            for out in self.handle.read().values():
                self.ids += out.generated_ids
                if self.req.choices:
                    self.logprobs += out.generated_log_probs
                fresh += len(out.generated_ids)
                self.reason = str(out.finish_reason.name).lower()
        if not fresh:
            return
        if (self.req.stop_strings and stops.completes_stop(self.ids, fresh, self.req.stop_strings)) or (
            self.req.avoid and avoid.holds(self.ids, self.req.avoid)
        ) or (not self.req.choices and loop.holds(self.ids, fresh)):
            self.handle.stop()  # no longer running: it leaves `inflight` before the next step
