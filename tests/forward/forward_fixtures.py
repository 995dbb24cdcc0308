"""Fixtures for the forwarder's tests: a real spool on disk on the shared fake clock (`clock`
in tests/conftest.py) and the forwarders a test started (helpers: forward_support.py).

Registered for the folder by its conftest.py (which only imports them), so the code is
type-checked under its own module name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay._config import SpoolConfig
from relay._forward.forwarder import Forwarder
from relay._observe.metrics import Metrics
from relay._spool import Spool
from relay.testing.fakes import FakeClock


@pytest.fixture
async def spool(tmp_path: Path, metrics: Metrics, clock: FakeClock) -> AsyncIterator[Spool]:
    opened = await Spool.open(SpoolConfig(dir=tmp_path / "spool"), metrics=metrics, clock=clock)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
async def running() -> AsyncIterator[list[Forwarder]]:
    """Forwarders started by a test, closed at teardown (at once: their clock may be fake,
    and a grace period on it would never end)."""
    started: list[Forwarder] = []
    yield started
    for forwarder in started:
        await forwarder.aclose(wait_s=0)
