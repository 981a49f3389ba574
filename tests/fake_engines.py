"""Engines for tests that must run in worker processes or on Ray nodes, so registered by import path.

(Test doubles used in this process only live in the test files themselves.)
"""

from __future__ import annotations

import os
import random
import re
import signal
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
_LABEL = re.compile(r"Label: (.+)\n")


class FakeBaseModel(Engine):
    """The scaffolding of a scripted engine: a base model (no chat template) that loads nothing; subclasses write
    ``generate``. Prompts of a base model carry their row's label as ``Label: NAME`` (`label_of`)."""

    backend = "fake"
    chat_template = None

    def __init__(self, model, options) -> None:
        pass

    def render_chat(self, messages):
        raise AssertionError("a base model has no chat template")

    @staticmethod
    def label_of(request) -> str:
        return _LABEL.findall(request.prompt)[-1]


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
