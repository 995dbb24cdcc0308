"""A PySpark job run while the relay is stopped leaves a spill file; a relay started
afterwards delivers those events to OpenMetadata (the mock) exactly once.

The job runs in a child process with real Spark (it must call `spark.stop()`, which the shared
session cannot); the relay and the mock run in-process on loopback (the `start_forwarding_relay`
and `mock` fixtures). How long `spark.stop()` takes is measured by
`benchmarks/spark_overhead.py`; here the bound only catches a hang.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from plugin_support import closed_port_url
from relay_support import StartRelay
from wait_support import wait_until

from relay.testing.mock_openmetadata import MockOpenMetadata

pytestmark = [pytest.mark.spark, pytest.mark.slow]

CHILD = Path(__file__).resolve().parent / "spill_job.py"
FLUSH_TIMEOUT_S = 1.0  # what the child configures
HANG_GUARD_S = 5.0


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("spill_job")
    spill_dir = base / "spill"
    proc = subprocess.run(
        [sys.executable, str(CHILD), closed_port_url(), str(spill_dir), str(base)],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    record["spill_dir"] = spill_dir
    record["files"] = sorted(spill_dir.glob("*.ndjson"))
    record["events"] = [
        orjson.loads(line) for path in record["files"] for line in path.read_bytes().splitlines()
    ]
    return record


def identity(event: dict[str, Any]) -> tuple[str, str, str]:
    return (event["run"]["runId"], event["eventType"], event["job"]["name"])


def test_the_job_ran_and_stop_returned_within_the_flush_timeout(job: dict[str, Any]) -> None:
    assert job["rows"] == 15
    assert job["stop_s"] < FLUSH_TIMEOUT_S + HANG_GUARD_S


def test_everything_the_job_emitted_is_in_one_spill_file(job: dict[str, Any]) -> None:
    assert [p.name for p in job["files"]] == [f"{job['application_id']}-{job['app_run_id']}.ndjson"]
    assert job["emitted"] == 0 and job["dropped"] == 0 and job["pending"] == 0
    assert job["spilled"] == job["submitted"] == len(job["events"])
    kinds = Counter(e["eventType"] for e in job["events"] if e["job"]["name"] == "spill_job")
    assert kinds == Counter({"START": 1, "COMPLETE": 1})  # the application run
    assert sum(e["eventType"] == "COMPLETE" for e in job["events"]) >= 3  # + the actions
    assert len(set(map(identity, job["events"]))) == len(job["events"])


async def test_a_relay_started_afterwards_delivers_them_exactly_once(
    job: dict[str, Any], mock: MockOpenMetadata, start_forwarding_relay: StartRelay
) -> None:
    relay = await start_forwarding_relay(**{"ingest.spill_dir": str(job["spill_dir"])})

    def delivered_and_drained() -> bool:
        spool = relay.spool
        return len(mock.openlineage_events) >= len(job["events"]) and not (
            spool is not None and spool.stats().events
        )

    await wait_until(delivered_and_drained, within_s=30)
    assert not list(Path(job["spill_dir"]).glob("*.ndjson*"))  # deleted once spooled
    delivered = Counter(map(identity, mock.openlineage_events))
    assert delivered == Counter(map(identity, job["events"]))  # each exactly once
