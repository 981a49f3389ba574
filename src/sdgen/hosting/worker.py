"""The engine worker program: ``python -m sdgen.hosting.worker``, its `WorkerJob` pickled on stdin.

It connects back to the driver, loads the engine and serves it (`sdgen.hosting.protocol`). Local
workers and Ray workers run this same program. Being a program of its own, it never imports the
user's ``__main__``: a script without a main guard, a script piped on stdin and ``python -c`` all
work (multiprocessing's spawn re-runs the caller's main module in the child, which is why vLLM
must ask users for a main guard; Ray starts workers as programs too).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys


def _die_with_parent(parent_pid: int | None) -> None:
    """SIGKILL this process when its parent dies (a SIGKILLed driver or Ray actor leaves no engine behind)."""
    if sys.platform != "linux" or parent_pid is None:
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def main() -> None:
    job = pickle.loads(sys.stdin.buffer.read())
    _die_with_parent(job.parent_pid)
    from sdgen.debug import dump_stacks_on_sigusr1

    dump_stacks_on_sigusr1()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the driver decides
    if job.pin:
        os.sched_setaffinity(0, job.pin)
    sys.path.extend(p for p in job.sys_path if p not in sys.path)

    from multiprocessing.connection import Client

    from sdgen.engines.registry import load_factory
    from sdgen.hosting.protocol import serve
    from sdgen.hosting.rendezvous import no_delay

    conn = no_delay(Client(job.address, authkey=job.authkey))
    conn.send(("hello", job.token, os.getpid()))
    serve(conn, lambda: load_factory(job.factory)(job.model, job.options))


if __name__ == "__main__":
    main()
