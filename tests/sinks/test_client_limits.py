"""The HTTP client's bounds: `connection_timeout_ms` cuts a connect that never completes, and
no more than `connection_pool_size` requests reach the server at once."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay._config import OpenMetadataConfig
from relay._exceptions import SinkTimeout
from relay._observe.metrics import Metrics
from relay._sinks.client import OpenMetadataClient

PATH = "/v1/openlineage/lineage/batch"


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A loopback port that never completes a TCP handshake: its accept queue is full (Linux
    drops further SYNs instead of refusing them), as a firewall that drops packets would."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # the handshake never completes
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for sock in (*fillers, server):
            sock.close()


async def test_a_connect_that_never_completes_is_cut_by_connection_timeout_ms(
    unanswered_port: int,
) -> None:
    config = OpenMetadataConfig(
        host_port=f"http://127.0.0.1:{unanswered_port}/api",
        connection_timeout_ms=200,
        read_timeout_ms=600_000,  # so only the connect timeout can end the call
    )
    metrics = Metrics()
    async with OpenMetadataClient(config, metrics=metrics) as client:
        with pytest.raises(SinkTimeout, match=r"timed out \(connect 200 ms"):
            await asyncio.wait_for(client.post(PATH, b'{"events":[]}', endpoint=PATH), 60)
    assert metrics.openmetadata_requests.labels(PATH, "timeout")._value.get() == 1
    assert metrics.connection_status._value.get() == 0


async def test_no_more_than_the_pool_size_requests_reach_the_server_at_once() -> None:
    in_flight = 0
    most = 0
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await release.wait()
            return web.json_response({"status": "success"})
        finally:
            in_flight -= 1

    app = web.Application()
    app.router.add_post(f"/api{PATH}", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    config = OpenMetadataConfig(host_port=str(server.make_url("/api")), connection_pool_size=2)
    try:
        async with OpenMetadataClient(config, metrics=Metrics()) as client:
            calls = [
                asyncio.create_task(client.post(PATH, b'{"events":[]}', endpoint=PATH))
                for _ in range(6)
            ]
            async with asyncio.timeout(20):
                while in_flight < 2:
                    await asyncio.sleep(0.01)
            for _ in range(20):  # the other four had every chance to get in
                await asyncio.sleep(0.01)
            assert in_flight == 2
            release.set()
            answers = await asyncio.gather(*calls)
    finally:
        await server.close()
    assert [a.status for a in answers] == [200] * 6
    assert most == 2
