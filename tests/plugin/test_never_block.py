"""A dead or hanging receiver never blocks or fails Spark; stop() flushes within the deadline.

Runs issue 2's jobs (`show_jobs`, the ones `test_plugin_show` asserts the events of) in a child
process with real Spark: it must call `spark.stop()`, which the shared session cannot. How long
`spark.stop()` takes is measured by `benchmarks/spark_overhead.py` (RESULT spark_stop_s_*); here
only a hang is caught.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from plugin_support import receiving
from show_jobs import EXPECTED_ROWS, JOBS

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
            timeout=170,  # under pytest's 180 s per-test timeout
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


def assert_jobs_ran(record: dict[str, Any]) -> None:
    """Every job kind ran to its normal end (the failing one fails by design) and wrote."""
    assert record["ran"] == list(JOBS)
    assert record["rows"] == EXPECTED_ROWS


def assert_all_lost_and_counted(record: dict[str, Any]) -> None:
    # app START and COMPLETE, and START + COMPLETE/FAIL of one run per job (the row checks
    # after the jobs are read-only runs of their own): nothing delivered, everything counted
    assert record["emitted"] == 0
    assert record["submitted"] == record["dropped"] >= 2 + 2 * len(JOBS)
    assert record["runs"] >= len(JOBS)
    assert record["joined"] and record["pending"] == 0
    assert record["listener_errors"] == 0


def test_closed_port_jobs_run_and_stop_returns(child: dict[str, Any]) -> None:
    record = child["closed_port"]
    assert_jobs_ran(record)
    assert record["stop_s"] < FLUSH_TIMEOUT_S + 1 + HANG_GUARD_S
    assert_all_lost_and_counted(record)
    assert record["dropped_by_reason"]["undeliverable"] >= 1


def test_hanging_receiver_jobs_run_and_stop_returns(child: dict[str, Any]) -> None:
    record = child["hanging"]
    assert_jobs_ran(record)
    assert record["stop_s"] < FLUSH_TIMEOUT_S + 1 + HANG_GUARD_S
    assert_all_lost_and_counted(record)
    # most never got a chance: they were still queued when the deadline passed
    assert record["dropped_by_reason"]["shutdown"] >= 1


def test_interpreter_exit_flushes_open_handles(child: dict[str, Any]) -> None:
    assert_jobs_ran(child["exit"])
    events = child["exit_events"]
    app = [e for e in events if e["job"]["name"] == "never_block_exit"]
    assert [e["eventType"] for e in app] == ["START", "COMPLETE"]
    actions = [e for e in events if e["job"]["name"].startswith("never_block_exit.")]
    by_run: dict[str, list[str]] = {}
    for event in actions:
        by_run.setdefault(event["run"]["runId"], []).append(event["eventType"])
    assert len(by_run) >= len(JOBS)
    assert sorted(set(map(tuple, by_run.values()))) == [("START", "COMPLETE"), ("START", "FAIL")]
    assert sum(types == ["START", "FAIL"] for types in by_run.values()) == 1
