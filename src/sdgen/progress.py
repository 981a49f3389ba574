"""Progress reporting: a protocol the runner calls, a rich live bar for a terminal, plain lines for a log, and a silent one."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressListener(Protocol):
    def start(self, total_rows: int, description: str, *, new: bool = False) -> None:
        """Begin (or, with the same bar, relabel) a phase; ``new`` starts a fresh bar."""

    def update(self, rows: int, tokens: int) -> None:
        """Add finished rows and generated tokens."""

    def stop(self) -> None: ...


class NullProgress:
    def start(self, total_rows: int, description: str, *, new: bool = False) -> None:
        pass

    def update(self, rows: int, tokens: int) -> None:
        pass

    def stop(self) -> None:
        pass


class RichProgress:
    """A live bar with rows/s, generated tokens/s and ETA (rates since the first row started)."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TextColumn("{task.fields[rows_s]:>6.2f} rows/s"),
            TextColumn("{task.fields[tok_s]:>6.0f} tok/s"),
            TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task = None
        self._t0 = 0.0
        self._rows = 0
        self._tokens = 0
        self._total = 0

    def start(self, total_rows: int, description: str, *, new: bool = False) -> None:
        if self._task is None or new:
            self._progress.start()
            self._t0 = time.perf_counter()
            self._rows = self._tokens = 0
            self._task = self._progress.add_task(description, total=total_rows, rows_s=0.0, tok_s=0.0, eta="?")
            self._total = total_rows
        else:
            self._progress.update(self._task, description=description)

    def update(self, rows: int, tokens: int) -> None:
        self._rows += rows
        self._tokens += tokens
        rows_s, tok_s, eta, _ = _rates(self._rows, self._tokens, self._total, self._t0)
        self._progress.update(self._task, advance=rows, rows_s=rows_s, tok_s=tok_s, eta=eta)

    def stop(self) -> None:
        self._progress.stop()


class LineProgress:
    """Whole plain lines at a steady interval, for a log file or CI: ``name: 120/300 rows, 1.23 rows/s, 31 tok/s,
    ETA 2:26, 1:38 elapsed``; one when a phase starts and one when it ends."""

    def __init__(self, stream: TextIO | None = None, interval: float = 15.0) -> None:
        self.stream, self.interval = stream, interval
        self._description, self._total = "", 0
        self._rows = self._tokens = 0
        self._t0 = self._last = 0.0
        self._open = False

    def start(self, total_rows: int, description: str, *, new: bool = False) -> None:
        if not self._open or new:
            self._rows = self._tokens = 0
            self._t0 = time.perf_counter()
            self._total = total_rows
        self._description, self._open = description, True
        self._line()

    def update(self, rows: int, tokens: int) -> None:
        self._rows += rows
        self._tokens += tokens
        if time.perf_counter() - self._last >= self.interval:
            self._line()

    def stop(self) -> None:
        if self._open:
            self._line()
            self._open = False

    def _line(self) -> None:
        self._last = time.perf_counter()
        rows_s, tok_s, eta, elapsed = _rates(self._rows, self._tokens, self._total, self._t0)
        stream = self.stream or sys.stderr
        stream.write(f"{self._description}: {self._rows}/{self._total} rows, {rows_s:.2f} rows/s, "
                     f"{tok_s:.0f} tok/s, ETA {eta}, {_format_eta(elapsed)} elapsed\n")  # fmt: skip
        stream.flush()


def progress_for(console: Console) -> ProgressListener:
    """A live bar on a terminal; plain whole lines when the output is a file or a pipe."""
    return RichProgress(console) if console.is_terminal else LineProgress(console.file)


def _rates(rows: int, tokens: int, total: int, t0: float) -> tuple[float, float, str, float]:
    """(rows/s, tokens/s, ETA, elapsed seconds) since ``t0`` (a perf_counter reading)."""
    elapsed = max(time.perf_counter() - t0, 1e-9)
    rows_s = rows / elapsed
    return rows_s, tokens / elapsed, _format_eta((total - rows) / rows_s) if rows_s > 0 else "?", elapsed


def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
