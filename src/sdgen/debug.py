"""``kill -USR1 PID`` makes an sdgen process (the CLI, an engine worker) print every thread's stack to stderr.

For a run that seems stuck: the stacks say where each process waits, without stopping it.
"""

from __future__ import annotations

import faulthandler
import signal
import sys


def dump_stacks_on_sigusr1() -> None:
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
