"""Events posted to a real relay with the `rest` sink (the default) reach the mock as pipelines,
tasks, run statuses and lineage edges (real HTTP, real spool, real SQLite sink state)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from forward_support import spark_samples
from openmetadata_support import MOCK_CATALOG, MOCK_TOKEN
from relay_support import StartRelay
from wait_support import wait_until

from relay._app import Relay
from relay._config import OpenMetadataConfig
from relay.testing.mock_openmetadata import MockOpenMetadata, read_catalog

PIPELINE = "spark.orders_daily"
REVENUE = "hive_prod.warehouse.reporting.revenue_by_country"
HIVE_RULE = [{"namespace": "hive://*", "service": "hive_prod", "database": "warehouse"}]
# The shared forwarding relay (`start_forwarding_relay`) with the rest sink and a mapping rule
# for the samples' Hive tables.
REST = {"openmetadata.sink": "rest", "openmetadata.mapping": HIVE_RULE}


def _catalog_without_revenue() -> dict[str, Any]:
    catalog = copy.deepcopy(read_catalog(MOCK_CATALOG))
    catalog["tables"] = [t for t in catalog["tables"] if t["name"] != "revenue_by_country"]
    return catalog


# The mock's catalog lacks the samples' output table (`mock_catalog` seeds the shared `mock`).
without_revenue = pytest.mark.parametrize(
    "mock_catalog", [_catalog_without_revenue()], ids=["without_revenue_by_country"]
)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def same_spool(relay: Relay) -> dict[str, Any]:
    """The settings of a relay started on `relay`'s spool (a restart)."""
    return {**REST, "spool.dir": str(relay.config.spool.dir)}


async def _post(http: aiohttp.ClientSession, relay: Relay, bodies: list[bytes]) -> None:
    async with http.post(
        f"{relay.url}/api/v1/lineage/batch", data=b"[" + b",".join(bodies) + b"]"
    ) as response:
        assert response.status in (200, 201), await response.text()


def _pending(relay: Relay) -> int:
    assert relay.spool is not None
    return relay.spool.stats().events


async def _health(http: aiohttp.ClientSession, relay: Relay) -> dict[str, Any]:
    async with http.get(f"{relay.url}/health") as response:
        document: dict[str, Any] = await response.json()
        return document


def _edges(mock: MockOpenMetadata) -> set[tuple[str, str]]:
    return {
        (e["fromEntity"]["fullyQualifiedName"], e["toEntity"]["fullyQualifiedName"])
        for e in mock.lineage_edges
    }


async def test_the_default_sink_delivers_pipeline_status_and_edges(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    assert OpenMetadataConfig().sink == "rest"  # the default
    relay = await start_forwarding_relay(**REST)
    await _post(http, relay, spark_samples())
    await wait_until(lambda: _pending(relay) == 0)
    doc = await _health(http, relay)
    component = doc["components"]["openmetadata"]
    assert (component["sink"], component["version"]) == ("rest", "2.0.7")
    assert doc["status"] == "healthy"
    assert _edges(mock) == {
        ("hive_prod.warehouse.sales.orders", REVENUE),
        ("hive_prod.warehouse.crm.customers", REVENUE),
    }
    (status,) = mock.pipeline_statuses(PIPELINE)
    assert status["executionStatus"] == "Successful"
    assert [t["executionStatus"] for t in status["taskStatus"]] == ["Successful"]
    assert all(r["path"] != "/api/v1/openlineage/lineage/batch" for r in mock.requests)


@without_revenue
async def test_a_parked_edge_is_written_after_the_table_appears_across_a_restart(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    relay = await start_forwarding_relay(**REST)
    await _post(http, relay, spark_samples())
    # Delivered (acknowledged) although the output table is unknown: nothing waits.
    await wait_until(lambda: _pending(relay) == 0)
    gauge = relay.metrics.registry.get_sample_value("lineage_relay_unresolved_datasets")
    assert gauge == 1
    component = (await _health(http, relay))["components"]["openmetadata"]
    assert component["unresolved"] == {"parked_edges": 2, "datasets": 1}
    assert mock.lineage_edges == []
    await relay.aclose()

    (table,) = [
        t for t in read_catalog(MOCK_CATALOG)["tables"] if t["name"] == "revenue_by_country"
    ]
    async with http.put(
        f"{mock.url}/v1/tables", json=table, headers={"Authorization": f"Bearer {MOCK_TOKEN}"}
    ) as response:
        assert response.status == 201

    again = await start_forwarding_relay(**same_spool(relay))
    await wait_until(lambda: len(mock.lineage_edges) == 2)
    await again.aclose()
    assert REVENUE in {to for _, to in _edges(mock)}
    (status,) = mock.pipeline_statuses(PIPELINE)
    assert status["executionStatus"] == "Successful"


async def test_a_failed_action_stays_failed_across_relays_and_batches(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    bodies = spark_samples()
    doc = json.loads(bodies[3])
    doc["eventType"] = "FAIL"
    failed = json.dumps(doc).encode()
    relay = await start_forwarding_relay(**REST)
    await _post(http, relay, [*bodies[:3], failed])
    await wait_until(lambda: _pending(relay) == 0)
    await relay.aclose()
    again = await start_forwarding_relay(**same_spool(relay))
    await _post(http, again, [bodies[3], bodies[4]])  # COMPLETEs of the same runs
    await wait_until(lambda: _pending(again) == 0)
    await again.aclose()
    (status,) = mock.pipeline_statuses(PIPELINE)
    assert status["executionStatus"] == "Failed"
    assert [t["executionStatus"] for t in status["taskStatus"]] == ["Failed"]


async def test_openlineage_sink_still_available(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    # forwarding_settings' sink, openlineage, with REST's mapping rule
    relay = await start_forwarding_relay(**{"openmetadata.mapping": HIVE_RULE})
    await _post(http, relay, spark_samples())
    await wait_until(lambda: _pending(relay) == 0)
    doc = await _health(http, relay)
    await relay.aclose()
    assert doc["components"]["openmetadata"]["sink"] == "openlineage"
    assert "version" not in doc["components"]["openmetadata"]
    assert len(mock.openlineage_events) == len(spark_samples())
    assert mock.pipeline_statuses(PIPELINE) == []  # the native endpoint writes no status


@without_revenue
async def test_an_edge_unresolved_past_the_retention_dead_letters_its_event_once(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    bodies = spark_samples()
    relay = await start_forwarding_relay(**REST, **{"openmetadata.unresolved_retention_s": 0.2})
    await _post(http, relay, bodies)
    await wait_until(lambda: _pending(relay) == 0)
    spool = relay.spool
    assert spool is not None
    await wait_until(lambda: spool.stats().dead_letters == 1)
    ((event, reason),) = await spool.list_dead_letters()
    # Both edges to the missing table (RUNNING and COMPLETE: one parked row each)
    # gave up together: the latest event that carried them, once.
    assert event.body == bodies[3]
    assert reason.startswith("unresolved: ") and "revenue_by_country" in reason
    assert await spool.replay_dead_letters() == 1  # replayable like any dead letter
    await wait_until(lambda: _pending(relay) == 0 and spool.stats().dead_letters == 1)
    await relay.aclose()
    assert mock.lineage_edges == []
