"""One lineage edge at a time: read it, JSON-Patch it, write and delete it by name or source.

Called the way OpenMetadata's clients call the server: read the edge with
``GET /lineage/getLineageEdge/{fromId}/{toId}``, merge column lineage with a JSON Patch of
``lineageDetails`` (``application/json-patch+json``), and so on.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from mock_support import CUSTOMERS, ORDERS, REVENUE

from relay.testing.mock_openmetadata import MockOpenMetadata

PATCH_JSON = {"Content-Type": "application/json-patch+json"}
GHOST = "11111111-2222-3333-4444-555555555555"


def _id(mock: MockOpenMetadata, fqn: str) -> str:
    entity = mock.entity("table", fqn)
    assert entity is not None
    entity_id: str = entity["id"]
    return entity_id


async def _put_edge(
    client: aiohttp.ClientSession,
    mock: MockOpenMetadata,
    from_fqn: str,
    to_fqn: str,
    **details: Any,
) -> None:
    edge: dict[str, Any] = {
        "fromEntity": {"id": _id(mock, from_fqn), "type": "table"},
        "toEntity": {"id": _id(mock, to_fqn), "type": "table"},
    }
    if details:
        edge["lineageDetails"] = details
    async with client.put(f"{mock.url}/v1/lineage", json={"edge": edge}) as resp:
        assert resp.status == 200, await resp.text()


async def _get_edge(
    client: aiohttp.ClientSession, mock: MockOpenMetadata, from_id: str, to_id: str
) -> tuple[int, dict[str, Any]]:
    async with client.get(f"{mock.url}/v1/lineage/getLineageEdge/{from_id}/{to_id}") as resp:
        return resp.status, await resp.json()


async def _patch(
    client: aiohttp.ClientSession, url: str, patch: Any, headers: dict[str, str] = PATCH_JSON
) -> tuple[int, dict[str, str], Any]:
    async with client.patch(url, data=orjson.dumps(patch), headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json()


def _column(from_column: str, to_column: str) -> dict[str, Any]:
    return {"fromColumns": [f"{ORDERS}.{from_column}"], "toColumn": f"{REVENUE}.{to_column}"}


def _edge_url(mock: MockOpenMetadata) -> str:
    return f"{mock.url}/v1/lineage/table/{_id(mock, ORDERS)}/table/{_id(mock, REVENUE)}"


async def _spark_edge(client: aiohttp.ClientSession, mock: MockOpenMetadata) -> None:
    """orders -> daily_revenue, as Spark lineage with one column mapping."""
    column = _column("amount", "revenue")
    await _put_edge(client, mock, ORDERS, REVENUE, source="SparkLineage", columnsLineage=[column])


async def test_get_edge_returns_its_lineage_details(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    orders, revenue = _id(mock, ORDERS), _id(mock, REVENUE)
    await _spark_edge(client, mock)
    status, body = await _get_edge(client, mock, orders, revenue)
    assert status == 200
    assert set(body) == {"edge"}
    edge = body["edge"]
    assert edge["source"] == "SparkLineage"
    assert edge["columnsLineage"] == [_column("amount", "revenue")]
    assert {"createdAt", "createdBy", "updatedAt", "updatedBy"} <= set(edge)

    status, body = await _get_edge(client, mock, revenue, orders)  # the other direction
    assert (status, body) == (
        404,
        {"code": 404, "message": f"Lineage edge not found between {revenue} and  {orders}"},
    )
    status, body = await _get_edge(client, mock, "not-a-uuid", orders)
    assert (status, body["message"]) == (404, "HTTP 404 Not Found")


async def test_column_lineage_is_merged_with_a_json_patch(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    """A client adds its column mapping to what another writer stored, without replacing it."""
    orders, revenue = _id(mock, ORDERS), _id(mock, REVENUE)
    await _spark_edge(client, mock)
    _, before = await _get_edge(client, mock, orders, revenue)
    patch = [
        {"op": "test", "path": "/columnsLineage/0/toColumn", "value": f"{REVENUE}.revenue"},
        {"op": "add", "path": "/columnsLineage/-", "value": _column("order_id", "day")},
        {"op": "add", "path": "/description", "value": "merged by the relay"},
    ]
    status, headers, details = await _patch(client, _edge_url(mock), patch)
    assert status == 200, details
    assert headers["X-OpenMetadata-Change"] == "entityUpdated"
    assert details["columnsLineage"] == [_column("amount", "revenue"), _column("order_id", "day")]
    assert details["description"] == "merged by the relay"
    assert details["createdAt"] == before["edge"]["createdAt"]
    assert details["updatedAt"] >= before["edge"]["updatedAt"]
    _, after = await _get_edge(client, mock, orders, revenue)
    assert after["edge"] == details
    [stored] = mock.lineage_edges
    assert stored["lineageDetails"] == details


async def test_patch_checks_what_the_put_checks(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await _put_edge(client, mock, ORDERS, REVENUE)
    url = _edge_url(mock)
    bad_column = [{"op": "add", "path": "/columnsLineage", "value": [_column("no_such", "day")]}]
    status, _, body = await _patch(client, url, bad_column)
    assert (status, body["message"]) == (400, f"Invalid column name {ORDERS}.no_such")
    pipeline = [{"op": "add", "path": "/pipeline", "value": {"id": GHOST, "type": "pipeline"}}]
    status, _, body = await _patch(client, url, pipeline)
    assert (status, body["message"]) == (404, f"pipeline instance for {GHOST} not found")
    status, _, body = await _patch(client, url, [], headers={"Content-Type": "application/json"})
    assert (status, body["message"]) == (415, "HTTP 415 Unsupported Media Type")
    customers = _id(mock, CUSTOMERS)
    status, _, body = await _patch(
        client, f"{mock.url}/v1/lineage/table/{customers}/table/{_id(mock, REVENUE)}", []
    )
    assert status == 404
    assert body["message"].startswith(f"Lineage edge not found between table {customers} and")
    status, _, body = await _patch(
        client, f"{mock.url}/v1/lineage/table/{GHOST}/table/{_id(mock, REVENUE)}", []
    )
    assert (status, body["message"]) == (404, f"table instance for {GHOST} not found")
    [stored] = mock.lineage_edges
    assert "columnsLineage" not in stored["lineageDetails"]  # nothing refused was kept


@pytest.mark.parametrize(("server_version", "status"), [("2.0.7", 400), ("1.13.0", 500)])
async def test_a_patch_the_library_cannot_apply(
    mock: MockOpenMetadata, client: aiohttp.ClientSession, status: int
) -> None:
    """2.0 answers 400; 1.13 let the JSON library's exception through as a server error."""
    await _put_edge(client, mock, ORDERS, REVENUE, source="SparkLineage")
    url = _edge_url(mock)
    failed_test = [{"op": "test", "path": "/source", "value": "Manual"}]
    got, _, body = await _patch(client, url, failed_test)
    assert (got, body["code"]) == (status, status)
    assert "test" in body["message"]
    missing = [{"op": "remove", "path": "/sqlQuery"}]
    got, _, body = await _patch(client, url, missing)
    assert got == status
    assert "contains no value for name 'sqlQuery'" in body["message"]
    [stored] = mock.lineage_edges
    assert stored["lineageDetails"]["source"] == "SparkLineage"


@pytest.mark.parametrize(("server_version", "status"), [("2.0.7", 200), ("1.13.0", 500)])
async def test_replace_of_an_absent_member(
    mock: MockOpenMetadata, client: aiohttp.ClientSession, status: int
) -> None:
    """2.0 turns a replace of an absent member into an add, as its UI relies on."""
    await _put_edge(client, mock, ORDERS, REVENUE)
    patch = [{"op": "replace", "path": "/sqlQuery", "value": "INSERT INTO daily_revenue ..."}]
    got, _, _ = await _patch(client, _edge_url(mock), patch)
    assert got == status


async def test_patch_pointer_without_slash_and_read_only_paths(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await _put_edge(client, mock, ORDERS, REVENUE)
    got, _, body = await _patch(client, _edge_url(mock), [{"op": "remove", "path": "source"}])
    assert (got, body["message"]) == (
        400,
        "Invalid JSON Patch 'path' value 'source' - non-empty JSON Pointer must begin with '/' "
        "(RFC 6901)",
    )
    ignored = [{"op": "add", "path": "/pipeline/href", "value": "http://elsewhere"}]
    got, _, body = await _patch(client, _edge_url(mock), ignored)
    assert got == 200
    assert "pipeline" not in body


async def test_put_get_patch_delete_by_name(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    by_name = f"{mock.url}/v1/lineage/table/name/{quote(ORDERS, safe='')}/table/name/" + quote(
        CUSTOMERS, safe=""
    )
    # The body is the edge's lineageDetails, nulls included, as OpenMetadata's Python client
    # sends it (LineageDetails.model_dump_json()).
    details = {"source": "SparkLineage", "sqlQuery": None, "pipeline": None}
    async with client.put(by_name, json=details) as resp:
        assert resp.status == 200
        assert await resp.read() == b""
    orders, customers = _id(mock, ORDERS), _id(mock, CUSTOMERS)
    status, body = await _get_edge(client, mock, orders, customers)
    assert (status, body["edge"]["source"]) == (200, "SparkLineage")
    edge_by_name = by_name.replace("/v1/lineage/", "/v1/lineage/getLineageEdge/")
    async with client.get(edge_by_name) as resp:
        assert (resp.status, (await resp.json())["edge"]["source"]) == (200, "SparkLineage")
    patch = [{"op": "add", "path": "/sqlQuery", "value": "SELECT 1"}]
    status, _, details = await _patch(client, by_name, patch)
    assert (status, details["sqlQuery"]) == (200, "SELECT 1")
    async with client.delete(by_name) as resp:
        assert resp.status == 200
    async with client.delete(by_name) as resp:
        assert (resp.status, (await resp.json())["message"]) == (404, "Lineage edge not found")
    ghost = by_name.replace(quote(CUSTOMERS, safe=""), "hive_prod.warehouse.sales.nothing")
    async with client.put(ghost, json={}) as resp:
        body = await resp.json()
        assert (resp.status, body["message"]) == (
            404,
            "table instance for hive_prod.warehouse.sales.nothing not found",
        )


@pytest.mark.parametrize("server_version", ["1.13.0"])
async def test_by_name_writes_are_2_0_only(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    by_name = f"{mock.url}/v1/lineage/table/name/{ORDERS}/table/name/{REVENUE}"
    async with client.put(by_name, json={}) as resp:
        assert resp.status == 405
    async with client.get(by_name.replace("lineage/", "lineage/getLineageEdge/")) as resp:
        assert resp.status == 404
    await _put_edge(client, mock, ORDERS, REVENUE)
    async with client.delete(by_name) as resp:  # deleting by name is older than 2.0
        assert resp.status == 200
    assert mock.lineage_edges == []


async def test_delete_by_source_is_not_taken_for_an_edge(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    """``DELETE /lineage/table/{id}/type/{source}`` drops the edges into the table written
    by that source: 200, where the edge route would have answered 400."""
    await _put_edge(client, mock, ORDERS, REVENUE, source="SparkLineage")
    await _put_edge(client, mock, CUSTOMERS, REVENUE, source="Manual")
    await _put_edge(client, mock, CUSTOMERS, ORDERS, source="SparkLineage")
    revenue = _id(mock, REVENUE)
    async with client.delete(f"{mock.url}/v1/lineage/table/{revenue}/type/SparkLineage") as resp:
        assert (resp.status, await resp.read()) == (200, b"")
    remaining = {
        (e["fromEntity"]["fullyQualifiedName"], e["toEntity"]["fullyQualifiedName"])
        for e in mock.lineage_edges
    }
    assert remaining == {(CUSTOMERS, REVENUE), (CUSTOMERS, ORDERS)}
    async with client.delete(f"{mock.url}/v1/lineage/table/{GHOST}/type/SparkLineage") as resp:
        assert resp.status == 200  # the server checks neither the entity nor the source
    by_name = f"{mock.url}/v1/lineage/source/name/table/{ORDERS}/type/SparkLineage"
    async with client.delete(by_name) as resp:
        assert resp.status == 200
    assert [e["toEntity"]["fullyQualifiedName"] for e in mock.lineage_edges] == [REVENUE]


async def test_delete_by_pipeline_lineage_drops_the_pipelines_edges(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    async with client.put(
        f"{mock.url}/v1/pipelines", json={"name": "etl", "service": "openlineage"}
    ) as resp:
        pipeline = await resp.json()
    reference = {"id": pipeline["id"], "type": "pipeline"}
    await _put_edge(client, mock, ORDERS, REVENUE, source="PipelineLineage", pipeline=reference)
    await _put_edge(client, mock, CUSTOMERS, ORDERS, source="PipelineLineage")
    url = f"{mock.url}/v1/lineage/pipeline/{pipeline['id']}/type/PipelineLineage"
    async with client.delete(url) as resp:
        assert resp.status == 200
    assert [e["toEntity"]["fullyQualifiedName"] for e in mock.lineage_edges] == [ORDERS]
