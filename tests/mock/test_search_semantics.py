"""Search as OpenMetadata 2.0 answers it: literal quotes in ``fieldQuery``, ``.keyword``
subfields, ``sort`` values on hits, ``sort_field``/``sort_order``, ``query_filter`` and paging
with ``search_after`` (and 1.13's comma-joined ``search_after`` without a tiebreaker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from mock_support import CUSTOMERS, ORDERS, REVENUE, TOKEN, catalog_with_tables

from relay.testing.mock_openmetadata import MockOpenMetadata

SALES = "hive_prod.warehouse.sales"
IN_SALES = orjson.dumps(
    {"query": {"bool": {"must": [{"term": {"databaseSchema.fullyQualifiedName": SALES}}]}}}
).decode()


async def _search(
    client: aiohttp.ClientSession, url: str, params: Any
) -> tuple[int, dict[str, Any]]:
    async with client.get(url, params=params) as resp:
        return resp.status, await resp.json()


def _fqns(body: dict[str, Any]) -> list[str]:
    return [hit["_source"]["fullyQualifiedName"] for hit in body["hits"]["hits"]]


@pytest.fixture
async def big(server_version: str) -> AsyncIterator[MockOpenMetadata]:
    tables = catalog_with_tables({SALES: 250, "hive_prod.warehouse.staging": 20})
    async with MockOpenMetadata(tokens=[TOKEN], catalog=tables, version=server_version) as mock:
        yield mock


async def test_field_query_takes_quotes_literally(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    """How clients find a table whose service and name hold dots: the FQN as stored."""
    url = f"{mock.url}/v1/search/fieldQuery"
    for value in (CUSTOMERS, '*"customers.v2"', '"pg.analytics".*'):
        status, body = await _search(
            client, url, {"fieldName": "fullyQualifiedName", "fieldValue": value}
        )
        assert (status, _fqns(body)) == (200, [CUSTOMERS]), value
    unquoted = "pg.analytics.reporting.public.customers.v2"
    _, body = await _search(
        client, url, {"fieldName": "fullyQualifiedName", "fieldValue": unquoted}
    )
    assert body["hits"]["total"]["value"] == 0
    _, body = await _search(client, url, {"fieldName": "fullyQualifiedName", "fieldValue": "*"})
    assert all("sort" not in hit for hit in body["hits"]["hits"])  # fieldQuery does not sort


async def test_keyword_subfields_and_nested_fields(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    url = f"{mock.url}/v1/search/query"
    _, body = await _search(client, url, {"q": "name.keyword:orders"})
    assert _fqns(body) == [ORDERS]
    _, body = await _search(client, url, {"q": "service.name.keyword:hive_prod"})
    assert _fqns(body) == [REVENUE, ORDERS]
    _, body = await _search(client, url, {"q": "columns.name:e.mail"})
    assert _fqns(body) == [CUSTOMERS]
    _, body = await _search(client, url, {"q": 'fullyQualifiedName.keyword:"' + REVENUE + '"'})
    assert _fqns(body) == [REVENUE]


async def test_hits_carry_sort_values(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    url = f"{mock.url}/v1/search/query"
    _, body = await _search(client, url, {"q": "*"})
    assert [hit["sort"] for hit in body["hits"]["hits"]] == [
        [1.0, "customers.v2"],
        [1.0, "daily_revenue"],
        [1.0, "orders"],
    ]
    params = {"q": "*", "sort_field": "name.keyword", "sort_order": "desc"}
    _, body = await _search(client, url, params)
    assert _fqns(body) == [ORDERS, REVENUE, CUSTOMERS]
    assert [hit["sort"] for hit in body["hits"]["hits"]] == [
        ["orders"],
        ["daily_revenue"],
        ["customers.v2"],
    ]
    assert body["hits"]["max_score"] is None  # not sorted by score
    status, body = await _search(client, url, {"q": "*", "sort_order": "sideways"})
    assert (status, body["message"]) == (400, "No sort order for [sideways]")


async def test_query_filter(mock: MockOpenMetadata, client: aiohttp.ClientSession) -> None:
    url = f"{mock.url}/v1/search/query"
    _, body = await _search(client, url, {"q": "*", "query_filter": IN_SALES})
    assert _fqns(body) == [REVENUE, ORDERS]
    combined = {
        "query": {
            "bool": {
                "should": [{"wildcard": {"name.keyword": "*order*"}}, {"prefix": {"name": "cust"}}],
                "must_not": [{"term": {"service.name": "pg.analytics"}}],
            }
        }
    }
    _, body = await _search(
        client, url, {"q": "*", "query_filter": orjson.dumps(combined).decode()}
    )
    assert _fqns(body) == [ORDERS]
    status, body = await _search(client, url, {"q": "*", "query_filter": "{not json"})
    assert status == 400
    assert body["message"].startswith("Failed to parse query_filter")
    bad = orjson.dumps({"query": {"fuzzy_magic": {}}}).decode()
    status, body = await _search(client, url, {"q": "*", "query_filter": bad})
    assert (status, body["message"]) == (
        400,
        "Failed to parse query_filter: unknown query [fuzzy_magic]",
    )


async def _page_with_search_after(
    client: aiohttp.ClientSession, mock: MockOpenMetadata, comma_joined: bool
) -> list[str]:
    url = f"{mock.url}/v1/search/query"
    seen: list[str] = []
    after: list[Any] = []
    for _ in range(10):
        params: list[tuple[str, str]] = [
            ("q", "*"),
            ("index", "table_search_index"),
            ("size", "100"),
            ("query_filter", IN_SALES),
        ]
        if after and comma_joined:
            params.append(("search_after", ",".join(str(value) for value in after)))
        elif after:
            params.extend(("search_after", str(value)) for value in after)
        status, body = await _search(client, url, params)
        assert status == 200, body
        hits = body["hits"]["hits"]
        assert body["hits"]["total"]["value"] == 252
        if not hits:
            return seen
        seen.extend(hit["_source"]["fullyQualifiedName"] for hit in hits)
        after = hits[-1]["sort"]
    raise AssertionError("search_after paging did not end")


@pytest.mark.parametrize("server_version", ["2.0.7"])
async def test_paging_with_search_after(
    big: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    seen = await _page_with_search_after(client, big, comma_joined=False)
    names = sorted([f"t{index:03d}" for index in range(250)] + ["daily_revenue", "orders"])
    assert seen == [f"{SALES}.{name}" for name in names]  # each table once, in name order


@pytest.mark.parametrize("server_version", ["1.13.0"])
async def test_1_13_search_after_stops_at_equal_scores(
    big: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    """1.13 sorted by score alone and took one comma-joined ``search_after``: after the
    first page of equal scores nothing sorts after the cursor (why 2.0 added a tiebreaker)."""
    seen = await _page_with_search_after(client, big, comma_joined=True)
    assert len(seen) == 100


async def test_search_after_needs_one_value_per_sort_field(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    params = {"q": "*", "search_after": "1.0"}
    status, body = await _search(client, f"{mock.url}/v1/search/query", params)
    assert (status, body["message"]) == (400, "search_after has 1 value(s) but sort has 2.")


@pytest.mark.parametrize(
    ("server_version", "default_finds_deleted"), [("2.0.7", True), ("1.13.0", False)]
)
async def test_deleted_entities_in_search(
    mock: MockOpenMetadata, client: aiohttp.ClientSession, default_finds_deleted: bool
) -> None:
    """2.0 filters on ``deleted`` only when asked (the parameter is deprecated in favour of
    ``query_filter``); 1.13 left deleted entities out unless ``deleted=true``."""
    orders = mock.entity("table", ORDERS)
    assert orders is not None
    async with client.delete(f"{mock.url}/v1/tables/{orders['id']}") as resp:
        assert resp.status == 200
    url = f"{mock.url}/v1/search/query"
    _, default = await _search(client, url, {"q": "name:orders"})
    assert (_fqns(default) == [ORDERS]) is default_finds_deleted
    _, live = await _search(client, url, {"q": "name:orders", "deleted": "false"})
    _, gone = await _search(client, url, {"q": "name:orders", "deleted": "true"})
    assert (_fqns(live), _fqns(gone)) == ([], [ORDERS])
    not_deleted = orjson.dumps({"query": {"term": {"deleted": False}}}).decode()
    _, filtered = await _search(client, url, {"q": "name:orders", "query_filter": not_deleted})
    assert _fqns(filtered) == []
    field = {"fieldName": "fullyQualifiedName", "fieldValue": ORDERS}
    _, by_field = await _search(client, f"{mock.url}/v1/search/fieldQuery", field)
    assert _fqns(by_field) == []  # fieldQuery still defaults to deleted=false
