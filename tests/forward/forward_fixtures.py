"""Fixtures for the forwarder's tests: a real spool on disk (helpers: forward_support.py).

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


@pytest.fixture
async def spool(tmp_path: Path, metrics: Metrics) -> AsyncIterator[Spool]:
    opened = await Spool.open(SpoolConfig(dir=tmp_path / "spool"), metrics=metrics)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
async def running() -> AsyncIterator[list[Forwarder]]:
    """Forwarders started by a test, closed at teardown."""
    started: list[Forwarder] = []
    yield started
    for forwarder in started:
        await forwarder.aclose()
