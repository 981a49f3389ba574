"""Engine workers as child processes of this one: ``python -m sdgen.hosting.worker``, connected back over a Unix socket."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

from sdgen.errors import EngineError
from sdgen.hosting.pool import WorkerHandle, WorkerPool
from sdgen.hosting.protocol import WorkerJob
from sdgen.hosting.rendezvous import Rendezvous
from sdgen.models.registry import ResolvedModel
from sdgen.spec import EngineOptions

WORKER_PROGRAM = [sys.executable, "-m", "sdgen.hosting.worker"]


def start_worker(job: WorkerJob) -> subprocess.Popen:
    """Start the worker program with ``job`` on its stdin (the one way sdgen starts an engine worker)."""
    proc = subprocess.Popen(WORKER_PROGRAM, stdin=subprocess.PIPE, close_fds=True)
    try:
        proc.stdin.write(pickle.dumps(job))
        proc.stdin.close()
    except BrokenPipeError:  # it died at once; describe_exit says how
        pass
    return proc


class LocalWorker(WorkerHandle):
    def __init__(self, rendezvous: Rendezvous, factory: str, model: ResolvedModel, options: EngineOptions) -> None:
        token = rendezvous.new_token()
        job = WorkerJob(rendezvous.address, rendezvous.authkey, token, factory, model, options,
                        sys_path=list(sys.path), parent_pid=os.getpid())  # fmt: skip
        self.process = start_worker(job)
        try:
            self.conn, self.pid = rendezvous.wait_for(token, self._check_alive)
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise EngineError(f"the engine worker failed to start: {self.describe_exit()}")

    def stop(self, kill: bool = False) -> None:
        try:
            if not kill:
                self.conn.send(("close",))
        except OSError:
            pass
        try:
            self.process.wait(timeout=0 if kill else 30)
        except subprocess.TimeoutExpired:
            pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.conn.close()

    def describe_exit(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the engine worker process closed its connection"
        if code < 0:
            return f"the engine worker process was killed by signal {-code}"
        return f"the engine worker process exited (code {code})"


def local_pool(factory: str, model: ResolvedModel, options: EngineOptions, backend: str) -> WorkerPool:
    """One engine in a child process, restarted every ``options.recycle_every`` requests."""
    rendezvous = Rendezvous()
    try:
        return WorkerPool(lambda: LocalWorker(rendezvous, factory, model, options), recycle_every=options.recycle_every,
                          backend=backend, on_close=rendezvous.close)  # fmt: skip
    except BaseException:
        rendezvous.close()
        raise
