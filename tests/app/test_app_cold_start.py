"""A relay on a big spool listens at once: /health and ingest answer while the spool's
integrity scan is still running, and /health tells how far the scan is."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import aiohttp
from app_support import EVENTS
from relay_support import StartRelay, relay_config

from relay._app import Relay
from relay._config import Config
from relay._events import EventKey
from relay._observe.metrics import Metrics
from relay._spool import Spool
from relay._spool.integrity import VERIFY_AT_OPEN_BYTES

COMPLETE = (EVENTS / "spark" / "04_COMPLETE_insert_revenue_by_country.json").read_bytes()


async def fill_big_spool(config: Config) -> int:
    """More events than the open checks itself; returns how many."""
    body = b'{"pad":"' + b"x" * 9_990 + b'"}'
    count = VERIFY_AT_OPEN_BYTES // len(body) + 100
    spool = await Spool.open(config.spool, metrics=Metrics())
    for start in range(0, count, 100):
        n = min(100, count - start)
        await spool.append([(body, EventKey(kind="job", event_time="t", producer="p"))] * n)
    await spool.aclose()
    return count


async def health(http: aiohttp.ClientSession, relay: Relay) -> tuple[int, dict[str, Any]]:
    async with http.get(relay.url + "/health") as resp:
        return resp.status, await resp.json()


async def test_health_and_ingest_answer_while_the_integrity_scan_runs(tmp_path: Path) -> None:
    config = relay_config(tmp_path / "spool")
    backlog = await fill_big_spool(config)
    gate = threading.Event()  # holds the scan: the relay must serve without it
    relay = Relay(config, delivery=False, spool_scan_gate=gate)
    async with relay, aiohttp.ClientSession() as http:
        status, document = await health(http, relay)
        assert status == 200
        spool_health = document["components"]["spool"]
        assert spool_health["integrity_scan"] == "pending"
        assert spool_health["integrity_checked_bytes"] == 0
        assert spool_health["events"] == backlog
        async with http.post(relay.url + "/api/v1/lineage", data=COMPLETE) as resp:
            assert resp.status == 201  # durable, while the backlog is not checked yet

        gate.set()
        assert relay.spool is not None
        await relay.spool.wait_integrity_checked()
        status, document = await health(http, relay)
        assert status == 200
        assert document["components"]["spool"]["integrity_scan"] == "done"
        assert document["components"]["spool"]["integrity_checked_bytes"] > VERIFY_AT_OPEN_BYTES
        assert document["components"]["spool"]["events"] == backlog + 1


async def test_a_small_spool_is_checked_at_open_and_health_says_nothing_of_a_scan(
    start_relay: StartRelay,
) -> None:
    relay = await start_relay()  # an empty spool of its own, no delivery
    async with aiohttp.ClientSession() as http:
        status, document = await health(http, relay)
        assert status == 200
        assert "integrity_scan" not in document["components"]["spool"]
        assert relay.spool is not None
        await relay.spool.wait_integrity_checked()  # at once
