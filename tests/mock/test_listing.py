"""Listing entities: cursors (``paging.after`` / ``before``), parent filters, limits."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from mock_support import TOKEN, catalog_with_tables

from relay.testing.mock_openmetadata import MockOpenMetadata

TABLES_PER_SCHEMA = {"hive_prod.warehouse.sales": 250, "hive_prod.warehouse.staging": 30}


@pytest.fixture
async def big() -> Any:
    async with MockOpenMetadata(
        tokens=[TOKEN], catalog=catalog_with_tables(TABLES_PER_SCHEMA)
    ) as server:
        yield server


async def _list(
    client: aiohttp.ClientSession, mock: MockOpenMetadata, collection: str, **params: str
) -> tuple[int, dict[str, Any]]:
    async with client.get(f"{mock.url}/v1/{collection}", params=params) as resp:
        return resp.status, await resp.json()


async def _page_through(
    client: aiohttp.ClientSession, mock: MockOpenMetadata, **params: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """Follow ``paging.after`` until it is gone (bounded); the FQNs and every paging."""
    fqns: list[str] = []
    pagings: list[dict[str, Any]] = []
    after: dict[str, str] = {}
    for _ in range(20):
        status, body = await _list(client, mock, "tables", **params, **after)
        assert status == 200, body
        fqns.extend(table["fullyQualifiedName"] for table in body["data"])
        pagings.append(body["paging"])
        if "after" not in body["paging"]:
            return fqns, pagings
        after = {"after": body["paging"]["after"]}
    raise AssertionError("paging did not end")


async def test_paging_through_250_tables_100_at_a_time(
    big: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    schema = "hive_prod.warehouse.sales"
    fqns, pagings = await _page_through(client, big, limit="100", databaseSchema=schema)
    wanted = sorted(
        [f"{schema}.t{index:03d}" for index in range(250)]
        + [f"{schema}.orders", f"{schema}.daily_revenue"],
        key=lambda fqn: fqn.rsplit(".", 1)[1],  # by name, as the server orders them
    )
    assert fqns == wanted  # every table once, none from another schema
    assert [p["total"] for p in pagings] == [252, 252, 252]
    assert "before" not in pagings[0]
    assert all("before" in p for p in pagings[1:])


async def test_before_cursor_leads_back(
    big: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    params = {"limit": "100", "databaseSchema": "hive_prod.warehouse.sales"}
    _, first = await _list(client, big, "tables", **params)
    _, second = await _list(client, big, "tables", **params, after=first["paging"]["after"])
    _, back = await _list(client, big, "tables", **params, before=second["paging"]["before"])
    assert [t["id"] for t in back["data"]] == [t["id"] for t in first["data"]]
    assert "before" not in back["paging"]
    assert back["paging"]["after"] == first["paging"]["after"]


async def test_parent_filters(big: MockOpenMetadata, client: aiohttp.ClientSession) -> None:
    _, staging = await _list(
        client, big, "tables", limit="1000", databaseSchema="hive_prod.warehouse.staging"
    )
    assert staging["paging"] == {"total": 30}
    _, database = await _list(client, big, "tables", limit="0", database="hive_prod.warehouse")
    assert (database["data"], database["paging"]) == ([], {"total": 282})
    _, other = await _list(client, big, "tables", database='"pg.analytics".reporting')
    assert [t["name"] for t in other["data"]] == ["customers.v2"]
    _, schemas = await _list(client, big, "databaseSchemas", database="hive_prod.warehouse")
    assert sorted(s["name"] for s in schemas["data"]) == ["sales", "staging"]
    _, databases = await _list(client, big, "databases", service="pg.analytics")
    assert [d["name"] for d in databases["data"]] == ["reporting"]
    _, nothing = await _list(client, big, "tables", databaseSchema="no.such.schema")
    assert nothing == {"data": [], "paging": {"total": 0}}
    # A filter another resource declares is ignored, as the server ignores unknown parameters.
    _, ignored = await _list(client, big, "tables", limit="0", service="pg.analytics")
    assert ignored["paging"]["total"] == 283


async def test_limit_and_cursor_errors(
    big: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    _, default = await _list(client, big, "tables")
    assert len(default["data"]) == 10
    status, body = await _list(client, big, "tables", limit="-1")
    assert (status, body["message"]) == (
        400,
        "[query param limit must be greater than or equal to 0]",
    )
    status, body = await _list(client, big, "tables", limit="1000001")
    assert (status, body["message"]) == (
        400,
        "[query param limit must be less than or equal to 1000000]",
    )
    status, _ = await _list(client, big, "tables", limit="ten")
    assert status == 404  # Jersey: a query parameter it cannot convert does not match
    status, body = await _list(client, big, "tables", before="x", after="y")
    assert (status, body["message"]) == (
        400,
        "Only one of before or after query parameter allowed",
    )


async def test_include_deleted(big: MockOpenMetadata, client: aiohttp.ClientSession) -> None:
    _, page = await _list(
        client, big, "tables", limit="1", databaseSchema="hive_prod.warehouse.staging"
    )
    doomed = page["data"][0]
    async with client.delete(f"{big.url}/v1/tables/{doomed['id']}") as resp:
        assert resp.status == 200
    schema = {"databaseSchema": "hive_prod.warehouse.staging", "limit": "100"}
    _, live = await _list(client, big, "tables", **schema)
    _, gone = await _list(client, big, "tables", **schema, include="deleted")
    _, every = await _list(client, big, "tables", **schema, include="all")
    assert (live["paging"]["total"], gone["paging"]["total"], every["paging"]["total"]) == (
        29,
        1,
        30,
    )
    assert [t["id"] for t in gone["data"]] == [doomed["id"]]
