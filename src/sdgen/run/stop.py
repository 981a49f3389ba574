"""Ctrl-C and SIGTERM ask a run to stop at the next row boundary, never in the middle of a write."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopRequest:
    """Installs SIGINT/SIGTERM handlers for the run (main thread only); ``check()`` raises KeyboardInterrupt
    once one arrived. A second signal stops at once (the files are still consistent: each flush is
    appended whole or cut off as a torn tail that ``--resume`` repairs)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
