"""Helpers for the `rest` sink's tests: sinks on the mock, event lists, what the mock holds."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from openmetadata_support import MOCK_CATALOG, MOCK_TOKEN

from relay._clock import SystemClock
from relay._config import MappingRule, OpenMetadataConfig
from relay._events import SpooledEvent
from relay._ingest.envelope import parse_event
from relay._observe.metrics import Metrics
from relay._secrets import make_token_provider
from relay._sinks.base import DELIVERED
from relay._sinks.client import OpenMetadataClient
from relay._sinks.rest import DeadLetter, RestSink
from relay.testing.mock_openmetadata import MockOpenMetadata

# The shared `mock` fixture's token and catalog (a test needing other ones starts its own).
TOKEN, CATALOG = MOCK_TOKEN, MOCK_CATALOG
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SPARK = FIXTURES / "events" / "spark"
HIVE_RULE = MappingRule(namespace="hive://*", service="hive_prod", database="warehouse")
# Collections whose entities the sink may only read (it creates only with auto_create).
CATALOG_COLLECTIONS = (
    "services/databaseServices", "services/storageServices", "databases", "databaseSchemas",
    "tables", "containers",
)  # fmt: skip


def rest_config(mock: MockOpenMetadata, **overrides: Any) -> OpenMetadataConfig:
    settings: dict[str, Any] = {
        "host_port": mock.url,
        "jwt_token_env": "REST_TEST_TOKEN",
        "retry_delay_ms": 10,
        "retry_max_delay_ms": 40,
        "mapping": (HIVE_RULE,),
    }
    settings.update(overrides)
    return OpenMetadataConfig(**settings)


def make_rest_sink(
    config: OpenMetadataConfig,
    state_dir: Path,
    metrics: Metrics,
    dead_letter: DeadLetter | None = None,
) -> RestSink:
    tokens = make_token_provider(
        config, clock=SystemClock(), environ={"REST_TEST_TOKEN": TOKEN}, metrics=metrics
    )
    client = OpenMetadataClient(config, metrics=metrics, tokens=tokens)
    return RestSink(
        client, config, state_path=state_dir / "rest-sink.db", metrics=metrics,
        dead_letter=dead_letter,
    )  # fmt: skip


@asynccontextmanager
async def rest_sink(
    config: OpenMetadataConfig,
    state_dir: Path,
    metrics: Metrics,
    dead_letter: DeadLetter | None = None,
) -> AsyncIterator[RestSink]:
    """A `rest` sink for the `async with` block (one relay's lifetime), closed at its end."""
    sink = make_rest_sink(config, state_dir, metrics, dead_letter)
    try:
        yield sink
    finally:
        await sink.aclose()


async def deliver(sink: RestSink, events: Sequence[SpooledEvent]) -> None:
    """Send `events` as one batch; every one of them must come back delivered."""
    results = await sink.send(list(events))
    assert list(results) == [DELIVERED] * len(events)


def spooled(bodies: Iterable[bytes], *, first_id: int = 1) -> list[SpooledEvent]:
    return [
        SpooledEvent(id=i, body=body, key=parse_event(body), received_at=0.0)
        for i, body in enumerate(bodies, start=first_id)
    ]


def bodies_in(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("*.json"))]


def interleaved(bodies: Sequence[bytes], seed: int) -> list[bytes]:
    """A random interleaving of the runs' events, each run's own order kept."""
    runs: dict[str, list[bytes]] = {}
    for body in bodies:
        runs.setdefault(str(parse_event(body).run_id), []).append(body)
    rand = random.Random(seed)
    queues = list(runs.values())
    out: list[bytes] = []
    while queues:
        queue = rand.choice(queues)
        out.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return out


async def mock_api(
    mock: MockOpenMetadata, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """One authorised call to the mock's API, as an operator would make it: its status and its
    answer (the decoded JSON; the text if it is not JSON)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.request(method, f"{mock.url}{path}", json=body) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


async def _get(mock: MockOpenMetadata, path: str) -> Any:
    status, answer = await mock_api(mock, "GET", path)
    assert status == 200, answer
    return answer


async def catalog_counts(mock: MockOpenMetadata) -> dict[str, int]:
    return {
        c: (await _get(mock, f"/v1/{c}?limit=1"))["paging"]["total"] for c in CATALOG_COLLECTIONS
    }


async def snapshot(mock: MockOpenMetadata) -> dict[str, Any]:
    """What the sink wrote, in a comparable form: pipelines with tasks, statuses, edges."""
    listing = await _get(mock, "/v1/pipelines?fields=tasks&limit=1000")
    pipelines = {
        p["fullyQualifiedName"]: sorted(t["name"] for t in p.get("tasks") or [])
        for p in listing["data"]
    }
    statuses = {
        fqn: [
            (
                s["executionStatus"],
                {t["name"]: t["executionStatus"] for t in s.get("taskStatus", [])},
            )
            for s in mock.pipeline_statuses(fqn)
        ]
        for fqn in pipelines
    }
    edges = {}
    for edge in mock.lineage_edges:
        details = edge["lineageDetails"]
        edges[
            (edge["fromEntity"]["fullyQualifiedName"], edge["toEntity"]["fullyQualifiedName"])
        ] = {
            "pipeline": details.get("pipeline", {}).get("fullyQualifiedName"),
            "source": details.get("source"),
            "sql": bool(details.get("sqlQuery")),
            "columns": sorted(
                (source, item["toColumn"])
                for item in details.get("columnsLineage") or []
                for source in item["fromColumns"]
            ),
        }
    return {"pipelines": pipelines, "statuses": statuses, "edges": edges}


def writes(mock: MockOpenMetadata) -> list[tuple[str, str]]:
    """(method, path) of every write the mock received, in order."""
    return [(r["method"], r["path"]) for r in mock.requests if r["method"] != "GET"]
