"""A stuck sdgen process can be asked where it is; the tests' watched runs fail on a stall with those stacks."""

from __future__ import annotations

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
    """Its whole run (~3 s) is longer than the stall window; its stderr grows every 0.4 s."""
    run = run_watched([sys.executable, "-c", BUSY], [], stall=1)
    assert run.returncode == 0 and run.stderr.split() == [str(i) for i in range(8)]
