"""A real relay (real spool on a tmp dir) on an ephemeral loopback port, and a client.

Registered for the folder by its conftest.py (which only imports them), so the code is
type-checked under its own module name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from hostile_support import TALLY
from relay_support import StartRelay

from relay._app import Relay


@pytest.fixture
async def relay(start_relay: StartRelay) -> Relay:
    """A relay of the root `start_relay` fixture: no delivery, a spool of its own."""
    return await start_relay()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The hostile-input figures, when those tests ran (tests/ingest/test_hostile_input.py)."""
    if TALLY.cases:
        terminalreporter.write_line(f"RESULT fuzz_cases={TALLY.cases}")
        terminalreporter.write_line(f"RESULT fuzz_crashes={len(TALLY.crashes)}")
