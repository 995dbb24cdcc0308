"""Entities: create-or-update semantics, FQN quoting, lookups by name and id, 404s."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from mock_support import CUSTOMERS, ORDERS

from relay.testing.mock_openmetadata import MockOpenMetadata, build_fqn, quote_name, split_fqn


async def _put(
    client: aiohttp.ClientSession, url: str, body: Any
) -> tuple[int, str | None, dict[str, Any]]:
    async with client.put(url, json=body) as resp:
        return resp.status, resp.headers.get("X-OpenMetadata-Change"), await resp.json()


async def _get(client: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with client.get(url) as resp:
        return resp.status, await resp.json()


async def test_pipeline_service_and_pipeline_upsert(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    service = {"name": "spark", "serviceType": "Spark", "connection": {"config": {"type": "Spark"}}}
    status, change, created = await _put(
        client, f"{mock.url}/v1/services/pipelineServices", service
    )
    assert (status, change) == (201, "entityCreated")
    assert created["fullyQualifiedName"] == "spark"
    assert created["serviceType"] == "Spark"
    status, change, again = await _put(client, f"{mock.url}/v1/services/pipelineServices", service)
    assert (status, change, again["id"], again["version"]) == (
        200,
        "entityNoChange",
        created["id"],
        0.1,
    )

    pipeline = {
        "name": "nightly_etl",
        "service": "spark",
        "sourceUrl": None,  # explicit null on an optional field: accepted, as the server does
        "tasks": [{"name": "load_orders"}, {"name": "aggregate"}],
    }
    status, change, first = await _put(client, f"{mock.url}/v1/pipelines", pipeline)
    assert (status, change) == (201, "entityCreated")
    assert first["fullyQualifiedName"] == "spark.nightly_etl"
    assert first["service"]["id"] == created["id"]
    assert first["service"]["type"] == "pipelineService"
    assert [t["fullyQualifiedName"] for t in first["tasks"]] == [
        "spark.nightly_etl.load_orders",
        "spark.nightly_etl.aggregate",
    ]
    assert "sourceUrl" not in first
    pipeline["description"] = "Builds daily revenue"
    status, change, updated = await _put(client, f"{mock.url}/v1/pipelines", pipeline)
    assert (status, change) == (200, "entityUpdated")
    assert (updated["id"], updated["version"]) == (first["id"], 0.2)
    assert updated["description"] == "Builds daily revenue"

    status, by_name = await _get(client, f"{mock.url}/v1/pipelines/name/spark.nightly_etl")
    assert status == 200
    assert "tasks" not in by_name  # only with ?fields=tasks, like OpenMetadata
    status, with_tasks = await _get(
        client, f"{mock.url}/v1/pipelines/name/spark.nightly_etl?fields=tasks"
    )
    assert [t["name"] for t in with_tasks["tasks"]] == ["load_orders", "aggregate"]
    status, by_id = await _get(client, f"{mock.url}/v1/pipelines/{first['id']}")
    assert (status, by_id["fullyQualifiedName"]) == (200, "spark.nightly_etl")


async def test_post_creates_once_then_conflicts(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    body = {"name": "airflow", "serviceType": "Airflow"}
    async with client.post(f"{mock.url}/v1/services/pipelineServices", json=body) as resp:
        assert resp.status == 201
    async with client.post(f"{mock.url}/v1/services/pipelineServices", json=body) as resp:
        assert (resp.status, await resp.json()) == (
            409,
            {"code": 409, "message": "Entity already exists"},
        )


async def test_table_with_columns_and_quoted_fqns(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    status, table = await _get(client, f"{mock.url}/v1/tables/name/{quote(CUSTOMERS, safe='')}")
    assert status == 200
    assert table["fullyQualifiedName"] == CUSTOMERS
    assert [c["fullyQualifiedName"] for c in table["columns"]] == [
        f"{CUSTOMERS}.customer_id",
        f'{CUSTOMERS}."e.mail"',
    ]
    assert table["service"]["fullyQualifiedName"] == '"pg.analytics"'
    assert table["databaseSchema"]["fullyQualifiedName"] == '"pg.analytics".reporting.public'
    assert table["serviceType"] == "Postgres"
    status, orders = await _get(client, f"{mock.url}/v1/tables/name/{ORDERS}")
    shipping = orders["columns"][3]
    assert [c["fullyQualifiedName"] for c in shipping["children"]] == [
        f"{ORDERS}.shipping.city",
        f"{ORDERS}.shipping.zip",
    ]
    assert orders["tableType"] == "External"


async def test_create_table_chain_through_the_api(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    steps = [
        (
            "services/databaseServices",
            {"name": "mysql.prod", "serviceType": "Mysql"},
            '"mysql.prod"',
        ),
        ("databases", {"name": "shop", "service": '"mysql.prod"'}, '"mysql.prod".shop'),
        (
            "databaseSchemas",
            {"name": "default", "database": '"mysql.prod".shop'},
            '"mysql.prod".shop.default',
        ),
        (
            "tables",
            {
                "name": "line.items",
                "databaseSchema": '"mysql.prod".shop.default',
                "columns": [{"name": "sku", "dataType": "VARCHAR", "dataLength": 64}],
            },
            '"mysql.prod".shop.default."line.items"',
        ),
    ]
    for collection, body, fqn in steps:
        status, change, entity = await _put(client, f"{mock.url}/v1/{collection}", body)
        assert (status, change, entity["fullyQualifiedName"]) == (201, "entityCreated", fqn)


async def test_storage_containers_with_full_path(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    status, events = await _get(
        client, f"{mock.url}/v1/containers/name/s3_lake.lake-bucket.events?fields=dataModel"
    )
    assert status == 200
    assert events["fullPath"] == "s3://lake-bucket/raw/events"
    assert events["parent"]["fullyQualifiedName"] == "s3_lake.lake-bucket"
    assert (
        events["dataModel"]["columns"][0]["fullyQualifiedName"]
        == "s3_lake.lake-bucket.events.event_id"
    )
    body = {"name": "exports", "service": "s3_lake", "fullPath": "s3://lake-bucket/exports"}
    status, _, created = await _put(client, f"{mock.url}/v1/containers", body)
    assert (status, created["fullyQualifiedName"], created["service"]["type"]) == (
        201,
        "s3_lake.exports",
        "storageService",
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/v1/tables/name/hive_prod.warehouse.sales.nope",
            "table instance for hive_prod.warehouse.sales.nope not found",
        ),
        ("/v1/pipelines/name/spark.nope", "pipeline instance for spark.nope not found"),
        ("/v1/containers/name/s3_lake.nope", "container instance for s3_lake.nope not found"),
        ("/v1/services/databaseServices/name/nope", "databaseService instance for nope not found"),
        (
            "/v1/tables/00000000-0000-0000-0000-000000000000",
            "table instance for 00000000-0000-0000-0000-000000000000 not found",
        ),
    ],
)
async def test_absent_entities_are_404_with_openmetadata_message(
    mock: MockOpenMetadata, client: aiohttp.ClientSession, path: str, message: str
) -> None:
    assert await _get(client, mock.url + path) == (404, {"code": 404, "message": message})


async def test_unknown_parent_is_404(mock: MockOpenMetadata, client: aiohttp.ClientSession) -> None:
    status, _, body = await _put(
        client, f"{mock.url}/v1/pipelines", {"name": "p", "service": "ghost"}
    )
    assert (status, body["message"]) == (404, "pipelineService instance for ghost not found")


def test_fqn_quoting_rules() -> None:
    assert build_fqn("svc", "my.db", "schema", "orders") == 'svc."my.db".schema.orders'
    assert quote_name('"plain"') == "plain"
    assert quote_name('"a.b"') == '"a.b"'
    assert quote_name('say"hi') == 'say\\"hi'
    assert split_fqn('svc."my.db".schema.orders') == ["svc", "my.db", "schema", "orders"]
    assert split_fqn(build_fqn("a", 'x"y.z')) == ["a", 'x"y.z']


async def test_soft_and_hard_delete(mock: MockOpenMetadata, client: aiohttp.ClientSession) -> None:
    orders, revenue = (
        mock.entity("table", ORDERS),
        mock.entity("table", "hive_prod.warehouse.sales.daily_revenue"),
    )
    assert orders is not None and revenue is not None
    edge = {
        "edge": {
            "fromEntity": {"id": orders["id"], "type": "table"},
            "toEntity": {"id": revenue["id"], "type": "table"},
        }
    }
    async with client.put(f"{mock.url}/v1/lineage", json=edge) as resp:
        assert resp.status == 200
    async with client.delete(f"{mock.url}/v1/tables/{orders['id']}") as resp:
        assert (resp.status, resp.headers["X-OpenMetadata-Change"]) == (200, "entitySoftDeleted")
        assert (await resp.json())["deleted"] is True
    assert (await _get(client, f"{mock.url}/v1/tables/name/{ORDERS}"))[0] == 404
    status, hidden = await _get(client, f"{mock.url}/v1/tables/name/{ORDERS}?include=deleted")
    assert (status, hidden["deleted"]) == (200, True)
    async with client.put(f"{mock.url}/v1/lineage", json=edge) as resp:
        assert resp.status == 404  # lineage refuses deleted entities
    restore = {
        "name": "orders",
        "databaseSchema": "hive_prod.warehouse.sales",
        "columns": orders["columns"],
    }
    status, change, restored = await _put(client, f"{mock.url}/v1/tables", restore)
    assert (status, change, restored["id"], restored["deleted"]) == (
        200,
        "entityRestored",
        orders["id"],
        False,
    )
    async with client.delete(f"{mock.url}/v1/tables/{orders['id']}?hardDelete=true") as resp:
        assert (resp.status, resp.headers["X-OpenMetadata-Change"]) == (200, "entityDeleted")
    assert mock.lineage_edges == []  # its edges went with it
    status, _, recreated = await _put(client, f"{mock.url}/v1/tables", restore)
    assert status == 201
    assert recreated["id"] != orders["id"]


async def test_unknown_path_is_404_and_wrong_method_405(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    assert await _get(client, f"{mock.url}/v1/topics/name/x") == (
        404,
        {"code": 404, "message": "HTTP 404 Not Found"},
    )
    assert await _get(client, f"{mock.url}/v1/lineage") == (
        405,
        {"code": 405, "message": "HTTP 405 Method Not Allowed"},
    )
