"""The OpenMetadata client's status and error mapping against small real HTTP servers."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay._config import OpenMetadataConfig
from relay._exceptions import PermanentSinkError, RetriableSinkError, SinkSetupError
from relay._observe.metrics import Metrics
from relay._sinks.client import OpenMetadataClient, raise_for_status, server_message
from relay.testing.fakes import FakeClock

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PATH = "/v1/openlineage/lineage/batch"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[OpenMetadataClient]]]:
    """`await serve(handler)`: a loopback server answering the batch path, and a client to it."""
    servers: list[TestServer] = []
    clients: list[OpenMetadataClient] = []

    async def start(handler: Handler) -> OpenMetadataClient:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(f"/api{PATH}", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        config = OpenMetadataConfig(host_port=str(server.make_url("/api")))
        client = OpenMetadataClient(config, metrics=Metrics())
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.aclose()
    for server in servers:
        await server.close()


async def test_a_multi_megabyte_body_arrives_whole_and_can_be_sent_twice(
    serve: Callable[[Handler], Awaitable[OpenMetadataClient]],
) -> None:
    received: list[tuple[bytes, str | None, str | None]] = []

    async def record(request: web.Request) -> web.Response:
        body = await request.read()
        received.append((body, request.headers.get("Content-Length"), request.content_type))
        return web.json_response({"status": "success"})

    client = await serve(record)
    # Not a multiple of the slice size, every byte value, so a lost or shifted slice shows.
    body = bytes(range(256)) * (5 * 4096 + 3)
    for _ in range(2):  # the same bytes again, as a retry sends them
        answer = await client.post(PATH, body, endpoint=PATH)
        assert answer.status == 200
    assert received == [(body, str(len(body)), "application/json")] * 2


async def test_a_redirect_is_a_setup_problem_naming_host_port(
    serve: Callable[[Handler], Awaitable[OpenMetadataClient]],
) -> None:
    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("https://om.example.com/api/v1/openlineage/lineage/batch")

    client = await serve(moved)
    answer = await client.post(PATH, b'{"events":[]}', endpoint=PATH)
    assert answer.status == 301  # not followed
    with pytest.raises(SinkSetupError, match=r"openmetadata\.host_port"):
        raise_for_status(answer, clock=FakeClock(), retry_after_max_s=300)


async def test_a_5xx_with_a_text_body_and_an_http_date_retry_after(
    serve: Callable[[Handler], Awaitable[OpenMetadataClient]],
) -> None:
    clock = FakeClock(start=time.time())
    when = email.utils.formatdate(clock.time() + 42, usegmt=True)

    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=502, text="Bad Gateway from the ingress", headers={
            "Retry-After": when})  # fmt: skip

    client = await serve(unavailable)
    answer = await client.post(PATH, b'{"events":[]}', endpoint=PATH)
    assert server_message(answer) == "Bad Gateway from the ingress"
    with pytest.raises(RetriableSinkError, match="Bad Gateway") as caught:
        raise_for_status(answer, clock=clock, retry_after_max_s=300)
    assert caught.value.retry_after_s == pytest.approx(42, abs=1.5)


async def test_a_4xx_carries_the_server_message_into_the_dead_letter_reason(
    serve: Callable[[Handler], Awaitable[OpenMetadataClient]],
) -> None:
    async def invalid(request: web.Request) -> web.Response:
        return web.json_response(
            {"code": 422, "message": "[events[0].run.runId must match uuid]"}, status=422
        )

    client = await serve(invalid)
    answer = await client.post(PATH, b'{"events":[]}', endpoint=PATH)
    with pytest.raises(PermanentSinkError) as caught:
        raise_for_status(answer, clock=FakeClock(), retry_after_max_s=300)
    assert caught.value.reason == "HTTP 422: [events[0].run.runId must match uuid]"


async def test_a_server_that_closes_mid_answer_is_retriable(
    serve: Callable[[Handler], Awaitable[OpenMetadataClient]],
) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b'{"status":')
        assert request.transport is not None
        request.transport.close()
        return response

    client = await serve(broken)
    with pytest.raises(RetriableSinkError) as caught:
        await client.post(PATH, b'{"events":[]}', endpoint=PATH)
    assert "aiohttp" not in type(caught.value).__module__
