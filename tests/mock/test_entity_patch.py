"""JSON Patch on entities: ``PATCH /v1/<entities>/{id}`` and ``/name/{fqn}``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from mock_support import CUSTOMERS, ORDERS

from relay.testing.mock_openmetadata import MockOpenMetadata

PATCH_JSON = {"Content-Type": "application/json-patch+json"}


async def _patch(
    client: aiohttp.ClientSession,
    url: str,
    patch: Any,
    content_type: str = PATCH_JSON["Content-Type"],
) -> tuple[int, str | None, dict[str, Any]]:
    headers = {"Content-Type": content_type}
    async with client.patch(url, data=orjson.dumps(patch), headers=headers) as resp:
        return resp.status, resp.headers.get("X-OpenMetadata-Change"), await resp.json()


def _table(mock: MockOpenMetadata, fqn: str) -> dict[str, Any]:
    table = mock.entity("table", fqn)
    assert table is not None
    return table


async def test_description_tags_owners_and_a_column_description(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    orders = _table(mock, ORDERS)
    tag = {
        "tagFQN": "PII.Sensitive",
        "source": "Classification",
        "labelType": "Manual",
        "state": "Confirmed",
    }
    owner = {"id": "0d5c4b5e-0000-4000-8000-000000000001", "type": "user"}
    patch = [
        {"op": "add", "path": "/description", "value": "Every order, one row each"},
        {"op": "add", "path": "/tags/-", "value": tag},
        {"op": "add", "path": "/owners/-", "value": owner},
        {"op": "add", "path": "/columns/2/description", "value": "Gross, in cents"},
    ]
    status, change, table = await _patch(client, f"{mock.url}/v1/tables/{orders['id']}", patch)
    assert (status, change) == (200, "entityUpdated")
    assert table["description"] == "Every order, one row each"
    assert table["tags"] == [tag]
    assert table["owners"] == [owner]
    assert table["columns"][2]["description"] == "Gross, in cents"
    assert table["columns"][2]["fullyQualifiedName"] == f"{ORDERS}.amount"
    assert (table["id"], table["version"]) == (orders["id"], 0.2)
    async with client.get(f"{mock.url}/v1/tables/name/{ORDERS}?fields=*") as resp:
        assert await resp.json() == table
    # The create request follows: a later PUT without a description keeps the patched one.
    body = {
        "name": "orders",
        "databaseSchema": "hive_prod.warehouse.sales",
        "columns": table["columns"],
    }
    async with client.put(f"{mock.url}/v1/tables", json=body) as resp:
        assert (await resp.json())["description"] == "Every order, one row each"


async def test_patch_by_name_test_operations_and_no_change(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    url = f"{mock.url}/v1/tables/name/{quote(CUSTOMERS, safe='')}"
    status, change, table = await _patch(
        client, url, [{"op": "test", "path": "/name", "value": "customers.v2"}]
    )
    assert (status, change, table["version"]) == (200, "entityNoChange", 0.1)
    status, _, body = await _patch(
        client, url, [{"op": "test", "path": "/name", "value": "customers"}]
    )
    assert (status, body["code"]) == (400, 400)
    assert "test" in body["message"]
    assert _table(mock, CUSTOMERS)["version"] == 0.1


async def test_bad_patches(mock: MockOpenMetadata, client: aiohttp.ClientSession) -> None:
    orders = _table(mock, ORDERS)
    url = f"{mock.url}/v1/tables/{orders['id']}"
    status, _, body = await _patch(client, url, [{"op": "remove", "path": "/nothing"}])
    assert (status, body["message"]) == (
        400,
        f"'{orders_json(orders)}' contains no value for name 'nothing'",
    )
    status, _, body = await _patch(client, url, {"op": "add"})
    assert status == 400
    status, _, body = await _patch(client, url, [{"op": "add", "path": "/description", "value": 5}])
    assert status == 400
    assert "description" in body["message"]
    status, _, body = await _patch(client, url, [], content_type="application/json")
    assert (status, body["message"]) == (415, "HTTP 415 Unsupported Media Type")
    ghost = "11111111-2222-3333-4444-555555555555"
    status, _, body = await _patch(client, f"{mock.url}/v1/tables/{ghost}", [])
    assert (status, body["message"]) == (404, f"table instance for {ghost} not found")
    assert _table(mock, ORDERS) == orders  # nothing refused was kept


def orders_json(entity: dict[str, Any]) -> str:
    return orjson.dumps(entity).decode()


@pytest.mark.parametrize("server_version", ["1.13.0"])
async def test_1_13_answers_500_for_a_patch_the_library_cannot_apply(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    orders = _table(mock, ORDERS)
    url = f"{mock.url}/v1/tables/{orders['id']}"
    status, _, body = await _patch(client, url, [{"op": "remove", "path": "/nothing"}])
    assert (status, body["code"]) == (500, 500)


async def test_pipelines_keep_their_tasks_and_status(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    pipeline = {"name": "etl", "service": "openlineage", "tasks": [{"name": "load"}]}
    async with client.put(f"{mock.url}/v1/pipelines", json=pipeline) as resp:
        created = await resp.json()
    status = {"timestamp": 1_764_150_000_000, "executionStatus": "Successful"}
    async with client.put(f"{mock.url}/v1/pipelines/openlineage.etl/status", json=status) as resp:
        assert resp.status == 200
    patch = [{"op": "add", "path": "/tasks/0/description", "value": "loads"}]
    got, change, patched = await _patch(client, f"{mock.url}/v1/pipelines/{created['id']}", patch)
    assert (got, change) == (200, "entityUpdated")
    assert patched["tasks"] == [
        {"name": "load", "description": "loads", "fullyQualifiedName": "openlineage.etl.load"}
    ]
    assert patched["pipelineStatus"]["executionStatus"] == "Successful"
