"""One writer per output: a run holds an exclusive OS lock on ``<stem>.lock`` beside its dataset for its whole life.

The kernel releases a ``flock`` when its process dies, so a SIGKILLed run never leaves a stale lock.
The lock file names its holder (pid, host, start time), which a refused second run quotes. It is
removed on release; a run that locked a file someone removed meanwhile checks that the path still
names the file it locked, and tries again if not (so two runs can never both hold "the" lock).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from sdgen.errors import OutputError
from sdgen.store.files import sidecar

try:
    import fcntl
except ImportError:  # not POSIX: no lock (sdgen's engines run on Linux)
    fcntl = None  # type: ignore[assignment]


def lock_path(output: Path) -> Path:
    return sidecar(output, "lock", "")


class OutputLock:
    """``with OutputLock(output):`` or ``acquire()`` / ``release()``; refuses with an OutputError naming the holder."""

    def __init__(self, output: Path) -> None:
        self.output, self.path = output, lock_path(output)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        if fcntl is None or self._fd is not None:
            return self
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output dir {parent}: {exc.strerror}") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"output dir {parent} is not writable ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutputError(f"{self.output} is being written by another sdgen run ({self._holder()}); wait "
                                  "for it to end, or choose another --output") from None  # fmt: skip
            if self._still_there(fd):
                break
            os.close(fd)  # the holder before us removed the file while we waited for it: lock the new one
        os.ftruncate(fd, 0)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.write(fd, json.dumps(holder).encode())
        self._fd = fd
        return self

    def _still_there(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _holder(self) -> str:
        try:
            holder = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            holder = {}
        if not holder:
            return "it is starting"
        return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}"

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)  # while still locked: a run that opened it will see it gone
        finally:
            os.close(fd)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
