"""The engine protocol: requests in, results out as they finish.

An engine knows nothing about processes or clusters: `sdgen.hosting` decides where it runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from sdgen.spec import GenerationParams


@dataclass(slots=True)
class Request:
    id: int  # unique among the requests in flight; results carry it back
    prompt: str
    params: GenerationParams
    seed: int
    stop_strings: set[str] = field(default_factory=set)
    choices: tuple[str, ...] | None = None  # constrain the output to exactly one of these (greedy)
    rows: tuple[int, ...] = ()  # the plan rows it is for (logs and test doubles; engines ignore it)
    prefix: str = ""  # names the shared prompt prefix it starts with (a group's examples, the judge's shots)


@dataclass(slots=True)
class Result:
    id: int
    text: str
    generated_tokens: int
    finish_reason: str  # "stop" | "length" | other backend reasons, lower-case


def cut_at_stop(text: str, stops: Iterable[str]) -> str:
    """The text before the first stop string in it (the stop string is not part of the output, as in GenAI)."""
    cuts = [text.index(stop) for stop in stops if stop in text]
    return text[: min(cuts)] if cuts else text


class Engine(ABC):
    """A loaded model that generates text for many requests at once."""

    backend: str = "?"

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

    def close(self) -> None:
        """Release the model (engines hold GBs; callers close one before loading the next)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
