"""The `Sink` contract, written once and run against every sink (add new sinks to SINKS).

Each factory gets a running mock OpenMetadata and returns a sink delivering to it; the
`memory` sink ignores the mock and stands for the contract's simplest implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from openmetadata_support import MOCK_TOKEN

from relay._config import MappingRule, OpenMetadataConfig, Secret
from relay._events import SpooledEvent
from relay._exceptions import RetriableSinkError, SinkError
from relay._ingest.envelope import parse_event
from relay._observe.metrics import Metrics
from relay._sinks.base import Outcome, Sink
from relay._sinks.client import OpenMetadataClient
from relay._sinks.openlineage import OpenLineageSink
from relay._sinks.rest import RestSink
from relay.testing.fakes import MemorySink
from relay.testing.mock_openmetadata import MockOpenMetadata

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TOKEN = MOCK_TOKEN  # the shared `mock` fixture's

SinkFactory = Callable[[MockOpenMetadata, Path], Awaitable[Sink]]


class _Token:
    async def token(self) -> Secret | None:
        return Secret(TOKEN)

    async def refresh(self, rejected: Secret | None = None) -> Secret | None:
        return Secret(TOKEN)


async def _openlineage(mock: MockOpenMetadata, tmp_path: Path) -> Sink:
    config = OpenMetadataConfig(host_port=mock.url, read_timeout_ms=2000)
    return OpenLineageSink(OpenMetadataClient(config, metrics=Metrics(), tokens=_Token()), config)


async def _rest(mock: MockOpenMetadata, tmp_path: Path) -> Sink:
    rule = MappingRule(namespace="hive://*", service="hive_prod", database="warehouse")
    config = OpenMetadataConfig(host_port=mock.url, read_timeout_ms=2000, mapping=(rule,))
    client = OpenMetadataClient(config, metrics=Metrics(), tokens=_Token())
    return RestSink(client, config, state_path=tmp_path / "rest-sink.db", metrics=Metrics())


async def _memory(mock: MockOpenMetadata, tmp_path: Path) -> Sink:
    return MemorySink()


SINKS: dict[str, SinkFactory] = {"openlineage": _openlineage, "rest": _rest, "memory": _memory}


def events() -> list[SpooledEvent]:
    bodies = [p.read_bytes() for p in sorted((FIXTURES / "events" / "spark").glob("*.json"))]
    return [
        SpooledEvent(id=i, body=b, key=parse_event(b), received_at=0.0)
        for i, b in enumerate(bodies, start=1)
    ]


@pytest.fixture(params=sorted(SINKS))
async def sink(
    request: pytest.FixtureRequest, mock: MockOpenMetadata, tmp_path: Path
) -> AsyncIterator[Sink]:
    made = await SINKS[request.param](mock, tmp_path)
    try:
        yield made
    finally:
        await made.aclose()


async def test_is_a_sink_with_a_name(sink: Sink) -> None:
    assert isinstance(sink, Sink)
    assert sink.name and sink.name.isidentifier()


async def test_one_result_per_event_in_order(sink: Sink) -> None:
    batch = events()
    results = await sink.send(batch)
    assert len(results) == len(batch)
    assert all(r.outcome is Outcome.DELIVERED for r in results)


async def test_an_empty_batch_is_no_call(sink: Sink) -> None:
    assert list(await sink.send([])) == []


async def test_a_dead_server_is_a_retriable_sink_error(sink: Sink, mock: MockOpenMetadata) -> None:
    if isinstance(sink, MemorySink):
        sink.fail_with = RetriableSinkError("down")
    await mock.set_faults({"mode": "down"})
    with pytest.raises(SinkError) as caught:
        await sink.send(events())
    assert isinstance(caught.value, RetriableSinkError)


async def test_close_is_idempotent(sink: Sink) -> None:
    await sink.aclose()
    await sink.aclose()
