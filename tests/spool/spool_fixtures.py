"""Fixtures for the spool's tests.

Registered for the folder by its conftest.py (which only imports them), so the code is
type-checked under its own module name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from spool_support import Opener

from relay._config import SpoolConfig
from relay._observe.metrics import Metrics
from relay._spool import Spool
from relay.testing.fakes import FakeClock


@pytest.fixture
async def open_spool(tmp_path: Path, metrics: Metrics, clock: FakeClock) -> AsyncIterator[Opener]:
    """Open spools in tmp_path/spool (closed at teardown); keyword arguments go to SpoolConfig
    except `metrics`, `clock`, `before_commit` and `scan_gate`."""
    opened: list[Spool] = []

    async def opener(**kwargs: Any) -> Spool:
        spool_kwargs = {
            k: kwargs.pop(k)
            for k in ("metrics", "clock", "before_commit", "scan_gate")
            if k in kwargs
        }
        spool_kwargs.setdefault("metrics", metrics)
        spool_kwargs.setdefault("clock", clock)
        config = SpoolConfig(dir=kwargs.pop("dir", tmp_path / "spool"), **kwargs)
        spool = await Spool.open(config, **spool_kwargs)
        opened.append(spool)
        return spool

    yield opener
    for spool in opened:
        await spool.aclose()
