"""The native OpenLineage sink and the HTTP client against the mock OpenMetadata (real HTTP)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openmetadata_support import MOCK_TOKEN

from relay._clock import SystemClock
from relay._config import OpenMetadataConfig, Secret
from relay._events import SpooledEvent
from relay._exceptions import (
    AuthError,
    PermanentSinkError,
    RetriableSinkError,
    SinkSetupError,
    SinkTimeout,
)
from relay._ingest.envelope import parse_event
from relay._observe.metrics import Metrics
from relay._secrets import make_token_provider
from relay._sinks.base import DELIVERED, Outcome, Sink
from relay._sinks.client import OpenMetadataClient
from relay._sinks.openlineage import BATCH_PATH, OpenLineageSink, batch_body
from relay.testing.mock_openmetadata import MockOpenMetadata

TOKEN = MOCK_TOKEN  # the shared `mock` fixture's
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SPARK = FIXTURES / "events" / "spark"
# The tables the Spark samples read and write, so the mock resolves their datasets.


def spark_events() -> list[SpooledEvent]:
    bodies = [p.read_bytes() for p in sorted(SPARK.glob("*.json"))]
    return [
        SpooledEvent(id=i, body=body, key=parse_event(body), received_at=0.0)
        for i, body in enumerate(bodies, start=1)
    ]


class StaticTokens:
    """A token source that serves `tokens` in turn: each refresh moves to the next."""

    def __init__(self, *tokens: str) -> None:
        self._tokens = [Secret(t) for t in tokens]
        self.refreshes = 0

    async def token(self) -> Secret | None:
        return self._tokens[min(self.refreshes, len(self._tokens) - 1)]

    async def refresh(self, rejected: Secret | None = None) -> Secret | None:
        self.refreshes += 1
        return await self.token()


def config_for(mock: MockOpenMetadata, **overrides: object) -> OpenMetadataConfig:
    return OpenMetadataConfig(host_port=mock.url, **overrides)  # type: ignore[arg-type]


def make_sink(
    config: OpenMetadataConfig, metrics: Metrics, tokens: object | None = None
) -> OpenLineageSink:
    client = OpenMetadataClient(
        config,
        metrics=metrics,
        tokens=tokens if tokens is not None else StaticTokens(TOKEN),  # type: ignore[arg-type]
    )
    return OpenLineageSink(client, config)


@pytest.fixture
async def sink(mock: MockOpenMetadata, metrics: Metrics) -> AsyncIterator[OpenLineageSink]:
    opened = make_sink(config_for(mock), metrics)
    try:
        yield opened
    finally:
        await opened.aclose()


def test_batch_body_joins_the_raw_bytes_without_reserialising() -> None:
    events = spark_events()
    body = batch_body(events)
    assert body == b'{"events":[' + b",".join(e.body.strip() for e in events) + b"]}"
    assert orjson.loads(body)["events"] == [orjson.loads(e.body) for e in events]


async def test_delivers_a_batch_to_the_native_endpoint(
    sink: OpenLineageSink, mock: MockOpenMetadata, metrics: Metrics
) -> None:
    assert isinstance(sink, Sink)
    events = spark_events()
    results = await sink.send(events)
    assert list(results) == [DELIVERED] * len(events)
    assert mock.openlineage_events == [orjson.loads(e.body) for e in events]
    [request] = [r for r in mock.requests if r["path"] == "/api/v1/openlineage/lineage/batch"]
    assert request["method"] == "POST" and request["status"] == 200
    assert metrics.openmetadata_requests.labels(BATCH_PATH, "200")._value.get() == 1
    assert metrics.connection_status._value.get() == 1
    assert metrics.send_duration._sum.get() > 0


async def test_partial_success_is_split_per_event(
    sink: OpenLineageSink, mock: MockOpenMetadata
) -> None:
    events = spark_events()
    # 02 and 04 belong to the child run; 05 to the application run.
    child = events[1].key.run_id
    mock.set_openlineage_failures(
        [
            {"run_id": child, "event_type": "START", "reason": "index busy", "retriable": True},
            {"job_name": "orders_daily", "event_type": "COMPLETE", "reason": "bad facet",
             "retriable": False},
        ]
    )  # fmt: skip
    results = await sink.send(events)
    outcomes = [r.outcome for r in results]
    assert outcomes == [
        Outcome.DELIVERED,  # 01 START orders_daily
        Outcome.RETRIABLE,  # 02 START child
        Outcome.DELIVERED,  # 03 RUNNING child
        Outcome.DELIVERED,  # 04 COMPLETE child
        Outcome.PERMANENT,  # 05 COMPLETE orders_daily
    ]
    assert "index busy" in results[1].reason
    assert results[4].reason.startswith("HTTP 200: ") and "bad facet" in results[4].reason


async def test_every_event_failing_answers_400_with_per_event_reasons(
    sink: OpenLineageSink, mock: MockOpenMetadata
) -> None:
    events = spark_events()
    mock.set_openlineage_failures({"reason": "schema mismatch", "retriable": False})
    results = await sink.send(events)
    assert all(r.outcome is Outcome.PERMANENT for r in results)
    assert all(r.reason.startswith("HTTP 400: ") for r in results)
    assert all("schema mismatch" in r.reason for r in results)


@pytest.mark.parametrize("status", [429, 503])
async def test_throttling_carries_retry_after(
    sink: OpenLineageSink, mock: MockOpenMetadata, metrics: Metrics, status: int
) -> None:
    await mock.set_faults({"mode": "error", "status": status, "retry_after_s": 7})
    with pytest.raises(RetriableSinkError) as caught:
        await sink.send(spark_events())
    assert caught.value.status == status
    assert caught.value.retry_after_s == 7.0
    assert metrics.openmetadata_requests.labels(BATCH_PATH, str(status))._value.get() == 1
    assert metrics.connection_status._value.get() == 0


async def test_retry_after_is_capped(mock: MockOpenMetadata, metrics: Metrics) -> None:
    sink = make_sink(config_for(mock, retry_after_max_s=30.0), metrics)
    await mock.set_faults({"mode": "error", "status": 503, "retry_after_s": 86400})
    try:
        with pytest.raises(RetriableSinkError) as caught:
            await sink.send(spark_events())
    finally:
        await sink.aclose()
    assert caught.value.retry_after_s == 30.0


async def test_a_whole_batch_400_is_permanent_with_the_server_message(
    sink: OpenLineageSink, mock: MockOpenMetadata
) -> None:
    await mock.set_faults({"mode": "error", "status": 400})
    with pytest.raises(PermanentSinkError) as caught:
        await sink.send(spark_events())
    assert caught.value.status == 400
    assert caught.value.reason.startswith("HTTP 400: ")
    assert len(caught.value.reason) > len("HTTP 400: ")


async def test_403_keeps_the_events_and_says_what_to_fix(
    sink: OpenLineageSink, mock: MockOpenMetadata
) -> None:
    await mock.set_faults({"mode": "error", "status": 403})
    with pytest.raises(SinkSetupError, match="EditLineage") as caught:
        await sink.send(spark_events())
    assert isinstance(caught.value, RetriableSinkError)  # kept, not dead-lettered
    assert caught.value.status == 403


async def test_404_names_the_rest_sink_as_the_way_out(metrics: Metrics) -> None:
    async with MockOpenMetadata(tokens=[TOKEN], openlineage_endpoints=False) as old_server:
        sink = make_sink(config_for(old_server), metrics)
        try:
            with pytest.raises(SinkSetupError, match=re.escape('openmetadata.sink = "rest"')):
                await sink.send(spark_events())
        finally:
            await sink.aclose()


async def test_a_hanging_server_is_cut_by_the_read_timeout(
    mock: MockOpenMetadata, metrics: Metrics
) -> None:
    sink = make_sink(config_for(mock, read_timeout_ms=200), metrics)
    await mock.set_faults({"mode": "hang"})
    try:
        with pytest.raises(SinkTimeout, match="timed out") as caught:
            await sink.send(spark_events())
    finally:
        await sink.aclose()
    assert isinstance(caught.value, TimeoutError)
    assert metrics.openmetadata_requests.labels(BATCH_PATH, "timeout")._value.get() == 1


@pytest.mark.parametrize("mode", ["down", "reset"])
async def test_connection_failures_are_retriable(
    sink: OpenLineageSink, mock: MockOpenMetadata, metrics: Metrics, mode: str
) -> None:
    await mock.set_faults({"mode": mode})
    with pytest.raises(RetriableSinkError) as caught:
        await sink.send(spark_events())
    assert not isinstance(caught.value, SinkSetupError | SinkTimeout)
    assert caught.value.__cause__ is not None  # translated from aiohttp, chained
    assert metrics.connection_status._value.get() == 0
    await mock.clear_faults()
    assert list(await sink.send(spark_events()[:1])) == [DELIVERED]


async def test_401_refetches_the_token_once_then_succeeds(
    mock: MockOpenMetadata, metrics: Metrics
) -> None:
    tokens = StaticTokens("expired-token", TOKEN)
    sink = make_sink(config_for(mock), metrics, tokens)
    try:
        assert list(await sink.send(spark_events()[:2])) == [DELIVERED] * 2
    finally:
        await sink.aclose()
    assert tokens.refreshes == 1
    statuses = [r["status"] for r in mock.requests if r["path"].endswith("/batch")]
    assert statuses == [401, 200]


async def test_401_after_the_refetch_keeps_the_events(
    mock: MockOpenMetadata, metrics: Metrics
) -> None:
    tokens = StaticTokens("wrong-token", "still-wrong")
    sink = make_sink(config_for(mock), metrics, tokens)
    try:
        with pytest.raises(SinkSetupError, match="401") as caught:
            await sink.send(spark_events())
    finally:
        await sink.aclose()
    assert caught.value.status == 401
    assert tokens.refreshes == 1
    assert "wrong-token" not in str(caught.value)


async def test_a_rotated_token_file_is_used_without_a_401(
    mock: MockOpenMetadata, metrics: Metrics, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    config = config_for(mock, jwt_token_file=str(token_file))
    provider = make_token_provider(config, clock=SystemClock(), metrics=metrics)
    sink = make_sink(config, metrics, provider)
    try:
        assert list(await sink.send(spark_events()[:1])) == [DELIVERED]
        mock.set_tokens(["rotated-token"])
        rotated = tmp_path / "token.new"
        rotated.write_text("rotated-token")
        rotated.replace(token_file)  # atomic swap, as a secret volume does
        assert list(await sink.send(spark_events()[1:2])) == [DELIVERED]
    finally:
        await sink.aclose()
        await provider.aclose()
    statuses = [r["status"] for r in mock.requests if r["path"].endswith("/batch")]
    assert statuses == [200, 200]


async def test_no_token_available_is_an_auth_error(
    mock: MockOpenMetadata, metrics: Metrics
) -> None:
    config = config_for(mock, jwt_token_env="OM_TOKEN_FOR_TEST")
    provider = make_token_provider(config, clock=SystemClock(), environ={})
    sink = make_sink(config, metrics, provider)
    try:
        with pytest.raises(AuthError, match="OM_TOKEN_FOR_TEST"):
            await sink.send(spark_events())
    finally:
        await sink.aclose()
        await provider.aclose()
    assert mock.requests == []


async def test_close_is_idempotent_and_cancel_safe(
    mock: MockOpenMetadata, metrics: Metrics
) -> None:
    sink = make_sink(config_for(mock, read_timeout_ms=5000), metrics)
    await mock.set_faults({"mode": "hang"})
    task = asyncio.create_task(sink.send(spark_events()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await sink.aclose()
    await sink.aclose()


async def test_a_multi_megabyte_batch_is_streamed(
    sink: OpenLineageSink, mock: MockOpenMetadata
) -> None:
    events = spark_events()
    many = [
        SpooledEvent(id=i, body=events[i % len(events)].body, key=events[i % len(events)].key,
                     received_at=0.0)
        for i in range(250)
    ]  # fmt: skip
    assert len(batch_body(many)) > 2 * 1024 * 1024
    results = await sink.send(many)
    assert len(results) == len(many)
    assert len(mock.openlineage_events) == len(many)


async def test_a_2xx_failure_without_event_details_keeps_every_event(metrics: Metrics) -> None:
    async def failure(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "failure", "message": "lineage store unavailable"})

    app = web.Application()
    app.router.add_post("/api/v1/openlineage/lineage/batch", failure)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    config = OpenMetadataConfig(host_port=str(server.make_url("/api")))
    sink = make_sink(config, metrics)
    try:
        results = await sink.send(spark_events())
    finally:
        await sink.aclose()
        await server.close()
    assert {r.outcome for r in results} == {Outcome.RETRIABLE}
    assert all("lineage store unavailable" in r.reason for r in results)
