"""Lineage: PUT upsert per (from, to), 404/400 checks, GET graph shape and depth."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from mock_support import CUSTOMERS, ORDERS, REVENUE

from relay.testing.mock_openmetadata import MockOpenMetadata


async def _table(mock: MockOpenMetadata, fqn: str) -> dict[str, Any]:
    entity = mock.entity("table", fqn)
    assert entity is not None
    return entity


def _edge(from_id: str, to_id: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "edge": {
            "fromEntity": {"id": from_id, "type": "table"},
            "toEntity": {"id": to_id, "type": "table"},
        }
    }
    if details:
        body["edge"]["lineageDetails"] = details
    return body


async def _put(
    client: aiohttp.ClientSession, mock: MockOpenMetadata, body: Any
) -> tuple[int, bytes]:
    async with client.put(f"{mock.url}/v1/lineage", json=body) as resp:
        return resp.status, await resp.read()


async def _pipeline(
    client: aiohttp.ClientSession, mock: MockOpenMetadata, name: str
) -> dict[str, Any]:
    async with client.put(
        f"{mock.url}/v1/services/pipelineServices", json={"name": "spark", "serviceType": "Spark"}
    ):
        pass
    async with client.put(
        f"{mock.url}/v1/pipelines", json={"name": name, "service": "spark"}
    ) as resp:
        result: dict[str, Any] = await resp.json()
        return result


async def test_put_is_200_empty_and_upserts_one_edge_per_pair(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    orders, revenue = await _table(mock, ORDERS), await _table(mock, REVENUE)
    first = await _pipeline(client, mock, "first")
    second = await _pipeline(client, mock, "second")
    body = _edge(
        orders["id"],
        revenue["id"],
        pipeline={"id": first["id"], "type": "pipeline"},
        source="SparkLineage",
        columnsLineage=[{"fromColumns": [f"{ORDERS}.amount"], "toColumn": f"{REVENUE}.revenue"}],
    )
    assert await _put(client, mock, body) == (200, b"")
    body["edge"]["lineageDetails"] = {"pipeline": {"id": second["id"], "type": "pipeline"}}
    assert await _put(client, mock, body) == (200, b"")
    [edge] = mock.lineage_edges
    details = edge["lineageDetails"]
    assert details["pipeline"]["fullyQualifiedName"] == "spark.second"
    assert "columnsLineage" not in details  # replaced wholesale, last writer wins
    assert details["source"] == "Manual"  # the schema default
    assert {"createdAt", "createdBy", "updatedAt", "updatedBy"} <= set(details)


async def test_get_lineage_shape_and_depth(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    orders, revenue, customers = (
        await _table(mock, ORDERS),
        await _table(mock, REVENUE),
        await _table(mock, CUSTOMERS),
    )
    await _put(client, mock, _edge(customers["id"], orders["id"]))
    await _put(client, mock, _edge(orders["id"], revenue["id"], source="SparkLineage"))
    async with client.get(
        f"{mock.url}/v1/lineage/table/name/{REVENUE}",
        params={"upstreamDepth": "1", "downstreamDepth": "1"},
    ) as resp:
        assert resp.status == 200
        graph = await resp.json()
    assert set(graph) == {"entity", "nodes", "upstreamEdges", "downstreamEdges"}
    assert graph["entity"]["id"] == revenue["id"]
    assert graph["entity"]["type"] == "table"
    assert [n["fullyQualifiedName"] for n in graph["nodes"]] == [ORDERS]
    assert graph["upstreamEdges"] == [
        {
            "fromEntity": orders["id"],
            "toEntity": revenue["id"],
            "lineageDetails": mock.lineage_edges[1]["lineageDetails"],
        }
    ]
    assert graph["downstreamEdges"] == []
    async with client.get(f"{mock.url}/v1/lineage/table/{revenue['id']}?upstreamDepth=3") as resp:
        deep = await resp.json()
    assert {n["fullyQualifiedName"] for n in deep["nodes"]} == {ORDERS, CUSTOMERS}
    assert len(deep["upstreamEdges"]) == 2
    async with client.get(f"{mock.url}/v1/lineage/table/name/{REVENUE}?upstreamDepth=4") as resp:
        assert resp.status == 400


@pytest.mark.parametrize("end", ["from", "to", "pipeline"])
async def test_unknown_ids_are_404(
    mock: MockOpenMetadata, client: aiohttp.ClientSession, end: str
) -> None:
    ghost = "11111111-2222-3333-4444-555555555555"
    orders, revenue = await _table(mock, ORDERS), await _table(mock, REVENUE)
    body = _edge(
        ghost if end == "from" else orders["id"],
        ghost if end == "to" else revenue["id"],
        **({"pipeline": {"id": ghost, "type": "pipeline"}} if end == "pipeline" else {}),
    )
    status, raw = await _put(client, mock, body)
    kind = "pipeline" if end == "pipeline" else "table"
    assert status == 404
    assert raw == f'{{"code":404,"message":"{kind} instance for {ghost} not found"}}'.encode()
    assert mock.lineage_edges == []


async def test_unknown_column_fqn_is_400(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    orders, revenue = await _table(mock, ORDERS), await _table(mock, REVENUE)
    body = _edge(
        orders["id"],
        revenue["id"],
        columnsLineage=[{"fromColumns": [f"{ORDERS}.no_such"], "toColumn": f"{REVENUE}.revenue"}],
    )
    status, raw = await _put(client, mock, body)
    assert status == 400
    assert f"Invalid column name {ORDERS}.no_such".encode() in raw
    nested = _edge(
        orders["id"],
        revenue["id"],
        columnsLineage=[{"fromColumns": [f"{ORDERS}.shipping.city"], "toColumn": f"{REVENUE}.day"}],
    )
    assert (await _put(client, mock, nested))[0] == 200


async def test_delete_edge(mock: MockOpenMetadata, client: aiohttp.ClientSession) -> None:
    orders, revenue = await _table(mock, ORDERS), await _table(mock, REVENUE)
    await _put(client, mock, _edge(orders["id"], revenue["id"]))
    url = f"{mock.url}/v1/lineage/table/{orders['id']}/table/{revenue['id']}"
    async with client.delete(url) as resp:
        assert resp.status == 200
    async with client.delete(url) as resp:
        assert (resp.status, (await resp.json())["message"]) == (404, "Lineage edge not found")
