"""The real openlineage-python transports post to the relay; the spool holds what they sent.

Every event goes through the client's own serialisation (`Serde.to_json`, what its
transports put on the wire), so "byte-identical" is checked against the exact
bytes the client sent, for the sync `HttpTransport` and the `AsyncHttpTransport`,
with and without `compression: gzip`.
"""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from ingest_support import EVENTS, spooled
from openlineage.client.serde import Serde
from openlineage.client.transport.async_http import AsyncHttpConfig, AsyncHttpTransport
from openlineage.client.transport.http import HttpCompression, HttpConfig, HttpTransport
from relay_support import StartRelay
from requests import HTTPError

from relay._app import Relay

TRANSPORTS = ["http", "http+gzip", "async_http", "async_http+gzip"]


def _emit_all(kind: str, url: str, events: list[dict[str, Any]]) -> list[int]:
    """Emit with the real transport (blocking: run in a thread); return indexes refused.

    The transports serialise a dict exactly as an event object (`Serde.to_json`); dicts
    keep every facet of the samples, including those the client has no class for.
    """
    compression = HttpCompression.GZIP if kind.endswith("+gzip") else None
    refused: list[int] = []
    if kind.startswith("async_http"):
        transport = AsyncHttpTransport(
            AsyncHttpConfig(url=url, compression=compression, retry={"total": 0})
        )
        try:
            for event in events:
                transport.emit(cast(Any, event))
            assert transport.wait_for_completion(timeout=30)
            stats = transport.get_stats()
            assert stats["failed"] == 0, stats
        finally:
            transport.close(timeout=10)
        return refused
    sync = HttpTransport(HttpConfig(url=url, compression=compression, retry={"total": 0}))
    try:
        for i, event in enumerate(events):
            try:
                sync.emit(cast(Any, event))
            except HTTPError as exc:
                assert exc.response is not None and exc.response.status_code == 400, exc
                refused.append(i)
    finally:
        sync.close()
    return refused


async def _post_through(kind: str, relay: Relay, events: list[dict[str, Any]]) -> list[int]:
    refused = await asyncio.to_thread(_emit_all, kind, relay.url, events)
    expected = [Serde.to_json(e).encode() for i, e in enumerate(events) if i not in set(refused)]
    got = [e.body for e in await spooled(relay)]
    # The async transport posts concurrently: compare as multisets, exact bytes.
    assert collections.Counter(got) == collections.Counter(expected)
    if not kind.startswith("async"):
        assert got == expected  # one at a time: also in order
    return refused


def _load(paths: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(p.read_bytes()) for p in paths]


OWN = sorted([*EVENTS.glob("spark/*.json"), *EVENTS.glob("client/*.json")]) + sorted(
    EVENTS.glob("invalid_facet/*.json")
)


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_client_posts_project_events(start_relay: StartRelay, kind: str) -> None:
    relay = await start_relay()
    assert await _post_through(kind, relay, _load(OWN)) == []


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_client_posts_reference_events(
    start_relay: StartRelay, shared_dir: Path, kind: str
) -> None:
    samples = shared_dir / "openlineage-samples"
    real = sorted(samples.glob("spark-real/*/*.json"))
    fixtures = sorted(samples.glob("client-fixtures/*.json"))
    assert len(real) >= 20 and fixtures
    relay = await start_relay()
    events = _load(real + fixtures)
    if kind.startswith("async"):
        # The async transport does not surface a 400; post only complete events through it.
        events = [e for e in events if "producer" in e]
    refused = await _post_through(kind, relay, events)
    # Only the templated Spark serde fixture (no `producer`: not a complete event) is refused.
    assert all("producer" not in events[i] for i in refused)
    assert len(refused) == sum("producer" not in e for e in events)


async def test_validation_fixtures_envelope_only(start_relay: StartRelay, shared_dir: Path) -> None:
    relay = await start_relay()
    folder = shared_dir / "openlineage-samples" / "validation-fixtures"
    accepted = []
    async with aiohttp.ClientSession() as http:
        for path in sorted(folder.glob("*.json")):
            async with http.post(relay.url + "/api/v1/lineage", data=path.read_bytes()) as resp:
                if "no_run_id" in path.name:
                    assert resp.status == 400, path.name
                    assert "run.runId" in (await resp.json())["error"]
                else:  # a broken facet is never a reason to refuse an event
                    assert resp.status == 201, (path.name, await resp.text())
                    accepted.append(path.read_bytes())
    assert sum("invalid" in p.name for p in folder.glob("*.json")) >= 5
    assert [e.body for e in await spooled(relay)] == accepted
