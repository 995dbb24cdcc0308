"""`lineage-relay serve` killed with SIGKILL in the middle of a drain: the rest still arrives."""

from __future__ import annotations

import asyncio
import collections
import signal
from pathlib import Path

import aiohttp
import orjson
import pytest
from forward_support import fresh_copies
from relay_support import RelayProcess, forwarding_settings
from wait_support import wait_until

from relay.testing.mock_openmetadata import MockOpenMetadata

pytestmark = pytest.mark.slow

NATIVE = "/api/v1/openlineage/lineage/batch"


async def spool_events(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/health") as response:
        document = await response.json()
    return int(document["components"]["spool"]["events"])


async def test_sigkill_mid_drain_then_restart_delivers_everything(
    tmp_path: Path, mock: MockOpenMetadata
) -> None:
    bodies = [body for body, _ in fresh_copies(12)]  # 60 events, 6 calls of 10
    await mock.set_faults({"mode": "slow", "latency_ms": 150, "path": NATIVE})
    # Both relays on one spool: the second finds what the killed one left.
    settings = forwarding_settings(tmp_path, mock.url, **{
        "openmetadata.connection_pool_size": 1,
        "forwarder.max_batch_events": 10,
        "forwarder.linger_ms": 0,
    })  # fmt: skip
    spool_dir = tmp_path / "spool"  # forwarding_settings' spool.dir
    first = RelayProcess(tmp_path, spool_dir, name="first", settings=settings)
    try:
        await asyncio.to_thread(first.start)
        async with aiohttp.ClientSession() as http:
            payload = b"[" + b",".join(bodies) + b"]"
            async with http.post(f"{first.url}/api/v1/lineage/batch", data=payload) as response:
                assert response.status == 201
            await wait_until(lambda: len(mock.openlineage_events) >= 20)
    finally:
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait)

    delivered_before = len(mock.openlineage_events)
    assert delivered_before < len(bodies)
    second = RelayProcess(tmp_path, spool_dir, name="second", settings=settings)
    try:
        await asyncio.to_thread(second.start)
        async with aiohttp.ClientSession() as http:

            async def drained() -> bool:
                return await spool_events(http, second.url) == 0

            await wait_until(drained, within_s=60)
    finally:
        returncode = await asyncio.to_thread(second.stop)  # SIGTERM
    assert returncode == 0

    received = collections.Counter(
        orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in mock.openlineage_events
    )
    expected = {orjson.dumps(orjson.loads(b), option=orjson.OPT_SORT_KEYS) for b in bodies}
    assert set(received) == expected  # nothing lost
    # At-least-once: only the call in flight at the kill (one batch) may come twice.
    assert sum(received.values()) - len(expected) <= 10
