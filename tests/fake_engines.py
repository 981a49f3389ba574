"""The test doubles of engines, in one place: scripted base models (`FakeBaseModel` and what builds on it) that
test modules register by factory, and engines that must run in worker processes or on Ray nodes, registered by
import path. Test modules import engines from here, never from each other."""

from __future__ import annotations

import math
import os
import random
import re
import signal
from collections import Counter
from pathlib import Path

from sdgen.engines import Engine, Result
from sdgen.engines.openvino import OpenVINOEngine

ARMED = "die-once"


def claim(path: Path) -> bool:
    """True for exactly one caller on this file system: the one whose rename of ``path`` succeeds."""
    try:
        os.rename(path, path.with_name(path.name + f".taken-{os.getpid()}"))
        return True
    except FileNotFoundError:
        return False


class DiesOnce(OpenVINOEngine):
    """The real engine, except that the first worker to reach 8 results while ``die-once`` lies beside the
    model SIGKILLs its own process (progress decides when, not a clock; one worker, not one per restart)."""

    def generate(self, requests):
        for n, result in enumerate(super().generate(requests), 1):
            if n == 8 and claim(self.model.path.parent / ARMED):
                os.kill(os.getpid(), signal.SIGKILL)
            yield result


SHOP_ROWS = [("the parcel never came", "complaint"), ("where is my refund", "complaint"), ("order 1234 is late", "complaint"),
             ("love the new colours", "praise"), ("great service, thanks", "praise")]  # fmt: skip


class FakeBaseModel(Engine):
    """The scaffolding of a scripted engine: a base model (no chat template) that loads nothing; subclasses write
    ``generate``. A script reads what a request is for from its plan data (`label_of`, ``rows``, ``asked``), never
    from the prompt's wording, so rewording a prompt cannot break a test double."""

    backend = "fake"
    chat_template = None

    def __init__(self, model, options) -> None:
        pass

    def render_chat(self, messages):
        raise AssertionError("a base model has no chat template")

    @staticmethod
    def label_of(request) -> str:
        return request.label


class CopyingEngine(FakeBaseModel):
    """A base model that writes random words per request seed, except that the first request of each label copies a
    real row of that label (SHOP_ROWS): what a reserved real row must never become."""

    backend = "copying"
    copied: set[str] = set()

    def generate(self, requests):
        for req in requests:
            label = self.label_of(req)
            if label not in CopyingEngine.copied:
                CopyingEngine.copied.add(label)
                text = next(t for t, lab in SHOP_ROWS if lab == label)
            else:
                text = " ".join(random.Random(req.seed).sample([f"w{i}" for i in range(500)], 12))
            yield Result(req.id, " " + text, 12, "stop")


_VOCAB = [f"w{i}" for i in range(5000)]


def words(seed: int, n: int = 40) -> str:
    """A text of n random words: two of these share (almost) no 3-word shingles."""
    return " ".join(random.Random(seed).sample(_VOCAB, n))


def SCENARIO(row: int, label: str, attempt: int) -> str:
    """Every 7th row repeats an earlier row's text (a duplicate or a conflict); every 11th parses on its 2nd try."""
    if row % 7 == 3:
        return words(row - 3)
    if row % 11 == 5 and attempt == 0:
        return ""
    return words(row)


class CraftedEngine(FakeBaseModel):
    """Answers each row with `script(row, label, attempt)`; classification requests by the marker in the text."""

    backend = "crafted"
    script = staticmethod(lambda row, label, attempt: words(row))
    fed: list[int] = []
    stopped: list[int] = []  # rows whose text stopped at an avoided phrase

    def __init__(self, model, options) -> None:
        self._attempts: Counter = Counter()

    def generate(self, requests):
        for req in requests:
            if req.choices:  # the judge: the text carries the label it will say, and how sure ("at 0.3")
                text = req.prompt.rsplit("Text: ", 1)[1]
                marked = re.search(r"says (\w+)(?: at ([\d.]+))?", text)
                sure = float(marked.group(2)) if marked and marked.group(2) else 1.0
                said = marked.group(1) if marked else req.choices[0]
                if len(req.choices) == 1:  # one label forced (a judge that scores each): the said one is `sure`
                    (choice,) = req.choices
                    likely = sure if choice == said else max(1 - sure, 1e-3)
                    yield Result(req.id, " " + choice, 2, "stop", math.log(likely))
                    continue
                yield Result(req.id, " " + said, 2, "stop", math.log(sure))
                continue
            label = self.label_of(req)
            (row,) = req.rows
            attempt = self._attempts[row]
            self._attempts[row] += 1
            CraftedEngine.fed.append(row)
            text = " " + CraftedEngine.script(row, label, attempt)
            found = re.search(f"(?:{req.avoid})(?=\\W)", text, re.IGNORECASE) if req.avoid else None
            if found:  # an engine that watches avoided phrases stops one character after the phrase
                CraftedEngine.stopped.append(row)
                text = text[: found.end() + 1]
            yield Result(req.id, text, 10 if not found else 5, "stop")


class ListEngine(Engine):
    """A chat model that answers "Write k new texts, each one LABEL" with a numbered list of k texts, each a
    function of the request's seed and its position (so a resumed run gets the same texts); ``skip(seed, i)``
    leaves item i out."""

    backend = "list"
    chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    skip = staticmethod(lambda seed, i: False)
    extra = staticmethod(lambda label, k, i: "")  # words added to item i of a k-item answer for label
    requests: list[tuple[int, ...]] = []
    stopped: list[tuple[int, ...]] = []  # requests whose answer stopped at an avoided phrase

    def __init__(self, model, options) -> None:
        pass

    def render_chat(self, messages):
        return "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"

    def generate(self, requests):
        for req in requests:
            if req.choices:
                yield Result(req.id, " " + req.choices[0], 1, "stop")
                continue
            k = req.asked
            ListEngine.requests.append(req.rows)
            items = [f"{i}. {words(req.seed % 100_000 + 7 * i)}{ListEngine.extra(req.label, k, i)}"
                     for i in range(1, k + 1) if not ListEngine.skip(req.seed, i)]  # fmt: skip
            text = "\n".join(items)
            tokens = 5 * k
            found = re.search(f"(?:{req.avoid})(?=\\W)", text, re.IGNORECASE) if req.avoid else None
            if found:  # an engine that watches avoided phrases stops one character after the phrase
                ListEngine.stopped.append(req.rows)
                text = text[: found.end() + 1]
                tokens = 5 * (text.count("\n") + 1)
            yield Result(req.id, text[2:] if text.startswith("1.") else " (none)\n" + text, tokens, "stop")


class ExampleCopier(ListEngine):
    """A chat model that answers a one-text request of a planned row whose id is a multiple of 5 with the spec's
    example (``example``), unless the request tells it not to repeat the examples (then as `ListEngine`)."""

    backend = "copier"
    example = ""
    told: list[int] = []  # rows whose request said not to repeat the examples

    def generate(self, requests):
        from sdgen.prompts import UNLIKE_EXAMPLES

        for req in requests:
            if req.choices or len(req.rows) != 1 or req.rows[0] % 5:
                yield from super().generate([req])
            elif UNLIKE_EXAMPLES.strip() in req.prompt.rsplit("<user>", 1)[-1]:
                ExampleCopier.told.append(req.rows[0])
                yield from super().generate([req])
            else:
                yield Result(req.id, " " + ExampleCopier.example, 5, "stop")
