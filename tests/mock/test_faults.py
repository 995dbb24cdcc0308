"""Fault injection: every mode, rule selection, the control API, and the request log."""

from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import pytest
from mock_support import AUTH, ORDERS

from relay.testing.mock_openmetadata import FaultRule, MockOpenMetadata

SHORT = aiohttp.ClientTimeout(total=1.0)


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url, timeout=SHORT) as resp:
        await resp.read()
        return resp.status


async def test_error_mode_answers_status_body_and_retry_after(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await mock.set_faults({"mode": "error", "status": 429, "retry_after_s": 2.5})
    async with client.get(f"{mock.url}/v1/tables/name/{ORDERS}") as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "3"
        assert await resp.json() == {"code": 429, "message": "mock fault: injected HTTP 429"}


async def test_rules_select_by_path_glob_method_and_first_match_wins(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await mock.set_faults(
        [
            {"mode": "healthy", "path": "/api/v1/tables/name/*daily_revenue"},
            {"mode": "error", "status": 502, "path": "/api/v1/tables/*", "method": "get"},
        ]
    )
    assert await _status(client, f"{mock.url}/v1/tables/name/{ORDERS}") == 502
    assert (
        await _status(client, f"{mock.url}/v1/tables/name/hive_prod.warehouse.sales.daily_revenue")
        == 200
    )
    assert await _status(client, f"{mock.url}/v1/system/version") == 200


async def test_times_fails_the_first_n_requests_then_recovers(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await mock.set_faults({"mode": "error", "status": 503, "times": 2})
    url = f"{mock.url}/v1/tables/name/{ORDERS}"
    assert [await _status(client, url) for _ in range(4)] == [503, 503, 200, 200]


async def test_rate_fails_a_share_of_requests(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await mock.set_faults({"mode": "error", "status": 500, "rate": 0.5})
    statuses = [await _status(client, f"{mock.url}/v1/system/version") for _ in range(60)]
    assert 5 < statuses.count(500) < 55
    assert set(statuses) == {200, 500}


async def test_slow_mode_delays_but_answers(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await mock.set_faults({"mode": "slow", "latency_ms": 2000})
    with pytest.raises(TimeoutError):
        async with client.get(
            f"{mock.url}/v1/system/version", timeout=aiohttp.ClientTimeout(total=0.2)
        ):
            pass
    await mock.set_faults({"mode": "slow", "latency_ms": 30, "jitter_ms": 10})
    assert await _status(client, f"{mock.url}/v1/system/version") == 200
    recorded = mock.requests[-1]
    assert recorded["fault"] == "slow"
    assert recorded["duration_ms"] >= 19  # the delay happened inside the mock


async def test_hang_mode_never_answers(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await mock.set_faults({"mode": "hang", "path": "/api/v1/lineage"})
    with pytest.raises(TimeoutError):
        async with client.put(
            f"{mock.url}/v1/lineage", json={}, timeout=aiohttp.ClientTimeout(total=0.3)
        ):
            pass
    assert await _status(client, f"{mock.url}/v1/system/version") == 200


async def test_reset_mode_drops_the_connection(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await mock.set_faults({"mode": "reset"})
    with pytest.raises(aiohttp.ClientConnectionError):
        await _status(client, f"{mock.url}/v1/system/version")
    await mock.set_faults([])
    assert await _status(client, f"{mock.url}/v1/system/version") == 200


async def test_down_refuses_connections_while_control_stays_up(mock: MockOpenMetadata) -> None:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        assert await _status(session, f"{mock.url}/v1/system/version") == 200  # keep-alive open
        async with session.put(f"{mock.control_url}/mock/faults", json={"mode": "down"}) as resp:
            assert resp.status == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            await _status(session, f"{mock.url}/v1/system/version")
        async with aiohttp.ClientSession() as fresh:
            with pytest.raises(aiohttp.ClientConnectorError) as refused:
                await _status(fresh, f"{mock.url}/v1/system/version")
            assert isinstance(refused.value.os_error, ConnectionRefusedError)
        async with session.get(f"{mock.control_url}/mock/health") as resp:
            assert (await resp.json())["api"] == "down"
        async with session.delete(f"{mock.control_url}/mock/faults") as resp:
            assert resp.status == 200
        assert await _status(session, f"{mock.url}/v1/system/version") == 200  # same port again


async def test_down_from_the_start() -> None:
    async with (
        MockOpenMetadata(faults=[{"mode": "down"}]) as down,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(aiohttp.ClientConnectorError):
            await _status(session, f"{down.url}/v1/system/version")
        await down.clear_faults()
        assert await _status(session, f"{down.url}/v1/system/version") == 200


async def test_a_down_port_stays_the_mocks(mock: MockOpenMetadata) -> None:
    # A relay binding port 0 or a client's ephemeral port once took the port while it was down,
    # and the mock could not come back up (CI). While down, the port is bound, not listening.
    port = mock.port
    await mock.set_faults({"mode": "down"})
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers bind
    with other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))
    with socket.socket() as client, pytest.raises(ConnectionRefusedError):
        client.connect(("127.0.0.1", port))
    await mock.clear_faults()
    assert mock.port == port
    async with aiohttp.ClientSession(headers=AUTH) as session:
        assert await _status(session, f"{mock.url}/v1/system/version") == 200


async def test_global_latency_and_error_rate() -> None:
    async with (
        MockOpenMetadata(error_rate=1.0) as always_failing,
        aiohttp.ClientSession() as session,
        session.get(f"{always_failing.url}/v1/system/version") as resp,
    ):
        assert resp.status == 503
        assert (await resp.json())["code"] == 503
    assert [r["fault"] for r in always_failing.requests] == ["error"]
    async with MockOpenMetadata(latency_ms=2000) as slow, aiohttp.ClientSession() as session:
        with pytest.raises(TimeoutError):
            async with session.get(
                f"{slow.url}/v1/system/version", timeout=aiohttp.ClientTimeout(total=0.2)
            ):
                pass


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        ({"mode": "explode"}, "fault mode 'explode' is unknown"),
        ({"mode": "error", "status": 99}, "not an HTTP status"),
        ({"mode": "error", "rate": 2}, "between 0 and 1"),
        ({"mode": "down", "path": "/api/v1/lineage"}, "closes the whole API port"),
        ({"mode": "slow", "latency": 5}, "unknown fault rule key(s) ['latency']"),
        ({"mode": "slow", "latency_ms": "5"}, "latency_ms must be a number"),
    ],
)
async def test_bad_rules_are_refused_with_a_clear_message(
    mock: MockOpenMetadata, rule: dict[str, object], complaint: str
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{mock.control_url}/mock/faults", json=rule) as resp:
            assert resp.status == 400
            assert complaint in (await resp.json())["message"]
        async with session.get(f"{mock.control_url}/mock/faults") as resp:
            assert await resp.json() == []
    with pytest.raises(ValueError, match="unknown"):
        FaultRule.from_json({"mode": "explode"})


async def test_request_log_over_control_api_and_in_process(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await mock.set_faults({"mode": "error", "status": 500, "path": "/api/v1/lineage"})
    body = {"edge": {"fromEntity": {"id": "x", "type": "table"}}}
    async with client.put(f"{mock.url}/v1/lineage", json=body) as resp:
        assert resp.status == 500
    async with client.get(f"{mock.url}/v1/search/query?q=*&index=table_search_index") as resp:
        assert resp.status == 200
    async with client.get(
        f"{mock.control_url}/mock/requests", params={"path": "/api/v1/lineage"}
    ) as resp:
        logged = await resp.json()
    assert len(logged) == 1
    assert logged[0]["method"] == "PUT"
    assert logged[0]["status"] == 500
    assert logged[0]["body"] == body
    assert logged[0]["fault"] == "error"
    assert [r["path"] for r in mock.requests] == ["/api/v1/lineage", "/api/v1/search/query"]
    assert mock.requests[1]["query"] == "q=*&index=table_search_index"
    async with client.post(f"{mock.control_url}/mock/reset") as resp:
        assert (await resp.json())["requests"] == 0
    assert mock.requests == []
    assert mock.faults == []


async def test_hanging_requests_end_when_the_mock_closes() -> None:
    mock = MockOpenMetadata()
    await mock.start()
    await mock.set_faults({"mode": "hang"})
    async with aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(_status(session, f"{mock.url}/v1/system/version"))
        await asyncio.sleep(0.1)
        await mock.aclose()
        with pytest.raises(aiohttp.ClientConnectionError):
            await pending


async def test_a_client_gone_mid_body_is_no_server_error(
    mock: MockOpenMetadata, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    # A relay cut by its read timeout, or killed, leaves a body half sent: the mock must
    # not log that as an error of its own, and goes on serving.
    host, port = mock.url.split("//")[1].split("/")[0].split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/v1/openlineage/lineage/batch HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + b'{"events": ['
    )
    await writer.drain()
    await asyncio.sleep(0.05)  # the handler is waiting for the rest of the body
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.05)
    assert await _status(client, f"{mock.url}/v1/system/version") == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
