"""Fixtures for the mock OpenMetadata tests: a seeded mock on loopback and a client.

Registered for the folder by its conftest.py (which only imports them), so the code is
type-checked under its own module name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import schema_oracle as oracle
from mock_support import AUTH, TOKEN, catalog

from relay.testing.mock_openmetadata import DEFAULT_SERVER_VERSION, MockOpenMetadata


@pytest.fixture
def server_version() -> str:
    """The version the ``mock`` fixture answers as; parametrize it to test another."""
    return DEFAULT_SERVER_VERSION


@pytest.fixture
async def mock(
    request: pytest.FixtureRequest, server_version: str
) -> AsyncIterator[MockOpenMetadata]:
    """A seeded mock. Afterwards, every body the test sent it is judged by OpenMetadata's
    JSON Schemas too (when the reference folder is present): the mock must have accepted
    exactly the bodies the schemas accept."""
    shared_dir: Path | None
    try:
        shared_dir = request.getfixturevalue("shared_dir")
    except pytest.skip.Exception:
        shared_dir = None
    async with MockOpenMetadata(
        tokens=[TOKEN], catalog=catalog(), seed=7, version=server_version
    ) as server:
        yield server
        recorded = server.requests
    if shared_dir is not None:
        assert oracle.disagreements(shared_dir, recorded) == []


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield session
