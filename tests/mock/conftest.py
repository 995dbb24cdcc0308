"""Fixtures for the mock OpenMetadata tests: a seeded mock on loopback and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from mock_support import AUTH, TOKEN, catalog

from relay.testing.mock_openmetadata import MockOpenMetadata


@pytest.fixture
async def mock() -> AsyncIterator[MockOpenMetadata]:
    async with MockOpenMetadata(tokens=[TOKEN], catalog=catalog(), seed=7) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield session
