"""A dead or hanging receiver never blocks or fails Spark; stop() flushes within the deadline.

Runs real Spark in a child process (it must call `spark.stop()`, which the shared session cannot).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from plugin_support import receiving

pytestmark = [pytest.mark.spark, pytest.mark.slow]

CHILD = Path(__file__).resolve().parent / "never_block_job.py"
FLUSH_TIMEOUT_S = 1.0  # what the child configures
HANG_GUARD_S = 20.0  # only catches a hang; speed figures come from benchmarks/


@pytest.fixture(scope="module")
def child() -> dict[str, Any]:
    with receiving() as receiver:
        proc = subprocess.run(
            [sys.executable, str(CHILD), receiver.url],
            capture_output=True,
            text=True,
            timeout=170,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        cases = {}
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                cases[record["case"]] = record
        cases["exit_events"] = receiver.events()
    return cases


def expected_results() -> list[str]:
    return ["7", "7"]


def test_closed_port_jobs_run_and_stop_returns(child: dict[str, Any]) -> None:
    record = child["closed_port"]
    assert record["results"] == expected_results()
    assert record["stop_s"] < FLUSH_TIMEOUT_S + 1 + HANG_GUARD_S
    assert record["joined"]
    assert record["emitted"] == 0
    # app START, 2 writes and 2 reads as START+COMPLETE, app COMPLETE: all lost and counted
    assert record["submitted"] == record["dropped"] >= 2 + 2 * 2
    assert record["pending"] == 0
    assert record["listener_errors"] == 0


def test_hanging_receiver_jobs_run_and_stop_returns(child: dict[str, Any]) -> None:
    record = child["hanging"]
    assert record["results"] == expected_results()
    assert record["stop_s"] < FLUSH_TIMEOUT_S + 1 + HANG_GUARD_S
    assert record["emitted"] == 0
    assert record["dropped"] == record["submitted"] >= 2 + 2 * 2
    # most never got a chance: they were still queued when the deadline passed
    assert record["dropped_by_reason"]["shutdown"] >= 1
    assert record["joined"] and record["pending"] == 0


def test_interpreter_exit_flushes_open_handles(child: dict[str, Any]) -> None:
    assert child["exit"]["results"] == expected_results()
    events = child["exit_events"]
    app = [e for e in events if e["job"]["name"] == "never_block_exit"]
    assert [e["eventType"] for e in app] == ["START", "COMPLETE"]
    actions = [e for e in events if e["job"]["name"].startswith("never_block_exit.")]
    assert len(actions) == 2 * 4
    assert {e["eventType"] for e in actions} == {"START", "COMPLETE"}
