"""The Relay in-process: part order, lifecycle, spool failure, logs without secrets."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from app_support import EVENTS
from relay_support import relay_config
from wait_support import wait_until

from relay._app import Relay
from relay._cli import _run
from relay._config import Secret
from relay._observe.health import ComponentHealth
from relay._observe.logging import configure_logging, register_secret, reset_logging
from relay._observe.metrics import Metrics
from relay._parts import CONFIG, HEALTH, METRICS, SPOOL
from relay._spool import Spool
from relay.testing.fakes import FakeClock

COMPLETE = (EVENTS / "spark" / "04_COMPLETE_insert_revenue_by_country.json").read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_parts_start_in_order_and_stop_in_reverse_with_the_spool_still_open(
    tmp_path: Path,
) -> None:
    seen: list[str] = []

    async def delivery(app: Any) -> AsyncIterator[None]:
        # What the forwarder part gets: the open spool, metrics, config, the health registry.
        spool, _, _ = app[SPOOL], app[METRICS], app[CONFIG]
        seen.append(f"start:{spool.stats().events}")
        app[HEALTH].add("breaker", lambda: ComponentHealth(True, {"state": "closed"}))
        yield
        # Stopped before the spool closes: it can still give its leases back.
        leased = await spool.lease(max_events=10, max_bytes=1 << 20, lease_s=30)
        await spool.release([e.id for e in leased])
        seen.append(f"stop:{len(leased)}")

    r = Relay(relay_config(tmp_path / "spool"), parts=[delivery], delivery=False)
    with pytest.raises(RuntimeError, match="not started"):
        _ = r.url
    async with r:
        async with aiohttp.ClientSession() as http:
            async with http.post(r.url + "/api/v1/lineage", data=COMPLETE) as resp:
                assert resp.status == 201
            async with http.get(r.url + "/health") as resp:
                document = await resp.json()
        assert set(document["components"]) == {"ingest", "spool", "breaker"}
        assert document["components"]["breaker"] == {"status": "healthy", "state": "closed"}
        with pytest.raises(RuntimeError, match="starts once"):
            await r.start()
    assert seen == ["start:0", "stop:1"]
    await r.aclose()  # idempotent
    # The events are still there for the next start.
    async with Relay(relay_config(tmp_path / "spool"), delivery=False) as again:
        assert again.spool is not None and again.spool.stats().events == 1


async def test_spool_failure_stops_serve_with_a_nonzero_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    disk_ok = True

    def before_commit() -> None:
        if not disk_ok:
            raise OSError(5, "Input/output error")

    # The real spool, with its hook for a failing disk (an fsync error from now on).
    monkeypatch.setattr(Spool, "open", functools.partial(Spool.open, before_commit=before_commit))
    port = free_port()
    config = relay_config(tmp_path / "spool", **{"relay.listen": f"127.0.0.1:{port}"})
    serve = asyncio.create_task(_run(config))
    url = f"http://127.0.0.1:{port}/api/v1/lineage"
    async with aiohttp.ClientSession() as http:

        async def accepted() -> bool:
            try:
                async with http.post(url, data=COMPLETE) as resp:
                    assert resp.status == 201
                    return True
            except aiohttp.ClientConnectorError:
                return False  # not listening yet

        await wait_until(accepted)
        disk_ok = False
        async with http.post(url, data=COMPLETE) as resp:
            assert resp.status == 503
            assert "spool failed" in (await resp.json())["error"]
    assert await asyncio.wait_for(serve, 30) == 1
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert any("spool failure" in m for m in critical)
    # What was acknowledged before the failure is on disk.
    monkeypatch.undo()
    spool = await Spool.open(config.spool, metrics=Metrics())
    async with spool:
        assert spool.stats().events == 1


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    try:
        yield stream
    finally:
        reset_logging()


def test_log_lines_are_json_and_redacted(json_logs: io.StringIO) -> None:
    register_secret("hunter2-very-secret")
    log = logging.getLogger("relay.test")
    log.info(
        "calling with hunter2-very-secret",
        extra={
            "authorization": "Bearer abc.def.ghi",
            "headers": {"X-Api-Key": "k-123", "Accept": "application/json"},
            "jwt_token": Secret("eyJhbGciOi"),
            "jwt_token_file": "/etc/om/token",
            "detail": "sent Authorization: Bearer abc.def.ghi",
        },
    )
    try:
        raise ValueError("token hunter2-very-secret rejected")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    text = json_logs.getvalue()
    for secret in ("hunter2-very-secret", "abc.def.ghi", "k-123", "eyJhbGciOi"):
        assert secret not in text
    first = lines[0]
    assert first["level"] == "info" and first["logger"] == "relay.test"
    assert first["msg"] == "calling with ***" and first["authorization"] == "***"
    assert first["headers"] == {"X-Api-Key": "***", "Accept": "application/json"}
    assert first["jwt_token_file"] == "/etc/om/token"  # where the secret is, not the secret
    assert lines[1]["exc_type"] == "ValueError"


async def test_request_log_lines_never_contain_the_ingest_token(
    tmp_path: Path, json_logs: io.StringIO
) -> None:
    token = "ingest-token-0123456789"
    config = relay_config(tmp_path / "spool", **{"ingest.token": token})
    async with Relay(config) as r, aiohttp.ClientSession() as http:
        for presented in (token, token + "x", ""):
            headers = {"Authorization": f"Bearer {presented}", "User-Agent": presented}
            async with http.post(r.url + "/api/v1/lineage", data=COMPLETE, headers=headers):
                pass
    entries = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    requests = [e for e in entries if e["msg"] == "ingest"]
    assert [e["status"] for e in requests] == [201, 401, 401]
    # Accepted requests are routine (DEBUG); refusals are what an operator looks for (INFO).
    assert [e["level"] for e in requests] == ["debug", "info", "info"]
    assert requests[0]["events"] == 1 and requests[0]["endpoint"] == "/api/v1/lineage"
    assert requests[1]["reason"] == "unauthorized" and "bearer token" in requests[1]["error"]
    assert token not in json_logs.getvalue()


async def test_a_drain_on_a_fake_clock_ends_once_drain_timeout_s_has_passed_on_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    # Delivering towards a port where nothing listens: the event stays in the spool.
    config = relay_config(tmp_path / "spool", **{"relay.drain_timeout_s": 45})
    relay = Relay(config, clock=clock)
    await relay.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(relay.url + "/api/v1/lineage", data=COMPLETE) as resp,
        ):
            assert resp.status == 201
        closing = asyncio.create_task(relay.aclose(drain=True))
        await wait_until(lambda: 45.0 in clock.sleeps())  # the drain waits on the clock
        clock.advance(44.5)
        await wait_until(lambda: 0.5 in clock.sleeps())  # not over: 0.5 s to go
        assert not closing.done()
        clock.advance(0.5)
        async with asyncio.timeout(20):  # bounds a broken test only
            await closing
    finally:
        await relay.aclose()
    assert relay.spool is not None and relay.spool.stats().events == 1
