"""`make demo` keeps working: the demo script runs end to end on its own."""

from __future__ import annotations

import subprocess
import sys

import pytest
from app_support import REPO

pytestmark = pytest.mark.slow


def test_demo_runs_and_every_event_is_acknowledged() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All 6 events were acknowledged only after reaching the disk." in result.stdout
    assert 'lineage_relay_events_received_total{endpoint="/api/v1/lineage"}      6' in result.stdout
    assert "exit status 0" in result.stdout
