"""A stuck sdgen process can be asked where it is; the tests' watched runs fail on a stall with those stacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sdgen.testing import run_watched

STUCK = "from sdgen.debug import dump_stacks_on_sigusr1\ndump_stacks_on_sigusr1()\nimport time\ndef waits_here():\n    time.sleep(3600)\nwaits_here()\n"  # fmt: skip
BUSY = "import sys, time\nfor i in range(8):\n    print(i, file=sys.stderr, flush=True)\n    time.sleep(0.4)\n"


def test_a_run_that_stops_progressing_fails_with_its_stacks(tmp_path):
    with pytest.raises(AssertionError) as failed:
        run_watched([sys.executable, "-c", STUCK], [tmp_path / "never"], stall=1, on_stall=lambda: "state: stuck")
    message = str(failed.value)
    assert "no progress for 1 s" in message and "in waits_here" in message and message.endswith("state: stuck")


def test_a_run_that_keeps_progressing_runs_to_its_end(tmp_path):
    """Its whole run (~3 s) is longer than the stall window; its stderr grows every 0.4 s, far inside the window."""
    run = run_watched([sys.executable, "-c", BUSY], [], stall=2.5)
    assert run.returncode == 0 and run.stderr.split() == [str(i) for i in range(8)]


HANGING_TEST = f"""
import subprocess, sys
import pytest

@pytest.mark.timeout(6)
def test_hangs():
    subprocess.run([sys.executable, "-c", {STUCK!r}])
"""


def test_a_test_that_hangs_fails_at_its_deadline_with_the_stacks_of_its_sdgen_processes(tmp_path):
    """The suite's backstop (pytest-timeout) fails a hung test; just before it, the conftest's fixture has every sdgen
    process the test started print its stacks, so the failure shows where the child waits, not only the parent."""
    (tmp_path / "conftest.py").write_text("from sdgen.testing import stacks_fixture\nstacks = stacks_fixture()\n")
    (tmp_path / "test_hang.py").write_text(HANGING_TEST)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_hang.py")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 1 and "Timeout (>6.0s) from pytest-timeout" in out, out[-3000:]
    assert "in waits_here" in out, out[-3000:]  # the child's stack, printed by the child itself
