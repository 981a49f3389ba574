"""One writer per output: a second run on an output that a live run is writing refuses in one line naming the
holder, whatever it was asked (fresh, --resume, --overwrite), and the first run's dataset stays exact."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
import yaml

import sdgen
from sdgen.errors import OutputError
from sdgen.store.lock import OutputLock, lock_path

from conftest import ROOT, cli_error, shop_spec
from fake_engines import CopyingEngine
from sdgen.engines import register_engine

register_engine("copying", CopyingEngine)  # this process's refusals name the same backend as the first run

# A first run that pauses once 8 rows have settled, until the test creates `go` (progress decides, not a clock).
FIRST = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import sdgen
    from sdgen.progress import NullProgress
    from sdgen.engines import register_engine
    from fake_engines import CopyingEngine
    register_engine("copying", CopyingEngine)

    class PauseAt(NullProgress):
        rows = 0
        def update(self, rows, tokens):
            self.rows += rows
            if self.rows >= 8 and not Path({ready!r}).exists():
                Path({ready!r}).touch()
                deadline = time.monotonic() + 300
                while not Path({go!r}).exists():
                    if time.monotonic() > deadline:
                        raise SystemExit("the test never said go")
                    time.sleep(0.05)

    sdgen.generate({spec!r}, backend="copying", report=False, progress=PauseAt())
    print("first done", flush=True)
""")


def wait_for(path, proc, deadline_s: float = 300) -> None:
    deadline = time.monotonic() + deadline_s
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the first run ended early: {proc.communicate()}")
        assert time.monotonic() < deadline, "the first run never reached 8 rows"
        time.sleep(0.05)


def test_a_second_run_on_a_live_output_refuses_and_the_first_stays_exact(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(shop_spec(tmp_path, sample_size=40, batch_size=4)))
    ready, go = tmp_path / "ready", tmp_path / "go"
    code = FIRST.format(tests=str(ROOT / "tests"), ready=str(ready), go=str(go), spec=str(spec))
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(ready, first)
        for extra in ([], ["--resume"], ["--overwrite"]):
            line = cli_error(capsys, monkeypatch, "generate", spec, "--backend", "copying", *extra)
            assert f"is being written by another sdgen run (pid {first.pid} on " in line, line
        with pytest.raises(OutputError, match=f"pid {first.pid}"):
            sdgen.generate(spec, backend="copying", overwrite=True)
    finally:
        go.touch()
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0 and "first done" in out, err
    df = pd.read_csv(tmp_path / "out.csv")
    assert len(df) == 40 and df["row"].is_unique
    assert not lock_path(tmp_path / "out.csv").exists()  # released when the run ended
    sdgen.generate(spec, backend="copying", overwrite=True)  # and the output is free again


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    output = tmp_path / "out.csv"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from sdgen.store.lock import OutputLock
        OutputLock(Path({str(output)!r})).acquire()
        print("locked", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=f"pid {holder.pid} on"):
            OutputLock(output).acquire()
        holder.kill()
        holder.wait(timeout=60)
        assert lock_path(output).exists()  # the file stays; the kernel dropped the lock with the process
        with OutputLock(output):
            pass
    finally:
        holder.kill()
