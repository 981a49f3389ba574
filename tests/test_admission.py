"""Admission (the window and prefix warming) with no engine: flights that finish after a number of steps."""

from __future__ import annotations

from collections import deque

from sdgen.engines.admission import Admission, CachedBlocks, PrefixWarmer
from sdgen.engines.base import Request
from sdgen.spec import GenerationParams

PARAMS = GenerationParams(max_new_tokens=4)


def request(i: int, prefix: str = "") -> Request:
    return Request(i, f"prompt {i}", PARAMS, seed=i, prefix=prefix)


class Flight:
    """Produces its first token after ``prefill`` steps and ends after ``steps``."""

    def __init__(self, req: Request, prefill: int = 2, steps: int = 4) -> None:
        self.req, self.prefill, self.steps, self.done = req, prefill, steps, 0

    @property
    def running(self) -> bool:
        return self.done < self.steps

    @property
    def started(self) -> bool:
        return self.done >= self.prefill


def test_prefix_warmer_holds_a_prefix_until_its_first_request_has_a_token():
    warmer: PrefixWarmer[Flight] = PrefixWarmer()
    a = [request(i, "a") for i in range(3)]
    b = request(9, "b")
    assert warmer.admit(a[0])
    first = Flight(a[0])
    warmer.warming(first)
    assert not warmer.admit(a[1]) and not warmer.admit(a[2]) and warmer.held == 2
    assert warmer.admit(b)  # another prefix is not held back
    assert warmer.ready() == []  # "a" still prefilling
    first.done = first.prefill
    assert warmer.ready() == a[1:] and warmer.held == 0
    assert warmer.admit(request(5, "a"))  # computed: no more waiting


def drive(requests, window: int, on_finished=lambda flight: None, first_wave: int | None = None):
    """An engine loop over `Admission`: every step advances every flight by one; returns the finish order, the
    most requests in flight or held at once, and each request's start step."""
    started_at: dict[int, int] = {}
    clock = 0

    def start(req: Request) -> Flight:
        started_at[req.id] = clock
        return Flight(req)

    admission: Admission[Flight] = Admission(requests, window, start, first_wave=first_wave)
    order, peak = [], 0
    first = admission.first()
    while first.running and not first.started:  # prime
        first.done += 1
        clock += 1
    admission.release()
    admission.refill()
    while admission.inflight:
        peak = max(peak, len(admission.inflight) + admission.held)
        for flight in admission.inflight:
            flight.done += 1
        clock += 1
        admission.release()
        finished = admission.finished()
        admission.refill()
        for flight in finished:
            order.append(flight.req.id)
            on_finished(flight)
        admission.refill()
    return order, peak, started_at


def test_the_window_bounds_what_is_in_flight_and_every_request_finishes():
    order, peak, _ = drive((request(i) for i in range(50)), window=8)
    assert sorted(order) == list(range(50))
    assert peak == 8


def test_a_first_wave_runs_alone_until_a_request_finishes_then_the_window_opens():
    """The first rows come from a small batch (fast steps); from the first finished request on, the full window."""
    order, peak, started_at = drive((request(i) for i in range(50)), window=8, first_wave=3)
    assert sorted(order) == list(range(50)) and peak == 8
    assert sorted(started_at.values())[:4] == [0, 2, 2, 4]  # primed alone, then two more; the rest once one finished
    assert sum(1 for step in started_at.values() if step < 4) == 3
    _, _, whole = drive((request(i) for i in range(50)), window=8)
    assert sum(1 for step in whole.values() if step < 4) == 8  # without a first wave: the window at once


def test_a_prefix_s_other_requests_start_once_its_first_has_a_token():
    reqs = [request(i, prefix=f"g{i % 2}") for i in range(10)]
    _, _, started_at = drive(reqs, window=16)
    # g0's first request is primed alone (2 steps); g1's first starts then, its others two steps later
    assert started_at[0] == 0
    assert started_at[1] == 2
    assert all(started_at[i] == 2 for i in range(2, 10, 2))  # g0 computed by the time they are admitted
    assert all(started_at[i] == 4 for i in range(3, 10, 2))  # held until g1's first produced a token


def test_a_repeated_prompt_waits_for_its_first_request_to_have_a_token():
    """A cell's requests share their whole prompt (only the seed differs): the repeats start once the first has
    computed it, so they find it cached; other prompts of the same prefix do not wait."""
    same = [Request(i, "the cell's prompt", PARAMS, seed=i, prefix="rows") for i in range(3)]
    other = Request(3, "another cell's prompt", PARAMS, seed=3, prefix="rows")
    reqs = [Request(9, "primer", PARAMS, seed=9, prefix="rows"), *same, other]
    _, _, started_at = drive(reqs, window=16)
    assert started_at[9] == 0 and started_at[0] == started_at[3] == 2  # after priming the shared prefix
    assert started_at[1] == started_at[2] == 4  # after request 0 prefilled the cell's prompt


def test_requests_queued_while_results_are_taken_join_the_same_run():
    queue = deque(request(i) for i in range(5))
    retried: list[int] = []

    class Feed:  # like sdgen's feed: empty for now is not the end (a generator could not grow again)
        def __iter__(self):
            return self

        def __next__(self) -> Request:
            if not queue:
                raise StopIteration
            return queue.popleft()

    def retry(flight: Flight) -> None:
        if flight.req.id < 3:  # the consumer queues a retry for the first three results
            queue.append(request(100 + flight.req.id))
            retried.append(flight.req.id)

    order, _, _ = drive(Feed(), window=4, on_finished=retry)
    assert retried == [0, 1, 2]
    assert sorted(order) == [0, 1, 2, 3, 4, 100, 101, 102]


def test_cached_blocks_serve_whole_blocks_of_computed_prompts_and_never_the_last_token():
    shared = list(range(100))  # three whole blocks of 32 and four tokens
    a, b = shared + [500, 501], shared + [600]
    blocks = CachedBlocks()
    assert blocks.cached(a) == 0  # nothing computed yet
    blocks.computed(a)
    assert blocks.cached(b) == 96  # the shared whole blocks; the rest is computed
    assert blocks.cached(a) == 96  # a repeat finds all but its last partial block
    exact = list(range(64))
    blocks.computed(exact)
    assert blocks.cached(exact) == 63  # a prompt of whole blocks found whole still computes its last token
    assert blocks.cached([7] + shared) == 0  # a block matches only with everything before it


def test_each_prompt_is_reported_computed_once_after_its_first_token():
    heard: list[tuple[int, int]] = []  # (request, its steps done when heard)
    admission: Admission[Flight] = Admission((request(i) for i in range(3)), 8, Flight,
                                             computed=lambda f: heard.append((f.req.id, f.done)))  # fmt: skip
    admission.first()
    admission.refill()
    while admission.inflight:
        for flight in admission.inflight:
            flight.done += 1
        admission.release()
        admission.finished()
    assert sorted(heard) == [(0, 2), (1, 2), (2, 2)]  # each once, at the step that gave it a token (prefill 2)
