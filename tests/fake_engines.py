"""Engines for tests that must run in worker processes or on Ray nodes, so registered by import path.

(Test doubles used in this process only live in the test files themselves.)
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

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
