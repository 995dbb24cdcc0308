"""The ingest limits as a user sets them: validated keys, the budget, the pace of a body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from ingest_support import EVENTS
from relay_support import StartRelay

from relay._config import load_config
from relay._exceptions import ConfigError
from relay._ingest.limits import BodyBudget, OverBudget, Pace

COMPLETE = (EVENTS / "spark" / "04_COMPLETE_insert_revenue_by_country.json").read_bytes()


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("ingest.max_body_bytes_in_flight", 1024, "ingest.max_body_bytes_in_flight = 1024"),
        ("ingest.header_timeout_s", 0, "ingest.header_timeout_s"),
        ("ingest.idle_timeout_s", -1, "ingest.idle_timeout_s"),
        ("ingest.min_body_bytes_per_s", -5, "ingest.min_body_bytes_per_s"),
        ("ingest.body_grace_s", -1.0, "ingest.body_grace_s"),
    ],
)
def test_limits_are_validated_naming_the_key(key: str, value: object, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(None, environ={}, overrides={key: value})


def test_limits_come_from_the_environment() -> None:
    env = {
        "LINEAGE_RELAY_INGEST_MIN_BODY_BYTES_PER_S": "0",
        "LINEAGE_RELAY_INGEST_IDLE_TIMEOUT_S": "3",
    }
    ingest = load_config(None, environ=env).ingest
    assert (ingest.min_body_bytes_per_s, ingest.idle_timeout_s) == (0, 3.0)


def test_budget_holds_and_gives_back() -> None:
    budget = BodyBudget(100)
    first, second = budget.hold(), budget.hold()
    first.grow_to(60)
    first.grow_to(40)  # never shrinks below what it took
    with pytest.raises(OverBudget, match=r"ingest\.max_body_bytes_in_flight = 100"):
        second.grow_to(41)
    second.grow_to(40)
    assert budget.held_bytes == 100
    first.release()
    second.release()
    assert budget.held_bytes == 0


def test_pace_allows_a_grace_then_the_minimum_rate() -> None:
    pace = Pace(started=100.0, read_timeout_s=30.0, min_bytes_per_s=1000, grace_s=2.0)
    assert pace.deadline(0) == 102.0
    assert pace.deadline(5000) == 107.0  # 5000 bytes buy 5 more seconds
    assert pace.deadline(10**9) == 130.0  # never beyond the read timeout
    assert "ingest.min_body_bytes_per_s = 1000" in pace.expired(103.0, 1000).message
    assert "ingest.read_timeout_s = 30" in pace.expired(130.0, 10**9).message
    no_minimum = Pace(started=0.0, read_timeout_s=5.0, min_bytes_per_s=0, grace_s=0.0)
    assert no_minimum.deadline(0) == 5.0


async def test_the_budget_refuses_with_503_and_health_shows_it(start_relay: StartRelay) -> None:
    relay = await start_relay(
        **{
            "ingest.max_body_bytes": 64 * 1024,
            "ingest.max_body_bytes_in_flight": 64 * 1024,
            "ingest.body_grace_s": 30.0,
        }
    )
    release = asyncio.Event()

    async def big() -> AsyncIterator[bytes]:
        yield b"[" + b" " * (60 * 1024)  # held while it waits for the rest
        await release.wait()
        yield b"]"

    async with aiohttp.ClientSession() as http:
        held = asyncio.create_task(http.post(relay.url + "/api/v1/lineage/batch", data=big()))
        while relay.ingest.body_bytes_in_flight < 60 * 1024:
            await asyncio.sleep(0.01)
        async with http.post(relay.url + "/api/v1/lineage", data=COMPLETE) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "1"
            assert "ingest.max_body_bytes_in_flight" in (await resp.json())["error"]
        async with http.get(relay.url + "/health") as resp:
            ingest = (await resp.json())["components"]["ingest"]
        assert ingest["body_bytes_in_flight"] >= 60 * 1024
        assert ingest["max_body_bytes_in_flight"] == 64 * 1024
        release.set()
        async with await held as resp:
            assert resp.status == 201
        async with http.post(relay.url + "/api/v1/lineage", data=COMPLETE) as resp:
            assert resp.status == 201
    assert relay.ingest.body_bytes_in_flight == 0


async def test_a_discarded_body_does_not_start_the_header_timer(start_relay: StartRelay) -> None:
    """After an early 413, aiohttp reads and drops the rest of the body: those bytes are no
    new request, so the kept-alive connection sits idle past the header timeout unharmed."""
    relay = await start_relay(
        **{
            "ingest.max_body_bytes": 16384,
            "ingest.header_timeout_s": 0.3,
            "ingest.idle_timeout_s": 5,
        }
    )
    host, port = relay.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    big = b"x" * 65536
    writer.write(
        b"POST /api/v1/lineage HTTP/1.1\r\nHost: r\r\nContent-Length: %d\r\n\r\n" % len(big)
    )
    await writer.drain()
    assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 413")
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                 .split(b":")[1])  # fmt: skip
    await reader.readexactly(length)
    writer.write(big)  # the body arrives after the answer: discarded
    await writer.drain()
    await asyncio.sleep(1.0)  # idle, well past header_timeout_s
    writer.write(
        b"POST /api/v1/lineage HTTP/1.1\r\nHost: r\r\nContent-Length: %d\r\n\r\n%s"
        % (len(COMPLETE), COMPLETE)
    )
    await writer.drain()
    assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 201")
    writer.close()
    await writer.wait_closed()
