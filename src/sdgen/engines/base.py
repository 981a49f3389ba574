"""The engine protocol: requests in, results out as they finish.

An engine knows nothing about processes or clusters: `sdgen.hosting` decides where it runs.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from sdgen.spec import GenerationParams
from sdgen.text import loops, straight_quotes


@dataclass(slots=True)
class Request:
    id: int  # unique among the requests in flight; results carry it back
    prompt: str
    params: GenerationParams
    seed: int
    stop_strings: set[str] = field(default_factory=set)
    choices: tuple[str, ...] | None = None  # constrain the output to exactly one of these (greedy)
    # what it asks for, as plan data (logs and test doubles read these; engines ignore them): the plan rows it is
    # for, the label they share, and how many texts the prompt asks for (a numbered list when more than one)
    rows: tuple[int, ...] = ()
    label: str = ""
    asked: int = 1
    prefix: str = ""  # names the shared prompt prefix it starts with (a group's examples, the judge's shots)
    # a request of a label with avoided phrases: their pattern (`sdgen.text.AvoidedPhrases.pattern`); an engine that
    # watches it stops the request once its answer holds one (that text is lost anyway: no more tokens on it)
    avoid: str | None = None


@dataclass(slots=True)
class Result:
    id: int
    text: str
    generated_tokens: int
    finish_reason: str  # "stop" | "length" | other backend reasons, lower-case
    # choice requests: the model's log-probability of the choice it gave (the sum over its tokens, taken before
    # the constraint masks the other tokens out; the end token after it not counted), so exp(logprob) is how sure
    # the model is; None elsewhere
    logprob: float | None = None


def cut_at_stop(text: str, stops: Iterable[str]) -> str:
    """The text before the first stop string in it (the stop string is not part of the output, as in GenAI)."""
    cuts = [text.index(stop) for stop in stops if stop in text]
    return text[: min(cuts)] if cuts else text


# Tokens before the newest ones that a stop string may span (sdgen's are a few characters: "\n5.", "\nLabel:").
STOP_LOOKBACK_TOKENS = 15


class StopMatcher:
    """Tells whether a request's newest tokens complete one of its stop strings, while it generates.

    Runs for every running request after every step, so it first joins cached one-token pieces (a dict
    lookup per token), and pays for a real decode of the window (~90 us in GenAI's tokenizer) only when those
    pieces show a stop string or a character they cannot show alone. Spaces are left out of that first look:
    a lone token's decode may drop or add the space a word carries (SentencePiece, clean-up of " .").
    """

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer  # anything with decode(ids, skip_special_tokens=...): GenAI's or HF's
        self._pieces: dict[int, str] = {}

    def _piece(self, token: int) -> str:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._tokenizer.decode([token], skip_special_tokens=True)
        return piece

    def completes_stop(self, ids: list[int], fresh: int, stops: Iterable[str]) -> bool:
        """Whether the last ``fresh`` of ``ids`` (with the tokens before them) hold a stop string."""
        window = ids[-(fresh + STOP_LOOKBACK_TOKENS) :]
        rough = "".join(map(self._piece, window)).replace(" ", "")
        # U+FFFD: a character split across tokens (emoji, accents) reads right only when its tokens are decoded together
        if "\ufffd" not in rough and not any(stop.replace(" ", "") in rough for stop in stops):
            return False
        text = self._tokenizer.decode(window, skip_special_tokens=True)
        return any(stop in text for stop in stops)


class AvoidWatch:
    """Tells whether a request's text so far holds one of its avoided phrases, followed by a character that ends the
    word (so "please" does not stop "pleased" half-written). Runs after a step only for requests that produced
    tokens and carry a pattern, on the answer's last `TAIL` tokens (a phrase is a few words; a phrase completed
    earlier stopped the request then): one short decode per request and step, however long the answer."""

    TAIL = 24

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer
        self._compiled: dict[str, re.Pattern[str]] = {}

    def holds(self, ids: list[int], pattern: str) -> bool:
        rx = self._compiled.get(pattern)
        if rx is None:
            rx = self._compiled[pattern] = re.compile(f"(?:{pattern})(?=\\W)", re.IGNORECASE)
        return rx.search(straight_quotes(self._tokenizer.decode(ids[-self.TAIL :], skip_special_tokens=True))) is not None


class LoopWatch:
    """Tells whether a request's text has fallen into a phrase loop (`sdgen.text.loops`: "@user @user @user ...",
    "#love #love ..."), which the extractor rejects and a model that loops keeps up until max_new_tokens. Checked on
    the answer's last `TAIL` tokens (a loop long enough to count is at most 36 words), once every `EVERY` tokens.
    Looping texts had spent 768 of 3,239 generated tokens in an emotion pilot (96 rows, tuned spec; Zen 3)."""

    TAIL = 64
    EVERY = 8

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    def holds(self, ids: list[int], fresh: int) -> bool:
        if len(ids) // self.EVERY == (len(ids) - fresh) // self.EVERY:
            return False
        return loops(self._tokenizer.decode(ids[-self.TAIL :], skip_special_tokens=True))


# What an engine can do, declared on its class (`Engine.capabilities`) so a run can check a spec before it loads a model.
PER_REQUEST_SAMPLING = "per-request sampling"  # each request's own GenerationParams and seed, whatever shares its batch
CHOICES = "constrained choices"  # Request.choices: the output is exactly one of them (the judge)
LOGPROBS = "log-probs"  # Result.logprob of a choice answer (judge.min_confidence)
COUNT_TOKENS = "token counting"  # count_tokens(text): the model's tokenizer, for prompt-token figures


class Engine(ABC):
    """A loaded model that generates text for many requests at once."""

    backend: str = "?"
    capabilities: frozenset[str] | None = None  # None: not declared (a test double), nothing is checked

    @property
    @abstractmethod
    def chat_template(self) -> str | None:
        """The model's chat template, or None/"" for a base model."""

    @abstractmethod
    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """Render messages with the model's chat template, ending with the assistant turn."""

    @abstractmethod
    def generate(self, requests: Iterable[Request]) -> Iterator[Result]:
        """Generate every request; yield each result as soon as it is finished (any order).

        `requests` may grow while results are consumed (sdgen queues retries of unparseable rows):
        pull it with ``next()`` again after handing out results, and stop only when it is empty
        and nothing is in flight.
        """

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's tokenizer (engines that declare COUNT_TOKENS)."""
        raise NotImplementedError(f"the {self.backend} backend does not count tokens")

    def stats(self) -> dict[str, object]:
        """What the engine has to tell about its runs so far, for the run's stats (a pool: results per worker)."""
        return {}

    def close(self) -> None:
        """Release the model (engines hold GBs; callers close one before loading the next)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def batches_of_equal_sampling(requests: Iterable[Request], size: int) -> Iterator[list[Request]]:
    """Up to ``size`` requests at a time, never mixing sampling parameters in one batch: for the static-batch
    backends, whose decode loop applies one GenerationParams to the whole batch (a retry's one-text budget must not
    cap a group request's four). Pulls lazily: ``requests`` may grow while batches are consumed."""
    pending, held = iter(requests), None
    while True:
        batch = [held] if held is not None else []
        held = None
        while len(batch) < size:
            try:
                request = next(pending)
            except StopIteration:
                break
            if batch and request.params != batch[0].params:
                held = request
                break
            batch.append(request)
        if not batch:
            return
        yield batch
