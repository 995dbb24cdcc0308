"""Search endpoints: Elasticsearch-shaped bodies, wildcards and field queries."""

from __future__ import annotations

from typing import Any

import aiohttp
from mock_support import CUSTOMERS, ORDERS, REVENUE

from relay.testing.mock_openmetadata import MockOpenMetadata


async def _search(
    client: aiohttp.ClientSession, url: str, **params: str
) -> tuple[int, dict[str, Any]]:
    async with client.get(url, params=params) as resp:
        return resp.status, await resp.json()


def _fqns(body: dict[str, Any]) -> list[str]:
    return [hit["_source"]["fullyQualifiedName"] for hit in body["hits"]["hits"]]


async def test_query_by_fqn_wildcard_like_the_python_client(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    status, body = await _search(
        client,
        f"{mock.url}/v1/search/query",
        q="fullyQualifiedName:hive_prod.*.sales.orders",
        index="table_search_index",
        **{"from": "0", "size": "10"},
    )
    assert status == 200
    assert body["hits"]["total"] == {"value": 1, "relation": "eq"}
    [hit] = body["hits"]["hits"]
    source = hit["_source"]
    assert hit["_id"] == source["id"]
    assert hit["_index"] == "table_search_index"
    assert source["entityType"] == "table"
    assert source["fullyQualifiedName"] == ORDERS
    assert source["columnNames"] == [
        "order_id",
        "customer_id",
        "amount",
        "shipping",
        "shipping.city",
        "shipping.zip",
    ]
    assert {"took", "timed_out", "_shards"} <= set(body)


async def test_query_forms(mock: MockOpenMetadata, client: aiohttp.ClientSession) -> None:
    url = f"{mock.url}/v1/search/query"
    # Equal scores: 2.0 orders them by name.keyword.
    assert _fqns((await _search(client, url, q="*"))[1]) == [CUSTOMERS, REVENUE, ORDERS]
    assert _fqns((await _search(client, url, q="revenue"))[1]) == [REVENUE]
    exact = await _search(client, url, q=f'fullyQualifiedName:"{REVENUE}"')
    assert _fqns(exact[1]) == [REVENUE]
    either = await _search(client, url, q="name:orders OR name:daily_revenue")
    assert _fqns(either[1]) == [REVENUE, ORDERS]
    both = await _search(client, url, q="name:ORDERS AND columnNames:amount")
    assert _fqns(both[1]) == [ORDERS]  # keyword matching is case-insensitive
    escaped = await _search(client, url, q=r"fullyQualifiedName:\"pg.analytics\".*")
    assert _fqns(escaped[1]) == [CUSTOMERS]
    page = await _search(client, url, q="*", size="1", **{"from": "1"})
    assert (page[1]["hits"]["total"]["value"], _fqns(page[1])) == (3, [REVENUE])
    none = await _search(client, url, q="fullyQualifiedName:*.missing_table")
    assert none[1]["hits"] == {
        "total": {"value": 0, "relation": "eq"},
        "max_score": None,
        "hits": [],
    }


async def test_field_query_like_the_spark_agent(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    url = f"{mock.url}/v1/search/fieldQuery"
    status, body = await _search(
        client,
        url,
        fieldName="fullyQualifiedName",
        fieldValue="*sales.orders",
        index="table_search_index",
        size="10",
        **{"from": "0"},
    )
    assert (status, _fqns(body)) == (200, [ORDERS])
    status, body = await _search(
        client,
        url,
        fieldName="fullPath",
        fieldValue="s3://lake-bucket/raw/*",
        index="container_search_index",
    )
    assert status == 200
    [hit] = body["hits"]["hits"]
    assert hit["_source"]["fullPath"] == "s3://lake-bucket/raw/events"
    assert hit["_source"]["entityType"] == "container"
    assert hit["_source"]["columnNames"] == ["event_id", "ts"]


async def test_search_errors(mock: MockOpenMetadata, client: aiohttp.ClientSession) -> None:
    status, body = await _search(
        client, f"{mock.url}/v1/search/query", q="*", index="no_such_index"
    )
    assert status == 400
    assert "no_such_index" in body["message"]
    status, _ = await _search(
        client, f"{mock.url}/v1/search/fieldQuery", index="table_search_index"
    )
    assert status == 400
