"""relay.testing.processes: the mock and the relay as child processes, as the demo and the
benchmarks run them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from app_support import EVENTS, REPO

from relay.testing.processes import MockProcess, RelayProcess, http_json

pytestmark = pytest.mark.slow

TOKEN = "processes-test-token"  # the mock's throwaway token


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_relay_delivers_to_the_mock_and_reports_an_outage(tmp_path: Path) -> None:
    event = json.loads((EVENTS / "spark" / "05_COMPLETE_orders_daily.json").read_text())
    env = {
        "LINEAGE_RELAY_OPENMETADATA_SINK": "openlineage",
        "LINEAGE_RELAY_OPENMETADATA_JWT_TOKEN_ENV": "TEST_OM_TOKEN",
        "TEST_OM_TOKEN": TOKEN,
        "LINEAGE_RELAY_OPENMETADATA_RETRY_DELAY_MS": "50",
        "LINEAGE_RELAY_OPENMETADATA_RETRY_MAX_DELAY_MS": "100",
        "LINEAGE_RELAY_BREAKER_FAILURE_THRESHOLD": "2",
    }
    with MockProcess(tmp_path, token=TOKEN) as mock:
        env["LINEAGE_RELAY_OPENMETADATA_HOST_PORT"] = mock.url
        with RelayProcess(tmp_path, tmp_path / "spool", env=env) as relay:
            assert http_json("POST", relay.url + "/api/v1/lineage", event)[0] == 201
            deadline = time.monotonic() + 30
            while relay.metrics().get("openmetadata_lineage_events_sent_total") != 1.0:
                assert time.monotonic() < deadline, relay.log_path.read_text()
                time.sleep(0.1)
            assert [e["run"]["runId"] for e in mock.control("/mock/openlineage-events")] == [
                event["run"]["runId"]
            ]
            mock.set_faults({"mode": "down"})
            event["run"]["runId"] = "01935f3e-0000-7000-8000-00000000beef"
            assert http_json("POST", relay.url + "/api/v1/lineage", event)[0] == 201
            while relay.health()[1]["components"]["breaker"]["state"] != "open":
                assert time.monotonic() < deadline + 30, relay.health()
                time.sleep(0.1)
            assert relay.metrics()["lineage_relay_spool_events"] == 1.0
            assert relay.health()[0] == 503
            relay_pid = relay.pid
        assert relay.returncode == 0
        assert not _alive(relay_pid)
    assert mock.returncode == 0


def test_sigterm_to_the_parent_stops_its_children(tmp_path: Path) -> None:
    """A demo or benchmark stopped with SIGTERM leaves no mock or relay running."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from relay.testing.processes import MockProcess, RelayProcess, exit_on_sigterm\n"
        "exit_on_sigterm()\n"
        "work = Path(sys.argv[1])\n"
        "with MockProcess(work) as mock, RelayProcess(work, work / 'spool') as relay:\n"
        "    print(mock.pid, relay.pid, flush=True)\n"
        "    time.sleep(120)\n"
    )
    with subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    ) as parent:  # fmt: skip
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 128 + signal.SIGTERM
    assert not any(_alive(pid) for pid in pids)
